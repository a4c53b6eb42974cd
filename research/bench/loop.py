"""The loop row: steps/s of the real training loop (research.train.loop.Training, an epoch after
the first) beside its bare jitted step on the same model and batch, in one process:

    python -m research.bench.loop main|head [--epochs 4]

'main' is the main config (EfficientNet-Lite0 from blocks_12, ELPV, augmentation);
'head' the smallest step users run: the head alone on cached features. Prints one JSON
line: `bare` (the step alone, repeated on one batch already on the devices), `premade`
(the loop over batches made before it started: what the loop itself costs) and `loop`
(the loop with its input pipeline, as `./run.sh` trains), each the median steps/s of the
epochs after the first (the bare step: of as many rounds of an epoch's steps).
"""
import argparse
import itertools
import json
import statistics
import time

import jax

from research import compile_cache, parallel
from research.config import load
from research.data import load_source, make_split, split_records, steps_per_epoch
from research.train.loop import PreemptionNotice, Training, build, on_devices, variables
from research.train.step import zero_totals

VARIANTS = {
    'main': [],
    'head': ['freeze.before=head', 'data.augment.rotation=0.0', 'data.augment.shear=0.0',
             'data.augment.zoom=0.0', 'data.augment.hflip=False'],
}


def epoch_steps_per_s(training, state, batches, epoch: int) -> tuple[float, object]:
  """(steps/s of one epoch of `training` on `batches`, the state after it)."""
  began = time.perf_counter()
  state, totals = training.train_epoch(state, batches, epoch, 0,
                                       zero_totals((epoch - 1) * training.setup.steps),
                                       PreemptionNotice())
  jax.block_until_ready(totals)
  return training.setup.steps / (time.perf_counter() - began), state


def measure(variant: str, epochs: int, run_dir: str) -> dict:
  config = load('configs/efficientnet_adam.py', [*VARIANTS[variant], f'num_epochs={epochs}'])
  source = load_source(config.data)
  split = split_records(source, make_split(source, tuple(config.data.split), config.seed))
  steps = steps_per_epoch(len(split['train']), config.batch_size)
  setup = build(config, len(source.class_names), steps, log=lambda _: None)
  training = Training(config, run_dir, setup, split['train'], None, lambda _: None)
  training.set_phase(1)
  training.log_every = 0  # as at a terminal: the bar alone, no log lines
  if config.feature_cache.enabled and variant == 'head':
    from research.train.feature_cache import FeatureCache  # pylint: disable=import-outside-toplevel
    training.cache = FeatureCache(config, setup.model, setup.task, variables(setup.state),
                                  setup.mesh, split['train'], run_dir, lambda _: None)
  state, rates = setup.state, {'loop': [], 'premade': [], 'bare': []}
  batches = training.batches(0)
  for epoch in range(1, epochs + 1):  # the first compiles
    rate, state = epoch_steps_per_s(training, state, batches, epoch)
    rates['loop'].append(rate)
  batches.close()
  premade = [next(b) for b in [training.batches(0)] for _ in range(steps)]
  cycle = on_devices(iter([jax.device_get(b) for b in premade] * epochs), setup.mesh)
  for epoch in range(1, epochs + 1):
    rate, state = epoch_steps_per_s(training, state, cycle, epoch)
    rates['premade'].append(rate)
  one, totals = premade[0], zero_totals()
  for _ in range(epochs):
    jax.block_until_ready(state)
    began = time.perf_counter()
    for _ in itertools.repeat(None, steps):
      state, totals = training.step_fn(state, totals, one, training.rng)
    jax.block_until_ready(state)
    rates['bare'].append(steps / (time.perf_counter() - began))
  training.checkpoints.close()
  return {**{k: statistics.median(v[1:]) for k, v in rates.items()}, 'steps': steps,
          'batch': config.batch_size}


def main() -> None:
  parser = argparse.ArgumentParser(prog='python -m research.bench.loop')
  parser.add_argument('variant', choices=tuple(VARIANTS))
  parser.add_argument('--epochs', type=int, default=4)
  parser.add_argument('--run-dir', default='/tmp/research-bench-loop')
  args = parser.parse_args()
  parallel.use_cpu_cores()
  compile_cache.enable()
  print(json.dumps(measure(args.variant, args.epochs, args.run_dir)))


if __name__ == '__main__':
  main()
