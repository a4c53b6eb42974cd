"""A run directory is the single record of a run: config, split, checkpoints, metrics, reports.

    config.json     the resolved config      split.json      files per split + class names
    bad_images.txt  skipped files + reason   metrics.jsonl   one line per epoch
    leakage.txt     one image in two splits  checkpoints/    orbax: state + data position
    tb/             TensorBoard events
    curves.png      loss/accuracy curves     report.{json,md}, roc.png, confusion.png
    gradcam/        Grad-CAM overlays
"""
import dataclasses
import json
from pathlib import Path

import ml_collections

CONFIG, SPLIT, BAD_IMAGES, METRICS = 'config.json', 'split.json', 'bad_images.txt', 'metrics.jsonl'
TENSORBOARD, CHECKPOINTS, CURVES, GRADCAM = 'tb', 'checkpoints', 'curves.png', 'gradcam'
LEAKAGE = 'leakage.txt'


class RunDirError(ValueError):
  """A path given as a run directory is not one."""


def save_config(run_dir: Path, config) -> None:
  (run_dir / CONFIG).write_text(config.to_json(indent=1))


def load_config(run_dir: Path) -> ml_collections.ConfigDict:
  path = Path(run_dir) / CONFIG
  if not path.exists():
    raise RunDirError(f'{run_dir} is not a run directory (no {CONFIG}): pass a folder made by '
                      f'./run.sh configs/<experiment>.py, e.g. checkpoints/<run>')
  return ml_collections.ConfigDict(json.loads(path.read_text()))


@dataclasses.dataclass
class TrainedRun:
  """A run's model and train state, with what evaluation and Grad-CAM need."""
  run_dir: Path
  config: ml_collections.ConfigDict
  model: object
  state: object
  mesh: object
  binary: bool
  class_names: tuple
  split: dict
  epoch: int
