"""A run directory is the single record of a run: config, split, checkpoints, metrics, reports.

    config.json     the resolved config      split.json      files per split + class names
    bad_images.txt  skipped files + reason   metrics.jsonl   one line per epoch
    leakage.txt     one image in two splits  checkpoints/    orbax: state + data position;
                                             checkpoints/best/  the best epoch's weights
    tb/             TensorBoard events
    curves.png      loss/accuracy curves     report.{json,md}, roc.png, confusion.png
    gradcam/        Grad-CAM overlays        features/       feature maps of every block
    .lock           held by the process training in the directory
"""
import contextlib
import fcntl
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import ml_collections

from research.config import base_config, flat_keys
from research.errors import UserError

CONFIG, SPLIT, BAD_IMAGES, METRICS = 'config.json', 'split.json', 'bad_images.txt', 'metrics.jsonl'
TENSORBOARD, CHECKPOINTS, CURVES, GRADCAM = 'tb', 'checkpoints', 'curves.png', 'gradcam'
FEATURES = 'features'
LEAKAGE = 'leakage.txt'
LOCK = '.lock'  # held by the process training in the directory


class RunDirError(UserError, ValueError):
  """A path given as a run directory is not one, or cannot hold one."""


def check_writable(run_dir: Path, needed_bytes: int) -> None:
  """Fails now, not an hour into training, if `run_dir` cannot be written or lacks space."""
  parent = Path(run_dir).absolute()
  while not parent.exists():
    parent = parent.parent
  try:
    with tempfile.NamedTemporaryFile(dir=parent, prefix='.write-test-') as probe:
      probe.write(b'x' * 4096)
      probe.flush()
      os.fsync(probe.fileno())
  except OSError as e:
    raise RunDirError(f'cannot write to {parent} ({e.strerror}): choose another '
                      f'--config.workdir') from None
  free = shutil.disk_usage(parent).free
  if free < needed_bytes:
    raise RunDirError(f'{parent} has {free / 2**20:.0f} MiB free, a run needs about '
                      f'{needed_bytes / 2**20:.0f} MiB (checkpoints): free space or choose '
                      f'another --config.workdir')


def default_dir(spec: str) -> Path:
  """checkpoints/<config name>[-<variant>]-<date>-<time>: where a new run goes by default."""
  path, _, variant = spec.partition(':')
  name = Path(path).stem + (f'-{variant}' if variant else '')
  return Path(f'checkpoints/{name}-{time.strftime("%Y%m%d-%H%M%S")}')


def write_whole(path: Path, text: str | bytes) -> None:
  """`path` holds `text` (or bytes) whole, or what it held before: a process killed mid-write
  leaves no half file (a config.json, tune.json or point.json that exists marks a step
  done)."""
  partial = path.with_name(f'.{path.name}.{os.getpid()}.tmp')
  try:
    if isinstance(text, bytes):
      partial.write_bytes(text)
    else:
      partial.write_text(text)
    partial.replace(path)
  finally:
    partial.unlink(missing_ok=True)


def save_config(run_dir: Path, config) -> None:
  write_whole(run_dir / CONFIG, config.to_json(indent=1))


def load_config(run_dir: Path) -> ml_collections.ConfigDict:
  """The run's config; keys added to the schema since the run was made keep their defaults
  (which are what such a run did)."""
  path = Path(run_dir) / CONFIG
  if not path.exists():
    raise RunDirError(f'{run_dir} is not a run directory (no {CONFIG}): pass a folder made by '
                      f'./run.sh configs/<experiment>.py, e.g. checkpoints/<run>')
  config, saved = base_config(), json.loads(path.read_text())
  unknown = sorted(set(flat_keys(ml_collections.ConfigDict(saved))) - set(flat_keys(config)))
  if unknown:
    raise RunDirError(f'{path} sets {unknown[0]!r}, which this version of the code does not '
                      f'know: use the version that made the run')
  config.update(saved)
  return config


@contextlib.contextmanager
def lock(run_dir: Path, take: bool = True):
  """One writer per run directory: a second process that would train in `run_dir` (a resume
  launched twice) is refused in one line. The lock is the kernel's (flock), released when
  the process ends however it ends, so a killed run leaves nothing stuck."""
  if not take:
    yield
    return
  Path(run_dir).mkdir(parents=True, exist_ok=True)
  with open(Path(run_dir) / LOCK, 'a+') as f:
    try:
      fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
      f.seek(0)
      holder = f.read().strip() or 'another process'
      raise RunDirError(f'{run_dir} is in use by {holder}: wait for it to finish, or resume '
                        f'once it has stopped') from None
    f.seek(0)
    f.truncate()
    f.write(f'process {os.getpid()} on {os.uname().nodename}')
    f.flush()
    try:
      yield
    finally:
      fcntl.flock(f, fcntl.LOCK_UN)
