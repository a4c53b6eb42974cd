"""Restoring a trained run from its directory, and evaluating it on its test split."""
from pathlib import Path

import jax
import numpy as np

from research import rundir
from research.data import load_split, steps_per_epoch
from research.evaluate import report
from research.evaluate.predict import predict
from research.models import get_spec
from research.train import checkpoint
from research.train.loop import TrainingError, build
from research.train.step import make_eval_step


def load_trained(run_dir: Path) -> rundir.TrainedRun:
  """The run's model with the weights of its latest checkpoint."""
  config = rundir.load_config(run_dir)
  class_names, split = load_split(run_dir / rundir.SPLIT)
  config.model.pretrained = False  # the checkpoint has every weight
  steps = steps_per_epoch(len(split['train']), config.batch_size)
  model, state, _, mesh, binary = build(config, len(class_names), steps)
  mngr = checkpoint.manager(run_dir, config.checkpoint.keep)
  if mngr.latest_step() is None:
    raise rundir.RunDirError(f'{run_dir} has no checkpoint yet: train it first, or resume it '
                             f'with --resume {run_dir}')
  identity = checkpoint.model_identity(config, 1 if binary else len(class_names))
  state, position = checkpoint.restore(mngr, state, identity)
  mngr.close()
  return rundir.TrainedRun(run_dir, config, model, state, mesh, binary, class_names, split,
                           position['epoch'] - 1)


def evaluate(run: rundir.TrainedRun) -> dict:
  """Test-split report (report.json, report.md, roc.png, confusion.png) in the run dir."""
  _, probs, labels = predict(jax.jit(make_eval_step(run.binary)), run.state, run.split['test'],
                             run.config.data, get_spec(run.config.model.name).input_size,
                             run.config.batch_size, run.mesh, 'testing')
  bad = int((~np.isfinite(probs).all(axis=1)).sum())
  if bad:
    raise TrainingError(f'{bad} of {len(probs)} test predictions are not finite: the weights of '
                        f'{run.run_dir} diverged; lower --config.optimizer.learning_rate')
  return report.write(run.run_dir, labels, probs, run.class_names,
                      {'run': run.run_dir.name, 'epoch': run.epoch,
                       'model': run.config.model.name})
