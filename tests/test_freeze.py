"""Freezing: frozen parameters and BatchNorm statistics stay bit-identical, the rest trains."""
import jax
import numpy as np
import pytest

from research.config import base_config
from research.models import Task, create_model
from research.train.freeze import FROZEN, TRAINABLE, FreezeError, flat, frozen_batchnorm_paths
from research.train.state import create_train_state
from research.train.step import make_train_step


def config_for(before='', patterns=()):
  config = base_config()
  config.freeze.before = before
  config.freeze.patterns = patterns
  return config


def test_before_freezes_every_parameter_created_before_the_prefix():
  config = config_for('backbone/blocks_12', (r'head/logits/bias',))
  _, phases = create_train_state(create_model(config.model, 1), config, 10, jax.random.key(0))
  labels = phases[0].labels
  paths = list(labels)
  first = paths.index('backbone/blocks_12/expand/conv/kernel')
  assert all(labels[p] == FROZEN for p in paths[:first])
  assert labels['backbone/blocks_11/project/bn/scale'] == FROZEN
  assert labels['backbone/blocks_15/depthwise/conv/kernel'] == TRAINABLE
  assert labels['head/logits/kernel'] == TRAINABLE and labels['head/logits/bias'] == FROZEN
  assert 'backbone/blocks_11/project/bn' in frozen_batchnorm_paths(labels)
  assert 'backbone/blocks_12/project/bn' not in frozen_batchnorm_paths(labels)


def test_unknown_prefix_names_the_nearest_module():
  config = config_for('backbone/block_12')
  with pytest.raises(FreezeError, match="'backbone/block_12' matches no parameter path; nearest "
                     "module: 'backbone/blocks_12"):
    create_train_state(create_model(config.model, 1), config, 10, jax.random.key(0))


def test_training_moves_only_trainable_parameters_and_statistics():
  config = config_for('backbone/blocks_14')
  state, phases = create_train_state(create_model(config.model, 1), config, 10, jax.random.key(0))
  labels = phases[0].labels
  before_params, before_stats = flat(state.params), flat(state.batch_stats)
  step = jax.jit(make_train_step(labels, Task(2)))
  rng = np.random.default_rng(0)
  for i in range(3):
    batch = {'image': rng.integers(0, 255, (4, 64, 64, 3), dtype=np.uint8),
             'label': np.array([0, 1, 1, 0], np.int32)}
    state, metrics = step(state, batch, jax.random.key(i))
  assert np.isfinite(float(metrics['loss']))
  after_params, after_stats = flat(state.params), flat(state.batch_stats)
  for path, value in before_params.items():
    same = np.array_equal(value, after_params[path])
    assert same == (labels[path] == FROZEN), path
  frozen_bn = frozen_batchnorm_paths(labels)
  for path, value in before_stats.items():
    same = np.array_equal(value, after_stats[path])
    assert same == (path.rsplit('/', 1)[0] in frozen_bn), path
