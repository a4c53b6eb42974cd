"""The training loop: split, build, train with a checkpoint and metrics every epoch."""
import dataclasses
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from tqdm import tqdm

from research import rundir
from research.config import ConfigError
from research.data import (DataError, Source, find_bad_images, load_source, load_split, save_split,
                           split_records, stratified_split, steps_per_epoch, train_batches)
from research.evaluate.predict import predict
from research.evaluate import plots
from research.models import create_model, get_spec
from research.train import checkpoint
from research.train.history import History
from research.train.state import create_train_state
from research.train.step import (loss_and_accuracy, make_eval_step, make_mesh, make_train_step,
                                 replicate, shard_batch)


class TrainingError(RuntimeError):
  """Training cannot go on (e.g. the loss is no longer finite)."""


def usable_source(config, log) -> tuple[Source, dict[str, str]]:
  """The configured source without its unreadable images, and {path: reason} for those."""
  source = load_source(config.data)
  log(f'data:    {source.description}')
  if not config.data.path:
    log('         the embedded default; for your own images: --config.data.path=FOLDER (one '
        'sub-folder per class) or a CSV of path,label')
  bad = find_bad_images(source.paths, config.data.on_bad_image)
  keep = [i for i, p in enumerate(source.paths) if p not in bad]
  if bad:
    log(f'         skipping {len(bad)} unreadable images (listed in {rundir.BAD_IMAGES})')
  return dataclasses.replace(source, paths=tuple(source.paths[i] for i in keep),
                             labels=tuple(source.labels[i] for i in keep)), bad


def start_run(run_dir: Path, config, source: Source, split: dict, bad: dict) -> None:
  """Writes what defines a new run: its config, split and skipped images."""
  run_dir.mkdir(parents=True, exist_ok=True)
  rundir.save_config(run_dir, config)
  save_split(run_dir / rundir.SPLIT, source, split)
  if bad:
    (run_dir / rundir.BAD_IMAGES).write_text(''.join(f'{p}\t{r}\n' for p, r in bad.items()))


def build(config, num_classes: int, steps: int):
  """(model, replicated train state, labels, mesh, binary) for a config."""
  binary = num_classes == 2
  model = create_model(config.model, 1 if binary else num_classes)
  mesh = make_mesh()
  if config.batch_size % len(jax.devices()):
    raise ConfigError(f'batch_size {config.batch_size} must be a multiple of the device count '
                      f'{len(jax.devices())}: change --config.batch_size')
  state, labels = create_train_state(model, config, steps, jax.random.key(config.seed))
  return model, replicate(state, mesh), labels, mesh, binary


def run_epoch(train_step, state, batches, steps: int, mesh, rng, desc: str):
  """(state, {metric: mean over the epoch}); the bar shows each step's loss without stalling."""
  totals, shown = None, None
  bar = tqdm(batches, total=steps, desc=desc, unit='step')
  for batch in bar:
    state, metrics = train_step(state, shard_batch(batch, mesh), rng)
    totals = metrics if totals is None else jax.tree.map(jnp.add, totals, metrics)
    if shown is not None:  # the previous step has finished by now
      bar.set_postfix(loss=f'{float(shown["loss"]):.4f}', acc=f'{float(shown["accuracy"]):.3f}')
    shown = metrics
  return state, {k: float(v) / steps for k, v in totals.items()}


def train(config, run_dir: Path, resume: bool = False, log=print) -> rundir.TrainedRun:
  """Trains `config` into `run_dir` (continuing its last checkpoint if `resume`).

  Data and weights are checked before a new run directory is written.
  """
  spec = get_spec(config.model.name)
  if resume:
    class_names, split = load_split(run_dir / rundir.SPLIT)
  else:
    source, bad = usable_source(config, log)
    class_names = source.class_names
    split = split_records(source, stratified_split(source.labels, tuple(config.data.split),
                                                   config.seed))
  log(f'split:   {" / ".join(f"{len(split[s])} {s}" for s in split)} '
      f'({", ".join(class_names)}), made before augmenting')
  steps = steps_per_epoch(len(split['train']), config.batch_size)
  if steps == 0:
    raise DataError(f'the train split has {len(split["train"])} images, fewer than batch_size '
                    f'{config.batch_size}: lower --config.batch_size or add images')
  model, state, labels, mesh, binary = build(config, len(class_names), steps)
  if not resume:
    start_run(run_dir, config, source, split, bad)
  trainable = sum(l == 'trainable' for l in labels.values())
  log(f'train:   {trainable}/{len(labels)} parameter tensors trainable; {len(jax.devices())} '
      f'{jax.devices()[0].platform} device(s); {steps} steps/epoch of {config.batch_size}')

  mngr = checkpoint.manager(run_dir, config.checkpoint.keep)
  start = 0
  if resume and mngr.latest_step() is not None:
    start = mngr.latest_step()
    state = checkpoint.restore(mngr, state, start)
    log(f'resumed: from the checkpoint of epoch {start}')
  history = History(run_dir / rundir.METRICS, run_dir / rundir.TENSORBOARD, start)
  train_step = jax.jit(make_train_step(labels, binary), donate_argnums=0)
  eval_step = jax.jit(make_eval_step(binary))
  rng = jax.random.key(config.seed + 1)
  size = spec.input_size

  for epoch in range(start + 1, config.num_epochs + 1):
    began = time.time()
    batches = train_batches(split['train'], epoch, config.data, size, config.batch_size,
                            config.seed, shard=(jax.process_index(), jax.process_count()))
    state, means = run_epoch(train_step, state, batches, steps, mesh, rng,
                             f'epoch {epoch}/{config.num_epochs}')
    train_seconds = time.time() - began
    logits, _, val_labels = predict(eval_step, state, split['val'], config.data, size,
                                    config.batch_size, mesh, 'validating')
    val_loss, val_acc = loss_and_accuracy(jnp.asarray(logits), jnp.asarray(val_labels), binary)
    record = {'epoch': epoch, **{f'train_{k}': v for k, v in means.items()},
              'val_loss': float(val_loss), 'val_accuracy': float(val_acc),
              'train_images_per_s': steps * config.batch_size / train_seconds,
              'seconds': time.time() - began}
    if not np.isfinite(record['train_loss']):
      last = mngr.latest_step()
      raise TrainingError(
          f'loss is {record["train_loss"]} in epoch {epoch}: lower --config.optimizer.'
          f'learning_rate; ' + (f'the last good checkpoint (epoch {last}) is kept in '
                                f'{run_dir / rundir.CHECKPOINTS}' if last else 'no checkpoint yet'))
    history.append(record)
    checkpoint.save(mngr, epoch, state)
    log(f'epoch {epoch}: train loss {record["train_loss"]:.4f} acc {record["train_accuracy"]:.4f}'
        f' | val loss {record["val_loss"]:.4f} acc {record["val_accuracy"]:.4f} | '
        f'{record["train_images_per_s"]:.1f} img/s')
  history.close()
  mngr.close()
  if history.records:
    plots.curves(history.records, run_dir / rundir.CURVES)
  return rundir.TrainedRun(run_dir, config, model, state, mesh, binary, class_names, split,
                           config.num_epochs)
