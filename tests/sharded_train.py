"""A few EfficientNet-Lite0 train steps on the devices jax sees; run as a script, saves the
parameters to argv[1].

The device count comes from JAX_NUM_CPU_DEVICES, set before jax starts (test_sharding runs
this in a process of its own for 2 devices, and in the test's own process for 1). SGD, not
Adam: Adam's first steps are ~lr * sign(gradient), which turns float rounding in
near-zero gradients into lr-sized differences and would hide what is compared.
"""
import sys

import jax
import numpy as np

from research.config import base_config
from research.models import Task, create_model
from research.parallel import make_mesh, replicate, shard_batch
from research.train.freeze import flat
from research.train.state import create_train_state
from research.train.step import make_train_step


def train() -> dict:
  """{'devices': how many, parameter and statistic paths ('.'-joined): values}."""
  config = base_config()
  config.freeze.before = 'backbone/blocks_13'
  config.optimizer.name = 'sgd'
  mesh = make_mesh()
  state, phases = create_train_state(create_model(config.model, 1), config, 10,
                                     jax.random.key(0), log=lambda _: None)
  state = replicate(state, mesh)
  step = jax.jit(make_train_step(phases[0].labels, Task(2)))
  rng = np.random.default_rng(0)
  for i in range(2):
    batch = {'image': rng.integers(0, 255, (4, 64, 64, 3), dtype=np.uint8),
             'label': np.array([0, 1, 1, 0], np.int32)}
    state, _ = step(state, shard_batch(batch, mesh), jax.random.key(i))
  return {'devices': len(jax.devices()),
          **{k.replace('/', '.'): np.asarray(v) for k, v in flat(state.params).items()},
          **{'stats.' + k.replace('/', '.'): np.asarray(v)
             for k, v in flat(state.batch_stats).items()}}


if __name__ == '__main__':
  np.savez(sys.argv[1], **train())
