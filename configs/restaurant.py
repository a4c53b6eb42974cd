"""Restaurant photos write-up (3 classes): ResNet50 vs InceptionV3 vs NASNetMobile, each with
a Keras-style head (global average pooling, Dense(1024) + ReLU, dropout, softmax);
ResNet50 and InceptionV3 as fixed feature extractors, NASNetMobile unfrozen from Keras layer
752 (of its 769); per-class accuracy, per-class ROC AUC and Grad-CAM in every report.

    ./run.sh configs/restaurant.py:nasnet_mobile
    ./run.sh sweep configs/restaurant.py           # the three backbones side by side

None of the three ImageNet files ships offline: a run stops in one line naming the
URL and the cache path to put the file in. Offline, --config.model.pretrained=False
(random init) runs it. With no data.path it runs on ELPV's 4 defect levels.
"""
from research.config import base_config, variant

BACKBONES = {
    'resnet50': dict(name='resnet50', freeze='head'),
    'inception_v3': dict(name='inception_v3', freeze='head'),
    'nasnet_mobile': dict(name='nasnet_mobile', freeze='752'),  # Keras's layers[752:] train
}


def get_config(arg='nasnet_mobile'):
  backbone = BACKBONES[variant(arg, BACKBONES, 'restaurant.py')]
  config = base_config()
  config.num_epochs = 10
  config.batch_size = 32
  config.model.name = backbone['name']
  config.model.hidden = (1024,)
  config.model.dropout = 0.5
  config.freeze.before = backbone['freeze']
  config.optimizer.name = 'adam'
  config.optimizer.learning_rate = 1e-4
  config.data.elpv_task = 'levels'
  config.data.augment.update(dict(rotation=20.0, zoom=0.2, hflip=True))
  return config


def get_sweep():
  return [{'variant': name} for name in BACKBONES]
