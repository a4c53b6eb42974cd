"""Grad-CAM overlays for a trained run: a few test images, or any image files."""
from pathlib import Path

import jax
import numpy as np

from research import rundir
from research.data import load_image
from research.explain.gradcam import gradcam
from research.explain.overlay import save_overlay
from research.models import get_spec
from research.train.step import probabilities


def explain_files(run, paths, labels=None, layer: str = '', target: int | None = None) -> list:
  """Writes run_dir/gradcam/<name>.png per image; returns the PNG paths."""
  spec = get_spec(run.config.model.name)
  layer = layer or run.config.gradcam.layer or spec.gradcam_layer
  images = np.stack([load_image(p, spec.input_size) for p in paths])
  variables = jax.device_get({'params': run.state.params, 'batch_stats': run.state.batch_stats})
  targets = None if target is None else np.full(len(paths), target)
  cams, logits, targets = gradcam(run.model, variables, images, layer, run.binary, targets)
  probs = np.asarray(probabilities(logits, run.binary))
  written = []
  for i, path in enumerate(paths):
    truth = '' if labels is None else f'true {run.class_names[labels[i]]} | '
    title = (f'{Path(path).name}: {truth}Grad-CAM of {run.class_names[targets[i]]} '
             f'(p={probs[i, targets[i]]:.2f}) at {layer}')
    out = run.run_dir / rundir.GRADCAM / f'{Path(path).stem}.png'
    save_overlay(images[i], cams[i], title, out)
    written.append(out)
  return written


def explain_test_images(run, count: int) -> list:
  """Overlays for `count` test images spread evenly over the test split."""
  test = run.split['test']
  if count == 0:
    return []
  picks = np.unique(np.linspace(0, len(test) - 1, min(count, len(test))).astype(int))
  return explain_files(run, [test[i][0] for i in picks], [test[i][1] for i in picks])
