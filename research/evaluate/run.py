"""Evaluating a trained run on its test split."""
import numpy as np

from research import parallel
from research.errors import UserError
from research.evaluate import report
from research.inference import TrainedRun


class EvaluationError(UserError, ValueError):
  """The run's predictions cannot be scored (e.g. they are not finite)."""


def evaluate(run: TrainedRun) -> dict:
  """Test-split report (report.json, report.md, roc.png, confusion.png) in the run dir; with
  several processes each predicts its part and process 0 writes."""
  _, probs, labels = run.inference.predict(run.split['test'], 'testing')
  bad = int((~np.isfinite(probs).all(axis=1)).sum())
  if bad:
    raise EvaluationError(f'{bad} of {len(probs)} test predictions are not finite: the weights '
                          f'of {run.run_dir} diverged; lower --config.optimizer.learning_rate')
  about = {'run': run.run_dir.name, 'epoch': run.epoch, 'checkpoint': run.checkpoint,
           'model': run.config.model.name}
  if not parallel.is_main():
    return {**about, **report.metrics(labels, probs, run.class_names)}
  return report.write(run.run_dir, labels, probs, run.class_names, about)
