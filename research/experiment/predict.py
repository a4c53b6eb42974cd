"""Predictions of a trained run: for uint8 arrays from Python, or for image files and folders
into a CSV (path, predicted class, one probability per class).

    from research.experiment.predict import predict_arrays
    from research.experiment.run import restore
    run = restore('checkpoints/<run>')
    probabilities = predict_arrays(run, images)  # (N, H, W, 3) uint8, any size
"""
import csv
from pathlib import Path

import numpy as np

from research.data import DataError, is_image, unreadable
from research.evaluate import stats
from research.evaluate.run import stored_temperature


def calibrated(run, logits: np.ndarray, probs: np.ndarray) -> np.ndarray:
  """`probs`, or softmax(logits / T) when the run's config asks for temperature scaling (T:
  fitted on its validation split for these weights)."""
  if not run.config.evaluation.temperature_scaling:
    return probs
  fitted = stored_temperature(run)
  return probs if fitted is None else stats.scaled_probabilities(logits, fitted['temperature'])


def predict_arrays(run, images) -> np.ndarray:
  """(N, num_classes) probabilities for uint8 RGB images of any size (resized as in
  training), in batches of the run's batch size."""
  logits, probs = run.inference.predict_arrays(images)
  return calibrated(run, logits, probs)


def image_files(paths) -> list[str]:
  """Image files given, and the images under folders given (recursively), sorted."""
  files = []
  for path in map(Path, paths):
    if not path.exists():
      raise DataError(f'{path} does not exist: pass image files or folders of images')
    files += [str(path)] if path.is_file() else sorted(
        str(p) for p in path.rglob('*') if is_image(p))
  if not files:
    raise DataError(f'no images in {", ".join(map(str, paths))}')
  return files


def write_predictions(run, paths, out: Path, log=print) -> Path:
  """out (CSV): path, predicted, p(<class>)...; unreadable images are skipped and listed in
  <out stem>_skipped.txt."""
  files = image_files(paths)
  bad = unreadable(files)
  if bad:
    skipped = out.with_name(f'{out.stem}_skipped.txt')
    skipped.write_text(''.join(f'{p}\t{r}\n' for p, r in bad.items()))
    log(f'skipping {len(bad)} unreadable images (listed in {skipped})')
  files = [f for f in files if f not in bad]
  if not files:
    raise DataError(f'none of the {len(bad)} images given can be read (see {skipped})')
  logits, probs, _ = run.inference.predict([(f, -1) for f in files], 'predicting')
  probs = calibrated(run, logits, probs)
  with open(out, 'w', newline='') as f:
    writer = csv.writer(f)
    writer.writerow(['path', 'predicted', *(f'p({c})' for c in run.class_names)])
    for path, p in zip(files, probs):
      writer.writerow([path, run.class_names[int(p.argmax())], *(f'{x:.6f}' for x in p)])
  return out
