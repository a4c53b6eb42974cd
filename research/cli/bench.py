"""`./run.sh bench`: this project beside PyTorch on every write-up's configuration and beside
timm's own train.py end to end, bf16, the compilation cache, the feature cache and the input
pipeline -> BENCHMARKS.md.

Every measurement runs in a process of its own (research.bench.measure), one at a time.
"""
import json
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import jax

from research import parallel, rundir
from research.bench import rounds as rounds_lib
from research.bench import timm_reference
from research.bench.accelerator import SECTION
from research.bench.measure import timed
from research.bench.rows import ROWS
from research.config import base_config
from research.data import load_source, run_batches
from research.machine import describe
from research.train import history

DTYPE_ROWS = (1, 3)  # EfficientNet-Lite0 and MobileNetV2, full fine-tune
FULL_ROWS = [i for i, row in enumerate(ROWS) if not row.freeze]  # every full fine-tune


def measure(side: str, row: int, *extra: str, env: dict | None = None) -> dict:
  out = subprocess.run([sys.executable, '-m', 'research.bench.measure', side, str(row), *extra],
                       capture_output=True, text=True, env=env, check=False)
  if out.returncode:
    raise RuntimeError(f'{side} row {row} failed:\n{out.stderr[-2000:]}')
  return json.loads(out.stdout.strip().splitlines()[-1])


def in_rounds(rows: list[int], sides: dict, rounds: int) -> dict:
  """{row: {side: [images/s per round]}}: every round measures every row on every side, one
  process at a time, in turn (side a, side b, side a, ...), so a slow minute of the machine
  falls on both sides of a round."""
  found = {i: {side: [] for side in sides} for i in rows}
  for r in range(rounds):
    for i in rows:
      for side, run in sides.items():
        found[i][side].append(run(i))
      print(f'round {r + 1}/{rounds}, row {i}: ' + ', '.join(
          f'{side} {found[i][side][-1]["images_per_s"]:.1f} img/s' for side in sides), flush=True)
  return found


def side_by_side(rows: list[int], steps: int, rounds: int) -> list[str]:
  """Each row on both sides in alternating rounds; the ratio with its interval."""
  found = in_rounds(rows, {'torch': lambda i: measure('torch', i, '--steps', str(steps)),
                           'jax': lambda i: measure('jax', i, '--steps', str(steps))}, rounds)
  lines = ['| configuration | reference | trainable parameters: reference / this project | '
           'reference img/s, median [min–max] | this project img/s | this project / reference '
           '[90%] |', '|---|---|---|---|---|---|']
  for i in rows:
    ref, ours = found[i]['torch'], found[i]['jax']
    if ref[0]['trainable'] != ours[0]['trainable']:
      raise RuntimeError(f'row {i}: the reference trains {ref[0]["trainable"]:,} parameters, '
                         f'this project {ours[0]["trainable"]:,}: not the same work')
    speeds = lambda side: [m['images_per_s'] for m in side]
    lines.append(f'| {ROWS[i].label} | {ROWS[i].reference} | {ref[0]["trainable"]:,} / '
                 f'{ours[0]["trainable"]:,} | {rounds_lib.spread(speeds(ref))} | {rounds_lib.spread(speeds(ours))} | '
                 f'{rounds_lib.cell(rounds_lib.ratio(speeds(ours), speeds(ref)))} |')
  print('\n'.join(lines), flush=True)
  return lines


def end_to_end(epochs: int) -> list[str]:
  """The main config for `epochs` epochs on ELPV, as `./run.sh` runs it (image check, split,
  augmentation, the loop, validation each epoch, the test report; Grad-CAM and feature maps
  off), then the PyTorch user's script (research.bench.torch_epoch) on the same split."""
  with tempfile.TemporaryDirectory() as tmp:
    run_dir = Path(tmp) / 'run'
    ours_total, _ = timed([sys.executable, '-m', 'research.cli.main',
                           'configs/efficientnet_adam.py', f'--config.num_epochs={epochs}',
                           '--config.gradcam.num_images=0', '--config.features.num_images=0',
                           f'--config.workdir={run_dir}'])
    records = history.read(run_dir / rundir.METRICS)
    ref_total, out = timed([sys.executable, '-m', 'research.bench.torch_epoch', str(run_dir),
                            '--epochs', str(epochs)])
    ref = json.loads(out.stdout.strip().splitlines()[-1])
  ours_trainable = measure('jax', 0, '--steps', '1')['trainable']
  if ref['trainable'] != ours_trainable:
    raise RuntimeError(f'end to end: the reference trains {ref["trainable"]:,} parameters, '
                       f'this project {ours_trainable:,}: not the same work')
  lines = ['| EfficientNet-Lite0 from blocks_12 on ELPV (' + f'{ref["train_images"]} train / '
           f'{ref["val_images"]} val images per epoch, batch 20) | PyTorch DataLoader + '
           'torchvision | this project (`./run.sh`) | ratio |', '|---|---|---|---|']
  for k in range(epochs):
    what = 'epoch 1 (this project: compilation included)' if k == 0 else f'epoch {k + 1}'
    lines.append(f'| {what}: train + validation, s | {ref["epoch_s"][k]:.1f} | '
                 f'{records[k]["seconds"]:.1f} | {ref["epoch_s"][k] / records[k]["seconds"]:.2f} |')
  lines.append(f'| whole command, s (start-up, data, {epochs} epochs, test split) | '
               f'{ref_total:.0f} | {ours_total:.0f} | {ref_total / ours_total:.2f} |')
  lines.append(f'| trainable parameters | {ref["trainable"]:,} | {ours_trainable:,} | |')
  print('\n'.join(lines[2:]), flush=True)
  return lines


def cpu_devices(rows: list[int], steps: int, rounds: int) -> list[str]:
  """This project's step on one CPU device beside every core a device of its own (the
  default: the batch split over as many as divide it, research.parallel), in alternating
  rounds."""
  devices = parallel.dividing(20, os.cpu_count())
  one_device = {**os.environ, 'JAX_NUM_CPU_DEVICES': '1'}
  return two_settings(rows, steps, rounds, {'one': one_device, 'every': None},
                      '| configuration | 1 device img/s, median [min–max] | every core a device '
                      'img/s | every core / 1 device [90%] |', f' ({devices} devices)')


def two_settings(rows: list[int], steps: int, rounds: int, envs: dict, header: str,
                 note: str = '') -> list[str]:
  """This project's step under two environments ({name: env, None for this one's}) in
  alternating rounds: per row both spreads and the second / first ratio with its interval."""
  found = in_rounds(rows, {name: lambda i, env=env: measure('jax', i, '--steps', str(steps),
                                                              env=env)
                           for name, env in envs.items()}, rounds)
  lines = [header, '|---|---|---|---|']
  for i in rows:
    first, second = ([m['images_per_s'] for m in found[i][k]] for k in envs)
    lines.append(f'| {ROWS[i].label} | {rounds_lib.spread(first)} | '
                 f'{rounds_lib.spread(second)}{note} | '
                 f'{rounds_lib.cell(rounds_lib.ratio(second, first))} |')
  print('\n'.join(lines), flush=True)
  return lines


def convolution_libraries(rows: list[int], steps: int, rounds: int) -> list[str]:
  """This project's step with XLA:CPU's own (Eigen) convolutions, the default
  (research.parallel.use_eigen_convolutions), beside YNNPACK's, in alternating rounds."""
  others = ' '.join(f for f in os.environ.get(parallel.XLA_FLAGS, '').split()
                    if 'ynn_fusion_type' not in f)  # the caller's other flags, on both sides
  env = {library: {**os.environ, parallel.XLA_FLAGS: f'{others} {flag}'.strip()}
         for library, flag in (('ynnpack', parallel.YNNPACK_CONVOLUTIONS),
                               ('eigen', parallel.EIGEN_CONVOLUTIONS))}
  return two_settings(rows, steps, rounds, env,
                      '| configuration | YNNPACK convolutions img/s, median [min–max] | XLA\'s own '
                      '(Eigen) img/s | Eigen / YNNPACK [90%] |')


def loop_rows() -> list[str]:
  """research.bench.loop: the real loop beside its bare step, each variant in a process."""
  lines = ['| configuration, steps/s | bare jitted step | the loop on premade batches | '
           'the loop with its input pipeline | loop / bare |', '|---|---|---|---|---|']
  labels = {'head': 'EfficientNet-Lite0 head only, cached features (the smallest step)',
            'main': 'EfficientNet-Lite0 from blocks_12, ELPV, augmentation (the main config)'}
  for variant, label in labels.items():
    _, out = timed([sys.executable, '-m', 'research.bench.loop', variant])
    r = json.loads(out.stdout.strip().splitlines()[-1])
    lines.append(f'| {label} | {r["bare"]:.2f} | {r["premade"]:.2f} ({r["premade"] / r["bare"]:.2f}) '
                 f'| {r["loop"]:.2f} | {r["loop"] / r["bare"]:.2f} |')
    print(lines[-1], flush=True)
  return lines


def dtypes(steps: int) -> list[str]:
  lines = ['| configuration | float32 img/s | bfloat16 img/s | ratio |', '|---|---|---|---|']
  for i in DTYPE_ROWS:
    f32 = measure('jax', i, '--steps', str(steps))['images_per_s']
    bf16 = measure('jax', i, '--steps', str(steps), '--set', 'model.dtype=bfloat16')[
        'images_per_s']
    lines.append(f'| {ROWS[i].label} | {f32:.1f} | {bf16:.1f} | {bf16 / f32:.2f} |')
    print(lines[-1], flush=True)
  return lines


def compile_cache() -> list[str]:
  """Seconds from start-up to the first train step done: an empty cache, then a filled one."""
  with tempfile.TemporaryDirectory() as cache:
    env = {**os.environ, 'JAX_COMPILATION_CACHE_DIR': cache}
    cold, warm = (measure('jax', 0, '--first-step', env=env)['first_step_s'] for _ in range(2))
  lines = ['| configuration | first run: s to first step | second run | ratio |',
           '|---|---|---|---|',
           f'| {ROWS[0].label} | {cold:.1f} | {warm:.1f} | {cold / warm:.1f}x faster |']
  print(lines[-1], flush=True)
  return lines


def feature_cache(epochs: int) -> list[str]:
  """A head-only run on ELPV (EfficientNet-Lite0, augmentation off) with and without cached
  features: median seconds of epochs after the first (train + validation)."""
  results = {}
  for cached in (False, True):
    with tempfile.TemporaryDirectory() as run_dir:
      began = time.time()
      subprocess.run([sys.executable, '-m', 'research.cli.main', 'configs/efficientnet_adam.py',
                      '--config.freeze.before=head', '--config.data.augment.rotation=0.0',
                      '--config.data.augment.shear=0.0', '--config.data.augment.zoom=0.0',
                      '--config.data.augment.hflip=False', f'--config.num_epochs={epochs}',
                      '--config.gradcam.num_images=0', '--config.features.num_images=0',
                      f'--config.feature_cache.enabled={cached}', f'--config.workdir={run_dir}'],
                     check=True, capture_output=True)
      total = time.time() - began
      records = history.read(Path(run_dir) / rundir.METRICS)
      later = sorted(r['seconds'] for r in records[1:])
      results[cached] = (later[len(later) // 2], records[0]['seconds'], total)
  (plain, plain_first, plain_total), (fast, fast_first, fast_total) = results[False], results[True]
  lines = ['| EfficientNet-Lite0, head only, ELPV (1836 train / 394 val images) | recomputed | '
           'cached | ratio |', '|---|---|---|---|',
           f'| epoch after the first (train + validation), s | {plain:.2f} | {fast:.2f} | '
           f'{plain / fast:.0f}x faster |',
           f'| first epoch, s (cached: the cache is built before it) | {plain_first:.2f} | '
           f'{fast_first:.2f} | |',
           f'| whole run of {epochs} epochs + test report, s | {plain_total:.0f} | '
           f'{fast_total:.0f} | {plain_total / fast_total:.1f}x faster |']
  print('\n'.join(lines[2:]), flush=True)
  return lines


def formulations(steps: int) -> list[str]:
  """ms per forward + backward (input and kernel gradients) of one layer, in this process:
  the formulation chosen on CPU, XLA's convolution, and PyTorch's (channels-last)."""
  import numpy as np  # pylint: disable=import-outside-toplevel
  import torch  # pylint: disable=import-outside-toplevel

  from research.bench.measure import median_seconds  # pylint: disable=import-outside-toplevel
  from research.models.layers import (_depthwise, grouped_conv, pads,  # pylint: disable=import-outside-toplevel
                                      pointwise_conv)
  torch.set_num_threads(os.cpu_count())
  rng = np.random.default_rng(0)
  lax_conv = lambda x, w: jax.lax.conv_general_dilated(
      x, w, (1, 1), 'SAME', dimension_numbers=('NHWC', 'HWIO', 'NHWC'))
  cases = [('3x3 depthwise, 20x112x112x96', (20, 112, 112, 96), (3, 3, 1, 96),
            lambda x, w: _depthwise(x, w, 1, tuple(pads(112, 3, 1, 'SAME') for _ in '01')),
            lambda x, w: grouped_conv(x, w, 1, 'SAME'), 'shifted multiply-adds',
            'feature_group_count conv'),
           ('1x1, 20x56x56, 64 -> 256', (20, 56, 56, 64), (1, 1, 64, 256),
            lambda x, w: pointwise_conv(x, w, 1), lax_conv, 'matrix product', 'lax.conv')]
  lines = ['| layer, forward + backward | chosen on CPU | ms | XLA convolution | ms | PyTorch ms |',
           '|---|---|---|---|---|---|']
  for label, xs, ws, ours, xla, ours_name, xla_name in cases:
    x = jax.numpy.asarray(rng.normal(size=xs), 'float32')
    w = jax.numpy.asarray(rng.normal(size=ws), 'float32')
    times = []
    for fn in (ours, xla):
      grad = jax.jit(jax.grad(lambda x, w, fn=fn: fn(x, w).sum(), argnums=(0, 1)))
      times.append(1000 * median_seconds(lambda: grad(x, w), steps, jax.block_until_ready))
    tx = torch.tensor(np.asarray(x)).permute(0, 3, 1, 2).contiguous(
        memory_format=torch.channels_last).requires_grad_()
    groups = xs[-1] if ws[2] == 1 else 1
    layer = torch.nn.Conv2d(xs[-1], ws[-1], ws[0], padding=ws[0] // 2, groups=groups,
                            bias=False).to(memory_format=torch.channels_last)

    def torch_once():
      tx.grad = None
      layer.zero_grad()
      layer(tx).sum().backward()
    reference = 1000 * median_seconds(torch_once, steps)
    lines.append(f'| {label} | {ours_name} | {times[0]:.0f} | {xla_name} | {times[1]:.0f} | '
                 f'{reference:.0f} |')
    print(lines[-1], flush=True)
  return lines


def input_pipeline(batches: int = 24, warmup: int = 4) -> list[str]:
  """Decode + resize to 224 + augment (rotation 40, shear 0.2, zoom 0.2, flip) of ELPV images:
  on one core (the load function alone, one image after another), in grain's threads in
  the training process (data.threads), and in grain worker processes (data.workers);
  then the cores a host needs to feed N images/s. The first `warmup` batches are not timed:
  threads and workers make batches ahead while the first one is awaited."""
  import numpy as np  # pylint: disable=import-outside-toplevel

  from research.data.pipeline import Augmented  # pylint: disable=import-outside-toplevel
  config = base_config()
  config.data.augment.update(dict(rotation=40.0, shear=0.2, zoom=0.2, hflip=True))
  source = load_source(config.data)
  records = [source[i] for i in range(20 * (batches + warmup))]
  load, rng = Augmented(224, config.data.augment), np.random.default_rng(0)
  load(records[0], rng)
  began = time.perf_counter()
  for record in records[:100]:
    load(record, rng)
  per_core = 100 / (time.perf_counter() - began)
  rates = {}
  for workers in (0, 2):
    iterator = run_batches(records, 1, 0, config.data, 224, 20, 0, workers=workers)
    for _ in range(warmup):  # threads, or worker processes, started and their buffers drawn
      next(iterator)
    began = time.perf_counter()
    for _ in range(batches):
      next(iterator)
    rates[workers] = batches * 20 / (time.perf_counter() - began)
    iterator.close()
  lines = ['| how | images/s |', '|---|---|',
           f'| one core: the load function alone, one image after another | {per_core:.0f} |',
           f'| grain, {config.data.threads} threads in the training process (data.workers=0, '
           f'the default on a CPU) | {rates[0]:.0f} |',
           f'| grain, 2 worker processes (data.workers=2) | {rates[2]:.0f} |', '',
           '| to feed a step of N images/s | cores for the input pipeline |', '|---|---|']
  lines += [f'| {n:,} | {-(-n // per_core):.0f} |' for n in (500, 1000, 3000, 5000, 10000)]
  print('\n'.join(lines), flush=True)
  return lines


def inference(rounds: int, model: str = 'efficientnet_lite0', size: int = 224) -> list[str]:
  """Images/s of the four runtimes in research.bench.inference (one process, alternating
  rounds), each against PyTorch eager as a ratio with its interval."""
  from research.bench import inference as bench_inference  # pylint: disable=import-outside-toplevel
  out = subprocess.run([sys.executable, '-m', 'research.bench.inference', '--model', model,
                        '--size', str(size), '--rounds', str(rounds)],
                       capture_output=True, text=True, check=False,
                       env={**os.environ, 'JAX_NUM_CPU_DEVICES': '1'})
  if out.returncode:
    raise RuntimeError(f'the inference bench failed:\n{out.stderr[-2000:]}')
  found = [json.loads(line) for line in out.stdout.splitlines() if line.startswith('{')]
  speeds = lambda name, batch: [r['images_per_s'] for r in found
                                if r['runtime'] == name and r['batch'] == batch]
  batches = sorted({r['batch'] for r in found})
  reference = bench_inference.RUNTIMES[0]
  lines = ['| runtime | ' + ' | '.join(f'batch {b}: img/s, median [min–max] | batch {b}: vs '
                                       f'{reference}' for b in batches) + ' |',
           '|---|' + '---|---|' * len(batches)]
  for name in bench_inference.RUNTIMES:
    cells = []
    for b in batches:
      values = speeds(name, b)
      cells.append(rounds_lib.spread(values))
      cells.append('—' if name == reference else
                   rounds_lib.cell(rounds_lib.ratio(values, speeds(reference, b))))
    lines.append(f'| {name} | ' + ' | '.join(cells) + ' |')
  print('\n'.join(lines), flush=True)
  return lines


def machine() -> str:
  import torch  # pylint: disable=import-outside-toplevel
  return (f'{describe()}, {len(jax.devices())} x {jax.devices()[0].platform} device(s); jax '
          f'{jax.__version__}, torch {torch.__version__}, Python {platform.python_version()}')


def main(args) -> None:
  """`args`: the bench command's (research.cli.main). The file is rewritten after each
  section, so a failure keeps what was measured; sections not asked for (`--sections`)
  stay as they were, each with the command and date that measured it."""
  command = './run.sh ' + ' '.join(args.argv)
  rows = [int(i) for i in args.rows.split(',')]
  sections = [
      ('side', 'Train step, side by side',
       f'{args.rounds} alternating rounds (each round: every row, the reference then this '
       'project); each measurement is its own process, one at a time: median images/s of '
       f'{args.steps} timed steps after 2 warm-up steps (compilation excluded), batch 20 at the '
       'model\'s input size, random inputs and initialisation, Adam, a one-logit head and '
       'binary cross-entropy. Both sides train the same parameters, counted per row (the bench '
       'stops if they differ; tests/test_bench.py checks every row and that no frozen parameter '
       'gets a gradient). PyTorch: `requires_grad=False` on every parameter of the frozen '
       'modules, those modules in eval mode, channels-last, all cores, denormals flushed to '
       'zero as XLA does, eager; EfficientNet-Lite without drop-connect, as this project\'s '
       'port; InceptionV3\'s BatchNorm scales fixed at 1, as Keras\'s (scale=False). '
       'NASNetMobile has no PyTorch implementation (torchvision and timm have none; Keras 3 '
       'refuses it on its torch backend): its reference is Keras 3\'s own `train_on_batch` on '
       'its JAX backend, layers[:752] frozen. This project runs as `./run.sh` does: every core '
       'its own CPU device (below). Ratio = this project / reference per round: the median '
       'with a 90% bootstrap interval over the rounds, and a verdict only where the interval '
       'excludes 1. '
       '`python -m research.bench.profile ROW` shows where a row\'s step spends its time.',
       lambda: side_by_side(rows, args.steps, args.rounds)),
      ('e2e', 'End to end: one run as a user runs it',
       f'The main config for {args.epochs} epochs on ELPV with `./run.sh` (image check, split, '
       'decoding and augmentation, the loop, validation each epoch, the test report; Grad-CAM '
       'and feature maps off) beside what a PyTorch user writes for the same job '
       '(research/bench/torch_epoch.py: a Dataset with PIL, torchvision transforms, a '
       'DataLoader with a worker per core, the same split, model, ImageNet weights, freezing, '
       'batch and epochs). Ratio = PyTorch seconds / this project\'s.',
       lambda: end_to_end(args.epochs)),
      ('timm', 'End to end against timm\'s train.py',
       f'The same job on both sides, each as its own command line, in {args.rounds} '
       'alternating rounds (timm, this project, timm, ...): MobileNetV2 fine-tuned whole '
       '(nothing frozen) from torchvision\'s ImageNet weights (the file this project ships; '
       'mapped tensor by tensor onto timm\'s `mobilenetv2_100`, whose ImageNet logits then '
       'equal torchvision\'s: tests/test_bench.py), on ELPV\'s train and validation split '
       '(this project\'s, written as ImageFolder folders of links for timm), '
       f'{timm_reference.EPOCHS} epochs, Adam at a constant 1e-3 without weight decay, batch '
       '20, images resized to 224 (bilinear) with a horizontal flip half the time and no other '
       'augmentation, ImageNet mean/std, dropout 0.2 before a new head, float32, validation '
       f'each epoch. timm {timm_reference.TIMM_VERSION}: that tag\'s own train.py with '
       '`--pretrained-path` (its new head initialised its own way), no AMP, EMA, label '
       'smoothing, mixup or random erasing, channels-last, a loader worker per core, run on '
       'CPU-only torch through research/bench/timm_reference.py (which stubs two torchvision '
       'registration modules and flushes denormals to zero, as XLA does); the command line is '
       '`timm_reference.command`. This project: `./run.sh configs/efficientnet_adam.py` '
       '(batch 20, Adam 1e-3, flip) with `--config.model.name=mobilenet_v2`, '
       '`--config.freeze.before=` (nothing frozen), rotation, shear and zoom 0, Grad-CAM and '
       'feature maps off; it also checks every image and the split for leaks first and scores '
       'the test split at the end, which timm does not. The heads differ: timm\'s has 2 logits '
       'and softmax cross-entropy (2,562 parameters), this project\'s one logit and binary '
       'cross-entropy (1,281), equivalent for two classes; the table counts both sides\' '
       'trainable parameters. Ratio = timm seconds / this project\'s per round: the median '
       'with a 90% bootstrap interval over the rounds where there are 2 or more ("faster": '
       'this project faster; "within noise" where it includes 1). Accuracy at each side\'s '
       'best epoch by validation accuracy, with its Wilson 95% interval; the difference with '
       'Newcombe\'s 95% interval from the two (unpaired: timm\'s summary.csv gives no '
       'per-image results, so the pairing of the same images is not used).',
       lambda: timm_reference.section(args.rounds, args.timm_train)),
      ('devices', 'Every core a CPU device',
       'This project\'s step with one CPU device (JAX_NUM_CPU_DEVICES=1) beside the default, '
       'every core a device and the batch split over as many as divide it into parts of 4 '
       'images or more (research/parallel.py). XLA:CPU runs many small operations on one '
       'thread; split, each device\'s run on its own.',
       lambda: cpu_devices(rows, args.steps, args.rounds)),
      ('convolutions', 'Which library convolves',
       'This project\'s step with XLA:CPU\'s own (Eigen) convolutions, the default '
       '(research/parallel.py `use_eigen_convolutions`), beside YNNPACK\'s, which jaxlib '
       f'0.10 otherwise picks for every convolution on a CPU '
       f'(`XLA_FLAGS={parallel.YNNPACK_CONVOLUTIONS}`), in {args.rounds} alternating rounds; '
       'matrix products stay YNNPACK\'s either way; the full fine-tune rows among `--rows`. '
       'Ratio = Eigen / YNNPACK per round: the median with a 90% bootstrap interval over the '
       'rounds.',
       lambda: convolution_libraries([i for i in rows if i in FULL_ROWS], args.steps,
                                     args.rounds)),
      ('loop', 'The training loop beside its step',
       'Steps/s of the real loop (research.train.loop, an epoch after the first) and of its '
       'bare jitted step repeated on one batch already on the devices; the loop on batches '
       'made before it started shows what the loop itself costs, the loop with its input '
       'pipeline what a run gets (decoding and augmentation share the cores with XLA here).',
       loop_rows),
      ('bf16', 'bfloat16 compute (`--config.model.dtype=bfloat16`)',
       'This project alone, float32 vs bfloat16 compute (parameters and BatchNorm statistics '
       'float32). XLA:CPU converts bfloat16 matrix products and convolutions to float32, so on '
       'CPU the switch costs time: `model.dtype=auto` (the default) computes in float32 on a '
       'CPU, bfloat16 on a GPU or TPU.', lambda: dtypes(args.steps)),
      ('compile', 'Persistent compilation cache',
       'Seconds from a fresh process\'s start (after imports) to its first train step done, '
       'model built and step compiled: with an empty JAX compilation cache, then again with '
       'the cache the first run filled.', compile_cache),
      ('cache', 'Frozen features computed once (`feature_cache`)',
       f'Two runs of the main config made head-only with augmentation off, {args.epochs} '
       'epochs each, with `feature_cache.enabled` False and True (equal results: '
       'tests/test_feature_cache.py).', lambda: feature_cache(args.epochs)),
      ('layers', 'Formulations chosen on CPU',
       'One layer\'s forward and backward (input and kernel gradients), median ms: what '
       'research/models/layers.py computes on CPU, XLA\'s own convolution, and PyTorch. On '
       'other backends the XLA convolution is used.', lambda: formulations(args.steps)),
      ('inference', 'Inference: JAX, ONNX float32 and int8, PyTorch eager',
       f'EfficientNet-Lite0 at 224 px with a one-logit head (the main config\'s network), '
       f'uint8 images in and probabilities out with the normalisation inside, in {args.rounds} '
       'alternating rounds in one process (research/bench/inference.py; each round measures '
       'every runtime warm, one after the other: the median of 10 calls at batch 1, 3 at batch '
       '32, after 2 warm-up calls): this project\'s JAX model as `predict` runs it, its '
       '`./run.sh export` ONNX file in onnxruntime, the same file quantized to int8 '
       '(`--quantize int8`: QDQ, weights per channel), and PyTorch eager on the same '
       'architecture (efficientnet_lite_pytorch; eval mode, channels-last, inference mode), '
       'all cores each. Ratio = runtime / PyTorch eager per round: the median with a 90% '
       'bootstrap interval over the rounds; "within noise" where it includes 1.',
       lambda: inference(args.rounds)),
      ('pipeline', 'Input pipeline',
       'ELPV\'s 300 x 300 greyscale PNGs decoded, resized to 224 and augmented (rotation 40, '
       'shear 0.2, zoom 0.2, flip), batch 20. Larger images decode slower: measure your own '
       'with a short run.', input_pipeline),
  ]
  out, wanted = Path(args.out), set(args.sections.split(','))
  if 'timm' in wanted:  # before any section: offline without a copy, one line and nothing lost
    timm_reference.train_script(args.timm_train)
  kept = dict(re.findall(r'\n## ([^\n]*)\n(.*?)(?=\n## |\Z)', out.read_text(), re.S)
              ) if out.exists() else {}
  when = f'Measured by `{command}` on {time.strftime("%Y-%m-%d")}. Machine: {machine()}.'
  text = ['# Benchmarks', '', 'Each section names the command, the date and the machine that '
          'measured it: compare numbers within a section, not across sections.', '']
  for key, title, intro, measure_section in sections:
    if key in wanted:
      print(f'## {title}', flush=True)
      kept[title] = '\n'.join(['', when, '', intro, '', *measure_section(), ''])
    if title in kept:
      text.append(f'## {title}\n{kept[title].rstrip()}\n')
    out.write_text('\n'.join(text + [f'## {t}\n{kept[t].rstrip()}\n' for t in kept
                                      if t.startswith(SECTION[3:])]))
  print(f'wrote {args.out}')
