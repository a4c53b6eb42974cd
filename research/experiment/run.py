"""One experiment: prepare the data, train, then feature maps, Grad-CAM and the test report;
and restoring a finished run (no optimizer) for evaluation, Grad-CAM, feature maps or
predictions.

With several processes every one trains, validates and predicts its part; process 0
alone writes the run's files, draws and explains (on its own copy of the weights).
"""
import dataclasses
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from research import config as config_lib
from research import parallel, rundir
from research.data import DataError, load_split, steps_per_epoch
from research.evaluate import evaluate, plots
from research.evaluate.report import balanced_accuracy
from research.experiment.prepare import prepare, start_run
from research.explain.run import explain_test_images, feature_maps, test_picks
from research.inference import TrainedRun, inference_of
from research.models import Task, compute_dtype, create_model, input_size
from research.train import checkpoint, feature_cache
from research.train.freeze import TRAINABLE
from research.train.loop import build, fit


# what a resume may change: how long, and what does not change the results
RESUME_MAY_CHANGE = ('num_epochs', 'workdir', 'log_every_steps', 'data.threads', 'data.workers')


def resumed_config(run_dir: Path, overrides=()):
  """The saved config of `run_dir` (it holds the overrides the run started with), with
  `overrides` (KEY=VALUE) applied: those may change only RESUME_MAY_CHANGE (and model.dtype
  to what computes the same); any other key they change is refused."""
  saved = rundir.load_config(run_dir)
  config = saved.copy_and_resolve_references()
  for assignment in overrides:
    config_lib.override(config, assignment)
  config_lib.validate(config)
  same_dtype = compute_dtype(saved.model.dtype) == compute_dtype(config.model.dtype)
  changed = [k for k in config_lib.differing_keys(saved, config)
             if k not in RESUME_MAY_CHANGE and not (k == 'model.dtype' and same_dtype)]
  if changed:
    raise config_lib.ConfigError(
        f'cannot resume {run_dir} with a different config: {", ".join(changed)} differ; '
        f'resume with no overrides (the run directory holds its config), or start a new run')
  config.lock()
  return config


def new_run_dir(config, spec: str) -> Path:
  """Where a new run of `config` (from the file `spec`) goes: its workdir, or
  checkpoints/<config>-<time>; refused if a run is there already."""
  run_dir = Path(config.workdir or rundir.default_dir(spec))
  if (run_dir / rundir.CONFIG).exists():
    raise config_lib.ConfigError(f'{run_dir} already holds a run: resume it with --resume '
                                 f'{run_dir}, or choose another --config.workdir')
  return run_dir


def restore(run_dir: Path, which: str = 'best') -> TrainedRun:
  """A run's model, rebuilt from its config, with the params and batch_stats of its best
  (or last) checkpoint; no optimizer is built or read."""
  run_dir = Path(run_dir)
  config = rundir.load_config(run_dir)
  class_names, split = load_split(run_dir / rundir.SPLIT)
  task = Task(len(class_names))
  model = create_model(config.model, task.outputs)
  size, mesh = input_size(config), parallel.make_mesh(config.batch_size)
  sharding = parallel.replicated(mesh)
  shapes = jax.eval_shape(model.init, jax.random.key(0), jnp.zeros((1, size, size, 3), jnp.uint8))
  abstract = jax.tree.map(lambda s: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=sharding),
                          {'params': shapes['params'],
                           'batch_stats': shapes.get('batch_stats', {})})
  variables, progress, which = checkpoint.restore_variables(
      run_dir, abstract, checkpoint.model_architecture(config, task.outputs), which)
  return TrainedRun(run_dir, config, model, variables, mesh, task, class_names, split,
                    progress['epoch'] - 1, which)


def validation(config, setup, records):
  """validate(variables) -> {val_loss, val_accuracy, val_balanced_accuracy} on `records`
  (plain cross-entropy: no class weights or smoothing, comparable across runs), or None if
  there are none."""
  if not records:
    return None
  cached = []  # a frozen backbone's validation features, computed at the first epoch's end
  labels = np.asarray([label for _, label in records], np.int32)

  def validate(variables):
    inference = inference_of(config, setup.model, setup.task, variables, setup.mesh)
    if feature_cache.wanted(config, setup.phases):
      if not cached:
        cached.append(feature_cache.val_features(inference, config, records))
      logits = inference.head_logits(cached[0])
      probs = np.asarray(setup.task.probabilities(jnp.asarray(logits)))
    else:
      logits, probs, _ = inference.predict(records, 'validating')
    loss, accuracy = setup.task.loss_and_accuracy(jnp.asarray(logits), jnp.asarray(labels))
    return {'val_loss': float(loss), 'val_accuracy': float(accuracy),
            'val_balanced_accuracy': balanced_accuracy(labels, probs.argmax(-1))}

  return validate


def run(config, run_dir: Path, resume: bool = False, log=print, on_epoch=None,
        report: bool = True) -> dict:
  """Trains `config` into `run_dir` (continuing its last checkpoint if `resume`), then writes
  curves, feature maps, Grad-CAM and the test report; returns the report. With `report`
  False (a tuning trial: chosen on validation alone) the test split is not touched and the
  return is {'records': the per-epoch records}. `on_epoch(record)` sees each epoch's record
  (research.train.loop.fit).

  Data and weights are checked before a new run directory is written; one process at a
  time trains in a run directory (rundir.lock).
  """
  if resume:
    class_names, split = load_split(run_dir / rundir.SPLIT)
  else:
    prepared = prepare(config, log)
    class_names, split = prepared.source.class_names, prepared.split
  log(f'split:   {" / ".join(f"{len(split[s])} {s}" for s in split)} '
      f'({", ".join(class_names)}), made before augmenting')
  steps = steps_per_epoch(len(split['train']), config.batch_size)
  if steps == 0:
    raise DataError(f'the train split has {len(split["train"])} images, fewer than batch_size '
                    f'{config.batch_size}: lower --config.batch_size or add images')
  setup = build(config, len(class_names), steps, log)
  state_bytes = sum(x.nbytes for x in jax.tree.leaves(setup.state))
  rundir.check_writable(run_dir, (config.checkpoint.keep + 1) * state_bytes + 50 * 2**20)
  with rundir.lock(run_dir, parallel.is_main()):
    if not resume and parallel.is_main():
      start_run(run_dir, config, prepared)
    labels = setup.phases[0].labels
    log(f'train:   {sum(l == TRAINABLE for l in labels.values())}/{len(labels)} parameter '
        f'tensors trainable; {setup.mesh.size} {jax.devices()[0].platform} device(s); '
        f'{steps} steps/epoch of {config.batch_size}')
    _, records = fit(config, run_dir, setup, split['train'], resume,
                     validation(config, setup, split['val']), log, on_epoch)
    main = parallel.is_main()
    if records and main:
      plots.curves(records, run_dir / rundir.CURVES)
    if not report:
      return {'records': records}
    trained = restore(run_dir)
    if trained.checkpoint == 'best':
      best = next(r for r in records if r['epoch'] == trained.epoch)
      log(f'best:    epoch {trained.epoch} ({config.checkpoint.best_metric} '
          f'{best[config.checkpoint.best_metric]:.4f}); Grad-CAM, feature maps and the test '
          f'report use its weights')
    if main:
      alone = dataclasses.replace(trained, variables=parallel.local(trained.variables))
      feature_maps(alone, [p for p, _ in test_picks(alone, config.features.num_images)])
      explain_test_images(alone, config.gradcam.num_images)
    return evaluate(trained)
