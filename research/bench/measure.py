"""One benchmark row on one side, in its own process:

    python -m research.bench.measure jax|torch ROW_INDEX [--batch 20] [--steps 5]

prints one JSON line {"images_per_s": ..., "trainable": ...}: the median step time over
`steps` timed steps after 2 warm-up steps (compilation excluded), random inputs, Adam, a
one-logit head; and the number of scalar parameters that train on that side.
"""
import argparse
import json
import os
import statistics
import time

from research import compile_cache, parallel
from research.bench.rows import ROWS

WARMUP = 2


def timed(command: list[str]):
  """(wall-clock seconds, the finished process) of a command that must succeed."""
  import subprocess  # pylint: disable=import-outside-toplevel
  began = time.time()
  out = subprocess.run(command, capture_output=True, text=True, check=False)
  if out.returncode:
    raise RuntimeError(f'{" ".join(command)} failed:\n{out.stderr[-2000:]}')
  return time.time() - began, out


def median_seconds(fn, steps: int, block=lambda out: out) -> float:
  for _ in range(WARMUP):
    block(fn())
  times = []
  for _ in range(steps):
    began = time.perf_counter()
    block(fn())
    times.append(time.perf_counter() - began)
  return statistics.median(times)


def row_config(row, overrides: dict | None = None):
  """The row's config: the model at random init (speed does not depend on the values)."""
  from research.config import base_config  # pylint: disable=import-outside-toplevel
  config = base_config()
  config.model.name = row.model
  config.model.pretrained = False
  config.freeze.before = row.freeze
  config.update_from_flattened_dict(overrides or {})
  return config


def trainable_parameters(labels: dict, params) -> int:
  """Scalars this project trains: the parameters a phase's `labels` mark trainable."""
  import numpy as np  # pylint: disable=import-outside-toplevel

  from research.train.freeze import TRAINABLE, flat  # pylint: disable=import-outside-toplevel
  return sum(int(np.prod(v.shape)) for p, v in flat(params).items() if labels[p] == TRAINABLE)


def jax_trainable(row, size: int) -> int:
  """This project's trainable count for the row, from shapes alone (nothing is computed)."""
  import jax  # pylint: disable=import-outside-toplevel
  import jax.numpy as jnp  # pylint: disable=import-outside-toplevel

  from research.models import create_model  # pylint: disable=import-outside-toplevel
  from research.train.state import phases  # pylint: disable=import-outside-toplevel
  config = row_config(row)
  config.data.image_size = size
  model = create_model(config.model, 1)
  params = jax.eval_shape(model.init, jax.random.key(0),
                          jnp.zeros((1, size, size, 3), jnp.uint8))['params']
  return trainable_parameters(phases(model, config, params)[0].labels, params)


def jax_step(row, batch: int, overrides: dict):
  """This project's jitted, sharded train step on a random uint8 batch."""
  import jax  # pylint: disable=import-outside-toplevel
  import numpy as np  # pylint: disable=import-outside-toplevel

  from research.models import Task, create_model, get_spec  # pylint: disable=import-outside-toplevel
  from research.parallel import make_mesh, replicate, shard_batch  # pylint: disable=import-outside-toplevel
  from research.train.state import create_train_state  # pylint: disable=import-outside-toplevel
  from research.train.step import make_train_step  # pylint: disable=import-outside-toplevel

  config = row_config(row, overrides)
  size = get_spec(row.model).input_size
  mesh = make_mesh(batch)
  rng = np.random.default_rng(0)
  batch = shard_batch({'image': rng.integers(0, 255, (batch, size, size, 3), dtype=np.uint8),
                       'label': np.arange(batch, dtype=np.int32) % 2}, mesh)
  model = create_model(config.model, 1)
  state, phases = create_train_state(model, config, 10, jax.random.key(0), log=lambda _: None)
  holder = [replicate(state, mesh)]
  step = jax.jit(make_train_step(phases[0].labels, Task(2)))

  def train_once():
    holder[0], metrics = step(holder[0], batch, jax.random.key(1))
    return metrics
  return train_once, jax.block_until_ready, trainable_parameters(phases[0].labels, state.params)


def torch_step(row, batch: int):
  import torch  # pylint: disable=import-outside-toplevel

  from research.bench import torch_models  # pylint: disable=import-outside-toplevel
  from research.models import get_spec  # pylint: disable=import-outside-toplevel
  torch.set_num_threads(os.cpu_count())
  # XLA:CPU flushes denormals to zero; without it, randomly initialised frozen layers
  # (running statistics 0 and 1) make denormal activations and PyTorch runs 3x slower
  torch.set_flush_denormal(True)
  size = get_spec(row.model).input_size
  build = (torch_models.keras_train_step_fn if row.reference.startswith('Keras')
           else torch_models.train_step_fn)  # the Keras reference's backend: its docstring
  step, net = build(row.model, size, row.torch_freeze, batch)
  return step, lambda out: out, torch_models.trainable_parameters(net)


def main() -> None:
  parser = argparse.ArgumentParser(prog='python -m research.bench.measure')
  parser.add_argument('side', choices=('jax', 'torch'))
  parser.add_argument('row', type=int)
  parser.add_argument('--batch', type=int, default=20)
  parser.add_argument('--steps', type=int, default=5)
  parser.add_argument('--first-step', action='store_true',
                      help='print the seconds from here to the first step done (compilation '
                      'included) instead')
  parser.add_argument('--set', action='append', default=[], metavar='KEY=VALUE',
                      help='config overrides for the jax side, e.g. model.dtype=bfloat16')
  args = parser.parse_args()
  row = ROWS[args.row]
  began = time.perf_counter()
  if args.side == 'jax':
    parallel.use_cpu_cores()
    compile_cache.enable()
    overrides = dict(item.split('=', 1) for item in args.set)
    fn, block, trainable = jax_step(row, args.batch, overrides)
  else:
    fn, block, trainable = torch_step(row, args.batch)
  if args.first_step:
    block(fn())
    print(json.dumps({'first_step_s': time.perf_counter() - began}))
    return
  print(json.dumps({'images_per_s': args.batch / median_seconds(fn, args.steps, block),
                    'trainable': trainable}))


if __name__ == '__main__':
  main()
