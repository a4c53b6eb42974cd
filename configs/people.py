"""20 classes of people write-up, 70/15/15 split made before augmenting: a small CNN vs
ResNet101 vs ResNet152; Adam lr 1e-4 with StepLR (x0.1 every 5 epochs); the ResNets train
their new head for 2 epochs, then everything from layer4.0.conv1 (gradual unfreezing);
confusion matrices in every report.

    ./run.sh configs/people.py:resnet101
    ./run.sh sweep configs/people.py                 # the three models side by side

The ResNet files do not ship offline: a run stops in one line naming the URL and
the cache path; offline, --config.model.pretrained=False runs it. The small CNN
has no pretraining. With no data.path it runs on ELPV's 4 defect levels.
"""
from research.config import base_config, variant

MODELS = ('simple_cnn', 'resnet101', 'resnet152')


def get_config(arg='resnet101'):
  model = variant(arg, MODELS, 'people.py')
  config = base_config()
  config.num_epochs = 15
  config.batch_size = 32
  config.model.name = model
  config.optimizer.name = 'adam'
  config.optimizer.learning_rate = 1e-4
  config.optimizer.step_epochs = 5
  config.optimizer.gamma = 0.1
  config.data.split = (0.7, 0.15, 0.15)
  config.data.elpv_task = 'levels'
  config.data.augment.update(dict(rotation=10.0, hflip=True))
  if model == 'simple_cnn':
    config.model.pretrained = False  # nothing to fine-tune: every layer trains from scratch
  else:
    config.freeze.before = 'head'
    config.freeze.phases = ((3, 'layer4.0.conv1', 1.0),)
  return config


def get_sweep():
  return [{'variant': name} for name in MODELS]
