"""Every experiment in configs/ (each point of each sweep) builds, and its train step traces
(shapes, dtypes, freezing, optimizer: jax.eval_shape) on a 96 px batch: random init
(most ImageNet files cannot be had offline) and 96 px images. The main config (from its
packaged ImageNet weights), MobileNet with its F-D head and the small CNN train a real step
in CI; every point trains one under `slow`."""
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from helpers import make_folder, traced_build
from research.experiment.sweep import point_config, read_points
from research.models import MODELS, Task
from research.train.freeze import TRAINABLE
from research.train.loop import build, fit
from research.train.step import make_train_step
from research.weights.files import packaged_path

CONFIGS = sorted(str(p) for p in Path('configs').glob('*.py'))
POINTS = [(path, point) for path in CONFIGS for point in read_points(path)]
IDS = [f'{Path(c).stem}:{p["name"]}' for c, p in POINTS]
SMALL = ['model.pretrained=False', 'batch_size=2', 'num_epochs=1', 'data.image_size=96',
         'checkpoint.keep=1']
# a real step in CI: one point of each family that compiles in seconds
TRAINED_IN_CI = {'efficientnet_adam:adam', 'food_mobilenet:base', 'people:simple_cnn'}


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


@pytest.mark.parametrize('path,point', POINTS, ids=IDS)
def test_each_point_builds_and_its_step_traces(path, point, tmp_path):
  """`build` and each phase's train step, traced (jax.eval_shape): every point's model,
  freezing, phases and optimizer, without compiling initialisers a real step pays for."""
  config = point_config(path, point, SMALL, tmp_path)
  assert config.model.name in MODELS
  state, setup = traced_build(config)
  labels = setup.phases[0].labels
  trainable = sum(l == TRAINABLE for l in labels.values())
  assert 0 < trainable <= len(labels)
  batch = {'image': jax.ShapeDtypeStruct((2, 96, 96, 3), jnp.uint8),
           'label': jax.ShapeDtypeStruct((2,), jnp.int32)}
  for phase in setup.phases:
    new, metrics = jax.eval_shape(make_train_step(phase.labels, Task(2)), state, batch,
                                  jax.random.key(0))
    assert jax.tree.structure(new) == jax.tree.structure(state)
    assert metrics['loss'].shape == ()


@pytest.mark.parametrize('path,point', [
    pytest.param(c, p, marks=() if i in TRAINED_IN_CI else pytest.mark.slow)
    for (c, p), i in zip(POINTS, IDS)], ids=IDS)
def test_each_point_trains_a_step(path, point, records, tmp_path):
  config = point_config(path, point, SMALL, tmp_path)
  weights = MODELS[config.model.name].weights
  # the ImageNet weights where a package has them offline: as the write-up starts (and the
  # backbone's initialisers are not compiled)
  config.model.pretrained = bool(weights and packaged_path(weights))
  setup = build(config, 2, steps=1)
  state, history = fit(config, tmp_path, setup, records, resume=False, log=lambda _: None)
  assert int(state.step) == 1 and np.isfinite(history[0]['train_loss'])
  jax.clear_caches()
