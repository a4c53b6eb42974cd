"""`./run.sh bench --accelerator`: the check for a GPU or TPU, in under 10 minutes on one device.

run.sh first installs the CUDA build of the pinned jax (`jax[cuda12]==<version>`); then this
measures, in this process: ResNet50 and EfficientNet-B0 training images/s (full fine-tune,
`model.dtype=auto`: bfloat16 on the device) at batch 256; the loop row (the real loop beside
its bare step, research.bench.loop); the input pipeline with this host's worker processes;
and the main command itself, to compare its test accuracy with the CPU run's. The section
"Accelerator" of BENCHMARKS.md is written (replaced if there) with the device's name.

`--smoke` runs every part on tiny settings (a CPU can run it: the test suite does).
"""
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import jax
import numpy as np

from research.bench.measure import median_seconds
from research.config import base_config
from research.data import load_source, run_batches, worker_count
from research.errors import UserError
from research.machine import describe

SECTION = '## Accelerator'


def train_rate(model: str, batch: int, size: int, steps: int) -> float:
  """Images/s of this project's jitted, sharded full fine-tune step on random uint8 images."""
  from research.models import Task, create_model  # pylint: disable=import-outside-toplevel
  from research.parallel import make_mesh, replicate, shard_batch  # pylint: disable=import-outside-toplevel
  from research.train.state import create_train_state  # pylint: disable=import-outside-toplevel
  from research.train.step import make_train_step  # pylint: disable=import-outside-toplevel
  config = base_config()
  config.model.name, config.model.pretrained, config.data.image_size = model, False, size
  mesh, rng = make_mesh(batch), np.random.default_rng(0)
  images = shard_batch({'image': rng.integers(0, 255, (batch, size, size, 3), dtype=np.uint8),
                        'label': np.arange(batch, dtype=np.int32) % 2}, mesh)
  state, phases = create_train_state(create_model(config.model, 1), config, 10,
                                     jax.random.key(0), log=lambda _: None)
  holder = [replicate(state, mesh)]
  step = jax.jit(make_train_step(phases[0].labels, Task(2)), donate_argnums=0)

  def once():
    holder[0], metrics = step(holder[0], images, jax.random.key(1))
    return metrics
  return batch / median_seconds(once, steps, jax.block_until_ready)


def pipeline_rate(images: int, size: int) -> tuple[float, int]:
  """(images/s, workers) of the training input pipeline with the workers chosen for this
  host beside an accelerator (data.workers=-1), start-up excluded."""
  config = base_config()
  config.data.augment.update(dict(rotation=40.0, shear=0.2, zoom=0.2, hflip=True))
  source = load_source(config.data)
  records = [source[i] for i in range(min(images, len(source)))]
  workers = worker_count(config.data, accelerator=True)
  iterator = run_batches(records, 1, 0, config.data, size, 20, 0, workers=workers)
  next(iterator)
  began, seen = time.perf_counter(), 0
  for batch in iterator:
    seen += len(batch['label'])
  iterator.close()
  return seen / (time.perf_counter() - began), workers


def main_command(smoke: bool) -> dict:
  """The main command (or, with `smoke`, a small model for one epoch on 32 px images):
  wall-clock seconds and its test report."""
  with tempfile.TemporaryDirectory() as tmp:
    extra = (['--config.model.name=simple_cnn', '--config.model.pretrained=False',
              '--config.freeze.before=', '--config.num_epochs=1', '--config.data.image_size=32',
              '--config.gradcam.num_images=1', '--config.features.num_images=1']
             if smoke else [])
    began = time.time()
    done = subprocess.run([sys.executable, '-m', 'research.cli.main',
                           'configs/efficientnet_adam.py', *extra, f'--config.workdir={tmp}/run'],
                          capture_output=True, text=True, check=False)
    if done.returncode:
      raise RuntimeError(f'the main command failed:\n{done.stderr[-2000:]}')
    report = json.loads((Path(tmp) / 'run' / 'report.json').read_text())
  return {'seconds': time.time() - began, 'accuracy': report['accuracy'],
          'balanced_accuracy': report['balanced_accuracy']}


def run(smoke: bool = False) -> list[str]:
  from research.bench import loop  # pylint: disable=import-outside-toplevel
  device = jax.devices()[0]
  batch, size, steps = (4, 32, 2) if smoke else (256, 224, 10)
  lines = [SECTION, '', f'Written by `./run.sh bench --accelerator` on {time.strftime("%Y-%m-%d")}'
           f'{" (smoke: tiny settings)" if smoke else ""}: {len(jax.devices())} x '
           f'{device.device_kind} ({device.platform}), jax {jax.__version__}; host {describe()}.',
           '', '| full fine-tune, model.dtype=auto | batch | images/s |', '|---|---|---|']
  for model in (('simple_cnn',) if smoke else ('resnet50', 'efficientnet_b0')):
    lines.append(f'| {model} | {batch} | {train_rate(model, batch, size, steps):.0f} |')
    print(lines[-1], flush=True)
  lines += ['', '| loop row (steps/s) | bare step | loop on premade batches | loop |',
            '|---|---|---|---|']
  for variant in (() if smoke else ('main', 'head')):
    with tempfile.TemporaryDirectory() as tmp:
      r = loop.measure(variant, 2, tmp)
    lines.append(f'| {variant} | {r["bare"]:.1f} | {r["premade"]:.1f} | {r["loop"]:.1f} |')
  rate, workers = pipeline_rate(60 if smoke else 2000, size)
  lines += ['', f'Input pipeline at {size} px with {workers} worker processes (this host\'s '
            f'default beside an accelerator): {rate:.0f} images/s.', '']
  run_ = main_command(smoke)
  lines += [f'The main command{" (smoke)" if smoke else ""}: {run_["seconds"]:.0f} s, test '
            f'accuracy {run_["accuracy"]:.4f}, balanced accuracy '
            f'{run_["balanced_accuracy"]:.4f}.', '']
  return lines


def write(lines: list[str], path: Path) -> None:
  """Replaces (or appends) the Accelerator section of `path`."""
  text = path.read_text() if path.exists() else '# Benchmarks\n'
  head, _, rest = text.partition(SECTION)
  tail = rest[rest.find('\n## '):] if '\n## ' in rest else ''
  path.write_text(head.rstrip() + '\n\n' + '\n'.join(lines) + tail)


def main(args) -> None:
  if jax.default_backend() == 'cpu' and not args.smoke:
    raise UserError(f'no accelerator: jax sees {jax.devices()} (on a GPU machine run.sh '
                    'installs jax[cuda12] first; --smoke runs the check on tiny settings here)')
  write(run(args.smoke), Path(args.out))
  print(f'wrote the {SECTION[3:]} section of {args.out}')
