"""`./run.sh bench`: train-step, forward and input-pipeline images/s -> BENCHMARKS.md.

Median over timed steps after warm-up (compilation excluded), on random uint8
batches at the model's input size; the pipeline reads and augments ELPV images.
"""
import argparse
import os
import platform
import statistics
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from research.config import base_config
from research.data import load_source, train_batches
from research.evaluate.predict import predict_batch
from research.models import create_model, get_spec
from research.models.layers import DepthwiseConv
from research.parallel import make_mesh, replicate, shard_batch
from research.train.state import create_train_state
from research.train.step import make_train_step

# name -> freeze.before: what each train-step row freezes
FREEZE = {'full fine-tune': '', 'backbone frozen': 'head'}


def median_seconds(fn, warmup: int, steps: int) -> float:
  for _ in range(warmup):
    jax.block_until_ready(fn())
  times = []
  for _ in range(steps):
    began = time.perf_counter()
    jax.block_until_ready(fn())
    times.append(time.perf_counter() - began)
  return statistics.median(times)


def model_rows(name: str, batch_size: int, steps: int) -> list[tuple[str, float]]:
  config = base_config()
  config.model.name = name
  config.model.pretrained = False  # speed does not depend on the values
  size = get_spec(name).input_size
  mesh = make_mesh()
  batch = shard_batch({'image': np.random.default_rng(0).integers(0, 255, (batch_size, size, size, 3),
                                                                  dtype=np.uint8),
                       'label': np.arange(batch_size, dtype=np.int32) % 2}, mesh)
  rows = []
  for what, before in FREEZE.items():
    config.freeze.before = before
    model = create_model(config.model, 1)
    state, phases = create_train_state(model, config, 10, jax.random.key(0))
    state = replicate(state, mesh)
    step = jax.jit(make_train_step(phases[0].labels, binary=True))
    holder = [state]

    def train_once():
      holder[0], metrics = step(holder[0], batch, jax.random.key(1))
      return metrics

    rows.append((f'train step, {what}', batch_size / median_seconds(train_once, 2, steps)))
  weights = {'params': holder[0].params, 'batch_stats': holder[0].batch_stats}
  rows.append(('forward only (eval step)', batch_size / median_seconds(
      lambda: predict_batch(model, True, weights, batch['image']), 2, steps)))
  return rows


def pipeline_images_per_s(size: int, batch_size: int, batches: int) -> float:
  config = base_config()
  config.data.augment.update(dict(rotation=40.0, shear=0.2, zoom=0.2, hflip=True))
  source = load_source(config.data)
  records = list(zip(source.paths, source.labels))[:batch_size * (batches + 2)]
  iterator = iter(train_batches(records, 1, config.data, size, batch_size, 0))
  next(iterator)  # thread start-up
  began = time.perf_counter()
  for _ in range(batches):
    next(iterator)
  return batches * batch_size / (time.perf_counter() - began)


def depthwise_rows(steps: int) -> list[tuple[str, float]]:
  """ms per forward+backward of one 3x3 depthwise conv, 20x112x112x96, both ways."""
  x = jnp.asarray(np.random.default_rng(0).normal(size=(20, 112, 112, 96)), jnp.float32)
  shifted = DepthwiseConv(3)
  params = shifted.init(jax.random.key(0), x)
  grouped = lambda p, x: jax.lax.conv_general_dilated(
      x, p['params']['kernel'], (1, 1), 'SAME', dimension_numbers=('NHWC', 'HWIO', 'NHWC'),
      feature_group_count=96)
  rows = []
  for what, fn in (('feature_group_count conv', grouped), ('shifted multiply-adds', shifted.apply)):
    grad = jax.jit(jax.grad(lambda p, x: fn(p, x).sum(), argnums=(0, 1)))
    rows.append((what, 1000 * median_seconds(lambda: grad(params, x), 1, steps)))
  return rows


def machine() -> str:
  cpu = next((l.split(':', 1)[1].strip() for l in Path('/proc/cpuinfo').read_text().splitlines()
              if l.startswith('model name')), platform.processor())
  return (f'{cpu}, {len(jax.devices())} x {jax.devices()[0].platform} device(s), '
          f'{os.cpu_count()} cores; jax {jax.__version__}, Python '
          f'{platform.python_version()}')


def main(argv: list[str]) -> None:
  parser = argparse.ArgumentParser(prog='./run.sh bench')
  parser.add_argument('--models', default='efficientnet_lite0,mobilenet_v2')
  parser.add_argument('--batch-sizes', default='20,32')
  parser.add_argument('--steps', type=int, default=5)
  parser.add_argument('--out', default='BENCHMARKS.md')
  args = parser.parse_args(argv)
  lines = ['| model | batch | what | images/s |', '|---|---|---|---|']
  for name in args.models.split(','):
    for batch_size in map(int, args.batch_sizes.split(',')):
      for what, value in model_rows(name, batch_size, args.steps):
        lines.append(f'| {name} | {batch_size} | {what} | {value:.1f} |')
        print(lines[-1], flush=True)
      pipe = pipeline_images_per_s(get_spec(name).input_size, batch_size, 10)
      lines.append(f'| {name} | {batch_size} | input pipeline (ELPV, decode + augment) | {pipe:.1f} |')
      print(lines[-1], flush=True)
  lines += ['', '| 3x3 depthwise conv, 20x112x112x96, forward + backward | ms |', '|---|---|']
  lines += [f'| {what} | {ms:.0f} |' for what, ms in depthwise_rows(args.steps)]
  command = './run.sh bench ' + ' '.join(argv)
  text = '\n'.join([
      '# Benchmarks', '',
      f'Written by `{command.strip()}` on {time.strftime("%Y-%m-%d")}.', '',
      f'Machine: {machine()}.', '',
      'Train-step and forward rows: median seconds per step over timed steps after 2 warm-up '
      'steps (compilation excluded), random uint8 batches at the model\'s input size, Adam, '
      'one-logit head. "backbone frozen" freezes everything before the head (`freeze.before='
      'head`): the backward pass stops at the head, so it should cost about a forward pass. '
      'Input pipeline: grain, ELPV PNGs decoded, resized and augmented (rotation 40, shear 0.2, '
      'zoom 0.2, flip) in `data.threads`=4 threads.', '', *lines, ''])
  Path(args.out).write_text(text)
  print(f'wrote {args.out}')
