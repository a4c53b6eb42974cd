"""A run directory is the single record of a run: config, split, checkpoints, metrics, reports.

    config.json     the resolved config      split.json      files per split + class names
    bad_images.txt  skipped files + reason   metrics.jsonl   one line per epoch
    leakage.txt     one image in two splits  checkpoints/    orbax: state + data position;
                                             checkpoints/best/  the best epoch's weights
    tb/             TensorBoard events
    curves.png      loss/accuracy curves     report.{json,md}, roc.png, confusion.png
    gradcam/        Grad-CAM overlays        features/       feature maps of every block
"""
import dataclasses
import json
import os
import shutil
import tempfile
from pathlib import Path

import ml_collections

from research.config import base_config
from research.errors import UserError

CONFIG, SPLIT, BAD_IMAGES, METRICS = 'config.json', 'split.json', 'bad_images.txt', 'metrics.jsonl'
TENSORBOARD, CHECKPOINTS, CURVES, GRADCAM = 'tb', 'checkpoints', 'curves.png', 'gradcam'
FEATURES = 'features'
LEAKAGE = 'leakage.txt'


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


def save_config(run_dir: Path, config) -> None:
  (run_dir / CONFIG).write_text(config.to_json(indent=1))


def load_config(run_dir: Path) -> ml_collections.ConfigDict:
  """The run's config; keys added to the schema since the run was made keep their defaults
  (which are what such a run did)."""
  path = Path(run_dir) / CONFIG
  if not path.exists():
    raise RunDirError(f'{run_dir} is not a run directory (no {CONFIG}): pass a folder made by '
                      f'./run.sh configs/<experiment>.py, e.g. checkpoints/<run>')
  config = base_config()
  config.update(json.loads(path.read_text()))
  return config


@dataclasses.dataclass
class TrainedRun:
  """A run's model and weights (params, batch_stats), with what evaluation, Grad-CAM and
  feature maps need."""
  run_dir: Path
  config: ml_collections.ConfigDict
  model: object
  variables: dict
  mesh: object
  binary: bool
  class_names: tuple
  split: dict
  epoch: int  # whose weights these are
  checkpoint: str = 'last'  # 'best' (by the config's checkpoint.best_metric) or 'last'
