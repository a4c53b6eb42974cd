"""Inception / GoogLeNet write-up: an ImageNet base + a custom head (global average pooling,
Dense(1024) + ReLU, dropout 0.5), trained as a fixed feature extractor (only the head
trains, lr 1e-3) or fine-tuned (everything trains, lr 1e-4), for GoogLeNet (torchvision)
and InceptionV3 (Keras).

    ./run.sh configs/inception_transfer.py:googlenet-finetune
    ./run.sh sweep configs/inception_transfer.py     # the four runs side by side

Neither ImageNet file ships offline: a run stops in one line naming the URL and the
cache path; offline, --config.model.pretrained=False runs it.
"""
import itertools

from research.config import base_config, variant

MODELS = ('googlenet', 'inception_v3')
MODES = {'features': dict(freeze='head', learning_rate=1e-3),
         'finetune': dict(freeze='', learning_rate=1e-4)}
VARIANTS = tuple(f'{m}-{mode}' for m, mode in itertools.product(MODELS, MODES))


def get_config(arg='googlenet-features'):
  model, mode = variant(arg, VARIANTS, 'inception_transfer.py').split('-')
  config = base_config()
  config.num_epochs = 10
  config.batch_size = 32
  config.model.name = model
  config.model.hidden = (1024,)
  config.model.dropout = 0.5
  config.freeze.before = MODES[mode]['freeze']
  config.optimizer.name = 'adam'
  config.optimizer.learning_rate = MODES[mode]['learning_rate']
  config.data.augment.update(dict(rotation=15.0, zoom=0.1, hflip=True))
  return config


def get_sweep():
  return [{'variant': name} for name in VARIANTS]
