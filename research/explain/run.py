"""Grad-CAM overlays and feature maps for a trained run: test images, or any image files."""
from pathlib import Path

import jax
import numpy as np

from research import rundir
from research.data import load_image
from research.explain.features import block_activations, save_grid
from research.explain.gradcam import gradcam
from research.explain.overlay import save_overlay
from research.models import get_spec, input_size


def output_names(paths) -> list[str]:
  """File stems, prefixed by their folders where stems repeat (cat/1.jpg, dog/1.jpg)."""
  stems = [Path(p).stem for p in paths]
  return [f'{Path(p).parent.name}_{s}' if stems.count(s) > 1 else s
          for p, s in zip(paths, stems)]


def explain_files(run, paths, labels=None, layer: str = '', target: int | None = None) -> list:
  """Writes run_dir/gradcam/<name>.png per image; returns the PNG paths."""
  layer = layer or run.config.gradcam.layer or get_spec(run.config.model.name).gradcam_layer
  images = np.stack([load_image(p, input_size(run.config)) for p in paths])
  targets = None if target is None else np.full(len(paths), target)
  cams, logits, targets = gradcam(run.model, jax.device_get(run.variables), images, layer,
                                  run.task, targets)
  probs = np.asarray(run.task.probabilities(logits))
  written = []
  for i, (path, name) in enumerate(zip(paths, output_names(paths))):
    truth = '' if labels is None else f'true {run.class_names[labels[i]]} | '
    title = (f'{Path(path).name}: {truth}Grad-CAM of {run.class_names[targets[i]]} '
             f'(p={probs[i, targets[i]]:.2f}) at {layer}')
    out = run.run_dir / rundir.GRADCAM / f'{name}.png'
    save_overlay(images[i], cams[i], title, out)
    written.append(out)
  return written


def feature_maps(run, paths) -> list:
  """Writes run_dir/features/<image name>/<NN>_<block>.png per image and block; returns the
  folders."""
  folders, variables = [], jax.device_get(run.variables)
  for path, name in zip(paths, output_names(paths)):
    image = load_image(path, input_size(run.config))
    folder = run.run_dir / rundir.FEATURES / name
    for i, (block, activation) in enumerate(
        block_activations(run.model, variables, image).items()):
      save_grid(activation, f'{Path(path).name}: {block} {activation.shape}',
                folder / f'{i:02d}_{block.replace("/", "_")}.png')
    folders.append(folder)
  return folders


def test_picks(run, count: int) -> list:
  """`count` test records spread evenly over the test split."""
  test = run.split['test']
  if count == 0 or not test:
    return []
  return [test[i] for i in np.unique(np.linspace(0, len(test) - 1, min(count, len(test)))
                                     .astype(int))]


def explain_test_images(run, count: int) -> list:
  picks = test_picks(run, count)
  return explain_files(run, [p for p, _ in picks], [l for _, l in picks]) if picks else []
