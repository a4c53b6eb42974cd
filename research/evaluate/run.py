"""Evaluating a trained run on its test split, with a temperature fitted on its validation
split (stored in the run as calibration.json)."""
import json

import numpy as np

from research import parallel, rundir
from research.errors import UserError
from research.evaluate import report, stats
from research.inference import TrainedRun

CALIBRATION = 'calibration.json'


class EvaluationError(UserError, ValueError):
  """The run's predictions cannot be scored (e.g. they are not finite)."""


def finite(logits: np.ndarray, run: TrainedRun, split: str) -> np.ndarray:
  bad = int((~np.isfinite(logits).all(axis=1)).sum())
  if bad:
    raise EvaluationError(f'{bad} of {len(logits)} {split} predictions are not finite: the '
                          f'weights of {run.run_dir} diverged; lower '
                          f'--config.optimizer.learning_rate')
  return logits


def fit_temperature(run: TrainedRun) -> dict | None:
  """The temperature minimising the validation split's NLL for these weights, stored in the
  run's calibration.json under the checkpoint's name; None without a validation split."""
  if not run.split['val']:
    return None
  logits, _, labels = run.inference.predict(run.split['val'], 'calibrating')
  logits = finite(logits, run, 'validation')
  temperature = stats.fit_temperature(logits, labels)
  nll = lambda t: stats.calibration(labels, stats.scaled_probabilities(logits, t))['nll']
  fitted = {'temperature': temperature, 'checkpoint': run.checkpoint, 'epoch': run.epoch,
            'val_images': len(labels), 'val_nll_before': nll(1.0),
            'val_nll_after': nll(temperature)}
  if parallel.is_main():
    path = run.run_dir / CALIBRATION
    stored = json.loads(path.read_text()) if path.exists() else {}
    rundir.write_whole(path, json.dumps({**stored, run.checkpoint: fitted}, indent=1))
  return fitted


def stored_temperature(run: TrainedRun) -> dict | None:
  """The temperature fitted for these weights (checkpoint and epoch), fitted now if the run
  has none stored."""
  path = run.run_dir / CALIBRATION
  fitted = json.loads(path.read_text()).get(run.checkpoint) if path.exists() else None
  if fitted and fitted['epoch'] == run.epoch:
    return fitted
  return fit_temperature(run)


def evaluate(run: TrainedRun) -> dict:
  """Test-split report (report.json, report.md, roc.png, confusion.png, reliability.png,
  test_predictions.npz) in the run dir, with the temperature fitted anew on validation;
  with several processes each predicts its part and process 0 writes."""
  logits, probs, _ = run.inference.predict(run.split['test'], 'testing')
  logits = finite(logits, run, 'test')
  temperature = fit_temperature(run)
  applied = bool(run.config.evaluation.temperature_scaling and temperature)
  if applied:
    probs = stats.scaled_probabilities(logits, temperature['temperature'])
  about = {'run': run.run_dir.name, 'epoch': run.epoch, 'checkpoint': run.checkpoint,
           'model': run.config.model.name}
  if not parallel.is_main():
    return report.build(run.split['test'], logits, probs, run.class_names, about, temperature,
                        applied)[0]
  return report.write(run.run_dir, run.split['test'], logits, probs, run.class_names, about,
                      temperature, applied)
