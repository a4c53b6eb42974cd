"""The end-to-end reference that is not ours: timm's own train.py (pytorch-image-models) on the
job this project's `./run.sh` does, MobileNetV2 fine-tuned whole from torchvision's ImageNet
weights on a run's split of ELPV:

    python -m research.bench.timm_reference TRAIN_PY [train.py's arguments]

runs train.py as `python train.py ...` would, after two things: torchvision's registration
modules are stubbed (research.bench.torch_models.torchvision: torchvision 0.28.0 is a CUDA
wheel that does not import on CPU-only torch otherwise) and denormals are flushed to zero, as
XLA does for this project and the other PyTorch references of the bench.

The rest prepares train.py's inputs and reads what it wrote: its script (a local copy, or the
pinned tag's file from GitHub, downloaded once into the cache), the split as ImageFolder
folders of links, torchvision's weights mapped onto timm's `mobilenetv2_100`, the command line,
and its summary.csv. `section` is `./run.sh bench --sections timm`.
"""
import collections
import csv
import hashlib
import os
import re
import runpy
import shutil
import sys
import tempfile
from pathlib import Path

from research import rundir
from research.bench.measure import timed
from research.errors import UserError
from research.train import history

TIMM_VERSION = '1.0.28'  # as pinned in run.sh; train.py must be the same tag's
TRAIN_URL = ('https://raw.githubusercontent.com/huggingface/pytorch-image-models/'
             f'v{TIMM_VERSION}/train.py')
MODEL = 'mobilenetv2_100'  # timm's name for torchvision's mobilenet_v2 (width 1.0)
CLASSIFIER = 'classifier.'  # the 1000-class head, on both sides
SPLITS = {'train': 'train', 'val': 'validation'}  # this project's split -> train.py's folder
EPOCHS, BATCH, LEARNING_RATE = 2, 20, 1e-3
EXPERIMENT = 'timm'  # train.py writes into OUTPUT/EXPERIMENT/
OUR_CONFIG = 'configs/efficientnet_adam.py'
# ImageNet normalisation (torchvision's, this project's registry's for mobilenet_v2)
MEAN, STD = ('0.485', '0.456', '0.406'), ('0.229', '0.224', '0.225')


class TimmReferenceError(UserError, RuntimeError):
  """train.py, its weights or its data could not be prepared."""


def cached(url: str = TRAIN_URL) -> Path:
  """Where train_script keeps a downloaded train.py."""
  from research import cache  # pylint: disable=import-outside-toplevel
  tag = f'v{TIMM_VERSION}' if url == TRAIN_URL else hashlib.sha256(url.encode()).hexdigest()[:16]
  return cache.directory('timm') / f'train-{tag}.py'


def train_script(where: str = '') -> Path:
  """train.py: a local path as it is; a URL (default: TRAIN_URL, the pinned tag's) downloaded
  once into the cache (`cached`) and reused after."""
  from research.weights.files import download  # pylint: disable=import-outside-toplevel
  where = where or TRAIN_URL
  if '://' not in where:
    if not Path(where).is_file():
      raise TimmReferenceError(f'timm train.py {where} does not exist: give --timm-train a '
                               f'copy of {TRAIN_URL} (timm {TIMM_VERSION}) or its URL')
    return Path(where)
  path = cached(where)
  if not path.exists():
    try:
      download(where, path)
    except OSError as e:
      raise TimmReferenceError(f'could not download {where} ({e}): save timm {TIMM_VERSION}\'s '
                               f'train.py and give its path with --timm-train PATH, or leave '
                               f'timm out of --sections') from None
  return path


def write_folders(class_names, split: dict, root: Path) -> dict:
  """train/<class>/ and validation/<class>/ under `root`, a symbolic link per image of the
  split's train and val records (`research.data.split.load_split`), named by its place in the
  split and its file name; {folder: {class: images}}."""
  counts = {}
  for name, folder in SPLITS.items():
    counts[folder] = collections.Counter()
    for c in class_names:
      (root / folder / c).mkdir(parents=True, exist_ok=True)
    for k, (path, label) in enumerate(split[name]):
      os.symlink(os.path.abspath(path),
                 root / folder / class_names[label] / f'{k:05d}-{Path(path).name}')
      counts[folder][class_names[label]] += 1
  return {folder: dict(c) for folder, c in counts.items()}


def timm_state_dict(torchvision_state: dict, timm_state: dict) -> collections.OrderedDict:
  """torchvision's mobilenet_v2 state dict as timm's mobilenetv2_100's: the same layers in
  the same order (stem, 17 inverted residual blocks, the 1x1 head convolution, each with its
  BatchNorm), so tensors pair up in order; every pair must have the same shape. Heads
  (`classifier.*`) pair up only where both dicts have them."""
  source = [(k, v) for k, v in torchvision_state.items()
            if CLASSIFIER not in k or any(CLASSIFIER in t for t in timm_state)]
  target = [(k, v) for k, v in timm_state.items()
            if CLASSIFIER not in k or any(CLASSIFIER in s for s in torchvision_state)]
  if len(source) != len(target):
    raise TimmReferenceError(f'torchvision\'s mobilenet_v2 has {len(source)} tensors, timm\'s '
                             f'{MODEL} {len(target)}: not the same architecture')
  mapped = collections.OrderedDict()
  for (s, value), (t, like) in zip(source, target):
    if tuple(value.shape) != tuple(like.shape):
      raise TimmReferenceError(f'torchvision {s} {tuple(value.shape)} does not map onto timm '
                               f'{t} {tuple(like.shape)}: not the same architecture')
    mapped[t] = value
  return mapped


def timm_model(num_classes: int = 1000):
  """timm's MobileNetV2 at random init (no download)."""
  from research.bench import torch_models  # pylint: disable=import-outside-toplevel
  torch_models.torchvision()  # timm imports torchvision
  import timm  # pylint: disable=import-outside-toplevel
  return timm.create_model(MODEL, pretrained=False, num_classes=num_classes)


def torchvision_weights() -> dict:
  """torchvision's mobilenet_v2 ImageNet state dict, as this project ships it."""
  import torch  # pylint: disable=import-outside-toplevel

  from research.models import get_spec  # pylint: disable=import-outside-toplevel
  from research.weights.files import resolve  # pylint: disable=import-outside-toplevel
  return torch.load(resolve(get_spec('mobilenet_v2').weights, log=lambda _: None),
                    map_location='cpu', weights_only=True)


def write_checkpoint(path: Path) -> Path:
  """The ImageNet backbone in timm's names, without the 1000-class head, for train.py's
  `--pretrained --pretrained-path` (which initialises a new head for --num-classes)."""
  import torch  # pylint: disable=import-outside-toplevel
  backbone = {k: v for k, v in timm_model().state_dict().items() if CLASSIFIER not in k}
  torch.save(timm_state_dict(torchvision_weights(), backbone), path)
  return path


def command(train_py: Path, data: Path, checkpoint: Path, output: Path, classes: int,
            epochs: int = EPOCHS, workers: int | None = None) -> list[str]:
  """train.py's command line for the job: MobileNetV2 from the ImageNet backbone with a new
  head, everything trained; Adam at a constant 1e-3 without weight decay; batch 20; the
  image resized to 224 (scale and ratio 1: the crop is the whole of a square image, as ELPV's
  are, where this project stretches any image to a square), a horizontal flip
  half the time and no other augmentation (no colour jitter, auto-augment, random erasing,
  mixup or cutmix), no label smoothing; dropout 0.2 before the head (torchvision's and this
  project's); float32 (no AMP), no EMA; bilinear resizing and ImageNet mean/std as this
  project; on the CPU, channels-last, a loader worker per core."""
  workers = os.cpu_count() if workers is None else workers
  return [sys.executable, '-m', 'research.bench.timm_reference', str(train_py),
          '--data-dir', str(data), '--train-split', SPLITS['train'],
          '--val-split', SPLITS['val'], '--model', MODEL, '--num-classes', str(classes),
          '--pretrained', '--pretrained-path', str(checkpoint), '--drop', '0.2',
          '--device', 'cpu', '--channels-last',
          '--opt', 'adam', '--lr', str(LEARNING_RATE), '--weight-decay', '0',
          # a step schedule that never decays: the rate stays 1e-3 ('none' fails in 1.0.28)
          '--sched', 'step', '--decay-rate', '1', '--warmup-epochs', '0',
          '--epochs', str(epochs), '--batch-size', str(BATCH),
          '--validation-batch-size', str(BATCH),
          '--input-size', '3', '224', '224', '--crop-pct', '1.0',
          '--interpolation', 'bilinear', '--train-interpolation', 'bilinear',
          '--mean', *MEAN, '--std', *STD,
          '--scale', '1', '1', '--ratio', '1', '1', '--hflip', '0.5', '--vflip', '0',
          '--color-jitter', '0', '--reprob', '0', '--mixup', '0', '--cutmix', '0',
          '--smoothing', '0', '--workers', str(workers), '--seed', '0',
          '--output', str(output), '--experiment', EXPERIMENT]


def our_overrides(run_dir: Path, epochs: int = EPOCHS) -> list[str]:
  """OUR_CONFIG (batch 20, Adam 1e-3, flip) for the same job: MobileNetV2, nothing frozen,
  the other augmentation off; Grad-CAM and feature maps off."""
  return ['model.name=mobilenet_v2', 'freeze.before=', 'data.augment.rotation=0.0',
          'data.augment.shear=0.0', 'data.augment.zoom=0.0', f'num_epochs={epochs}',
          'gradcam.num_images=0', 'features.num_images=0', f'workdir={run_dir}']


def our_command(run_dir: Path, epochs: int = EPOCHS) -> list[str]:
  """This project's command for the job, as `./run.sh` runs it."""
  return [sys.executable, '-m', 'research.cli.main', OUR_CONFIG,
          *(f'--config.{o}' for o in our_overrides(run_dir, epochs))]


def summary(output: Path) -> list[dict]:
  """train.py's summary.csv: a row per epoch (epoch, train_loss, eval_loss, eval_top1 in %,
  eval_top5, lr), numbers as floats."""
  path = output / EXPERIMENT / 'summary.csv'
  if not path.is_file():
    raise TimmReferenceError(f'train.py wrote no {path}: not the train.py of timm '
                             f'{TIMM_VERSION}? give --timm-train that tag\'s file')
  with open(path, newline='') as f:
    return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(f)]


def param_count(log: str) -> int:
  """The parameters of the model train.py built, from its log (train.py freezes none)."""
  found = re.search(r'param count:\s*(\d+)', log)
  if not found:
    raise TimmReferenceError('train.py\'s log names no param count: not the train.py of timm '
                             f'{TIMM_VERSION}?')
  return int(found.group(1))


def run(command_line: list[str]) -> tuple[float, str]:
  """(wall-clock seconds, stdout + stderr) of a command that must succeed."""
  seconds, out = timed(command_line)
  return seconds, out.stdout + out.stderr


def best(accuracies: list[float]) -> int:
  """The best epoch (from 1) by validation accuracy; the first of equals."""
  return max(range(len(accuracies)), key=lambda k: (accuracies[k], -k)) + 1


def section(rounds: int, train_where: str = '', epochs: int = EPOCHS) -> list[str]:
  """timm's train.py and this project on the same job, in alternating rounds (timm, ours,
  timm, ...), each round's outputs deleted once read: the split is this project's (a pure
  function of the data and data.split_seed, written before the first run; each of our runs'
  split.json is checked against it), the weights the same file."""
  from research.bench.measure import jax_trainable  # pylint: disable=import-outside-toplevel
  from research.bench.rows import ROWS  # pylint: disable=import-outside-toplevel
  from research.config import load  # pylint: disable=import-outside-toplevel
  from research.data import load_source, load_split, make_split, split_records  # pylint: disable=import-outside-toplevel
  train_py = train_script(train_where)
  config = load(OUR_CONFIG, our_overrides(Path('unused'), epochs))
  source = load_source(config.data)
  split = split_records(source, make_split(source, tuple(config.data.split),
                                           config.data.split_seed))
  found = {'timm': [], 'ours': []}
  with tempfile.TemporaryDirectory() as tmp:
    tmp = Path(tmp)
    write_folders(source.class_names, split, tmp / 'data')
    checkpoint = write_checkpoint(tmp / 'mobilenet_v2_timm.pth')
    for r in range(rounds):
      out = tmp / f'timm-{r}'
      seconds, log = run(command(train_py, tmp / 'data', checkpoint, out,
                                 len(source.class_names), epochs))
      rows = summary(out)
      if any(abs(e['lr'] - LEARNING_RATE) > 1e-12 for e in rows):
        raise TimmReferenceError(f'train.py\'s learning rate was {[e["lr"] for e in rows]}, '
                                 f'not a constant {LEARNING_RATE}')
      found['timm'].append({'seconds': seconds, 'trainable': param_count(log),
                            'val': [e['eval_top1'] / 100 for e in rows]})
      shutil.rmtree(out)
      run_dir = tmp / f'ours-{r}'
      seconds, _ = run(our_command(run_dir, epochs))
      if load_split(run_dir / rundir.SPLIT) != (tuple(source.class_names), split):
        raise TimmReferenceError(f'{run_dir / rundir.SPLIT} is not the split the timm folders '
                                 'hold: not the same images')
      records = history.read(run_dir / rundir.METRICS)
      found['ours'].append({'seconds': seconds, 'val': [e['val_accuracy'] for e in records]})
      shutil.rmtree(run_dir)
      print(f'round {r + 1}/{rounds}: timm {found["timm"][-1]["seconds"]:.0f} s, this project '
            f'{seconds:.0f} s', flush=True)
  row = next(r for r in ROWS if r.model == 'mobilenet_v2' and not r.freeze)
  for ours in found['ours']:
    ours['trainable'] = jax_trainable(row, 224)  # from shapes: the same in every round
  lines = table(found, len(split['train']), len(split['val']), epochs)
  print('\n'.join(lines), flush=True)
  return lines


def table(found: dict, train_images: int, val_images: int, epochs: int) -> list[str]:
  """The section's table from {'timm' | 'ours': [per round: {'seconds', 'trainable', 'val':
  [validation accuracy per epoch]}]}: seconds (median [min–max] with 2 or more rounds) and
  their ratio, timm / this project (with 2 or more rounds `rounds.cell` of the rounds'
  speeds: "faster" is this project faster); trainable parameters; the first round's accuracy
  per epoch and at its best epoch with a Wilson interval; the difference this project - timm
  with Newcombe's interval. A side whose best accuracy differs between rounds gets a line
  naming each round's."""
  from research.bench import rounds as rounds_lib  # pylint: disable=import-outside-toplevel
  from research.evaluate import stats  # pylint: disable=import-outside-toplevel
  n, rounds = val_images, len(found['timm'])
  seconds = {side: [m['seconds'] for m in found[side]] for side in found}
  if rounds >= 2:
    ratio = rounds_lib.cell(rounds_lib.ratio([1 / s for s in seconds['ours']],
                                             [1 / s for s in seconds['timm']]))
    spread = {side: rounds_lib.spread(v, digits=0) for side, v in seconds.items()}
    how = f', median [min–max] of {rounds} rounds'
  else:
    ratio = f'{seconds["timm"][0] / seconds["ours"][0]:.2f}'
    spread, how = {side: f'{v[0]:.0f}' for side, v in seconds.items()}, ''
  epoch, per_epoch, accuracy, correct = {}, {}, {}, {}
  for side in found:
    val = found[side][0]['val']
    epoch[side] = best(val)
    correct[side] = round(val[epoch[side] - 1] * n)
    low, high = stats.wilson(correct[side], n)
    per_epoch[side] = ', '.join(f'{v:.4f}' for v in val)
    accuracy[side] = f'{correct[side] / n:.4f} [{low:.3f}–{high:.3f}] ({correct[side]}/{n})'
  low, high = stats.newcombe(correct['ours'], n, correct['timm'], n)
  verdict = {'better': 'this project better', 'worse': 'timm better'}.get(
      stats.verdict((low, high)), 'no detectable difference')
  lines = [f'| MobileNetV2, full fine-tune, ELPV ({train_images} train / {n} validation images, '
           f'batch {BATCH}, {epochs} epochs) | timm {TIMM_VERSION} train.py | this project '
           '(`./run.sh`) | timm / this project |', '|---|---|---|---|',
           f'| whole command, s{how} | {spread["timm"]} | {spread["ours"]} | {ratio} |',
           f'| trainable parameters | {found["timm"][0]["trainable"]:,} | '
           f'{found["ours"][0]["trainable"]:,} | |',
           f'| validation accuracy per epoch | {per_epoch["timm"]} | {per_epoch["ours"]} | |',
           f'| best epoch by validation accuracy | {epoch["timm"]} | {epoch["ours"]} | |',
           f'| validation accuracy at the best epoch [Wilson 95%] | {accuracy["timm"]} | '
           f'{accuracy["ours"]} | |',
           f'| this project − timm at the best epochs [Newcombe 95%, unpaired] | | '
           f'{(correct["ours"] - correct["timm"]) / n:+.4f} [{low:+.3f}, {high:+.3f}] | '
           f'{verdict} |']
  for side, name in (('timm', 'timm'), ('ours', 'this project')):
    per_round = [max(m['val']) for m in found[side]]
    if len(set(per_round)) > 1:
      lines += ['', f'{name}\'s best validation accuracy per round: '
                + ', '.join(f'{v:.4f}' for v in per_round)]
  return lines


def main(argv: list[str] | None = None) -> None:
  argv = sys.argv[1:] if argv is None else argv
  if not argv:
    raise SystemExit('usage: python -m research.bench.timm_reference TRAIN_PY [ARGS ...]')
  import torch  # pylint: disable=import-outside-toplevel

  from research.bench import torch_models  # pylint: disable=import-outside-toplevel
  torch_models.torchvision()
  torch.set_flush_denormal(True)
  sys.argv = list(argv)
  runpy.run_path(argv[0], run_name='__main__')


if __name__ == '__main__':
  main()
