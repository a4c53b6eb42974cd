"""Small real files for the tests: image folders, truncated images; a run's full train state;
a build traced, not computed."""
from pathlib import Path

import jax
import numpy as np
from PIL import Image

from research import rundir
from research.data import load_split, steps_per_epoch
from research.train import checkpoint
from research.train.loop import build


def write_image(path: Path, value: int, size: int = 40, mode: str = 'RGB', seed: int = 0) -> Path:
  """A noisy image of mean brightness `value`."""
  rng = np.random.default_rng(seed)
  channels = 3 if mode == 'RGB' else 1
  pixels = np.clip(rng.normal(value, 20, (size, size, channels)), 0, 255).astype(np.uint8)
  path.parent.mkdir(parents=True, exist_ok=True)
  Image.fromarray(pixels.squeeze(-1) if channels == 1 else pixels, mode).save(path)
  return path


def make_folder(root: Path, per_class: int = 10, classes=('bright', 'dark')) -> Path:
  """Class-per-folder dataset: 'bright' images are light, 'dark' ones dark (learnable)."""
  for c, name in enumerate(classes):
    for i in range(per_class):
      write_image(root / name / f'{name}_{i:03d}.png', 200 - 150 * c, seed=100 * c + i)
  return root


def truncate(path: Path, keep: float = 0.5) -> Path:
  data = path.read_bytes()
  path.write_bytes(data[:int(len(data) * keep)])
  return path


def train_state(run_dir: Path):
  """The full train state (params, optimizer state, step) of a run's latest checkpoint."""
  config = rundir.load_config(run_dir)
  class_names, split = load_split(run_dir / rundir.SPLIT)
  config.model.pretrained = False
  built = build(config, len(class_names), steps_per_epoch(len(split['train']), config.batch_size))
  checkpoints = checkpoint.Checkpoints(run_dir, config.checkpoint.keep, built.architecture)
  state, _ = checkpoints.restore(built.state)
  checkpoints.close()
  return state


def traced_build(config, num_classes: int = 2, steps: int = 1):
  """(the train state's shapes, the Setup) of `build(config)` traced by jax.eval_shape:
  model, freezing phases and optimizer as a run builds them, without compiling the
  initialisers (100 s for NASNet on a CPU). The Setup's own state is not to be used."""
  built = {}

  def state():
    built['setup'] = build(config, num_classes, steps)
    return built['setup'].state

  return jax.eval_shape(state), built['setup']
