"""Every experiment in configs/ (each point of each sweep) trains a step on a small folder:
random init (most ImageNet files cannot be had offline) and 96 px images, to stay fast."""
from pathlib import Path

import jax
import numpy as np
import pytest

from helpers import make_folder
from research.experiment.sweep import point_config, read_points
from research.models import MODELS
from research.train.freeze import TRAINABLE
from research.train.loop import build, fit

CONFIGS = sorted(str(p) for p in Path('configs').glob('*.py'))
POINTS = [(path, point) for path in CONFIGS for point in read_points(path)]
SMALL = ['model.pretrained=False', 'batch_size=2', 'num_epochs=1', 'data.image_size=96',
         'checkpoint.keep=1']


@pytest.fixture(scope='module')
def records(tmp_path_factory):
  folder = make_folder(tmp_path_factory.mktemp('images'), per_class=1)
  return [(str(p), i) for i, c in enumerate(('bright', 'dark')) for p in (folder / c).iterdir()]


def test_every_config_has_its_write_ups_points():
  names = {Path(path).stem: [p['name'] for p in read_points(path)] for path in CONFIGS}
  assert names == {
      'efficientnet_adam': ['adam', 'sgd'],
      'elpv_levels': ['baseline', 'weighted', 'native', 'schedule', 'recipe', 'unweighted'],
      'food_mobilenet': ['base', 'hidden=2048x3', 'hidden=4096x3', 'hidden=1024x2',
                         'hidden=1024x4', 'learning_rate=5e-05', 'learning_rate=0.0002'],
      'inception_transfer': ['googlenet-features', 'googlenet-finetune',
                             'inception_v3-features', 'inception_v3-finetune'],
      'people': ['simple_cnn', 'resnet101', 'resnet152'],
      'restaurant': ['resnet50', 'inception_v3', 'nasnet_mobile'],
  }


@pytest.mark.parametrize('path,point', POINTS,
                         ids=[f'{Path(c).stem}:{p["name"]}' for c, p in POINTS])
def test_each_point_trains_a_step(path, point, records, tmp_path):
  config = point_config(path, point, SMALL, tmp_path)
  assert config.model.name in MODELS
  built = build(config, 2, steps=1)
  trainable = sum(l == TRAINABLE for l in built.phases[0].labels.values())
  assert 0 < trainable <= len(built.phases[0].labels)
  state, history = fit(config, tmp_path, built, records, resume=False, log=lambda _: None)
  assert int(state.step) == 1 and np.isfinite(history[0]['train_loss'])
  jax.clear_caches()
