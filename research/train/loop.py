"""The training loop: split, build, train with a checkpoint and metrics every epoch."""
import dataclasses
import time
from pathlib import Path

import jax
import jax.numpy as jnp
from tqdm import tqdm

from research import rundir
from research.config import ConfigError
from research.data import (DataError, Source, find_leaks, load_source, load_split, save_split,
                           scan_images, split_records, stratified_split, steps_per_epoch,
                           train_batches)
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


def usable_source(config, log) -> tuple[Source, dict[str, str], dict]:
  """The configured source without its unreadable images, {path: reason} for those, and
  the others' fingerprints (for `find_leaks`)."""
  source = load_source(config.data)
  log(f'data:    {source.description}')
  if not config.data.path:
    log('         the embedded default; for your own images: --config.data.path=FOLDER (one '
        'sub-folder per class) or a CSV of path,label')
  bad, fingerprints = scan_images(source.paths, config.data.on_bad_image)
  keep = [i for i, p in enumerate(source.paths) if p not in bad]
  if bad:
    log(f'         skipping {len(bad)} unreadable images (listed in {rundir.BAD_IMAGES})')
  return dataclasses.replace(source, paths=tuple(source.paths[i] for i in keep),
                             labels=tuple(source.labels[i] for i in keep)), bad, fingerprints


def check_leakage(split: dict, fingerprints: dict, data_config, log) -> list[dict]:
  """The same image in two splits (see research.data.leakage); an error if the config says."""
  leaks = find_leaks(split, fingerprints, data_config.near_duplicate_bits)
  if not leaks:
    return leaks
  first = leaks[0]
  example = (f'{first["a"]} ({first["split_a"]}) and {first["b"]} ({first["split_b"]}), '
             f'{first["kind"]} copy')
  if data_config.leakage == 'error':
    raise DataError(f'{len(leaks)} pairs of images are the same image in two splits, e.g. '
                    f'{example}: remove the copies, or set --config.data.leakage=warn')
  log(f'leakage: {len(leaks)} pairs of images are the same image in two splits (listed in '
      f'{rundir.LEAKAGE}), e.g. {example}')
  return leaks


def start_run(run_dir: Path, config, source: Source, split: dict, bad: dict,
              leaks: list) -> None:
  """Writes what defines a new run: its config, split, skipped images and leaks."""
  run_dir.mkdir(parents=True, exist_ok=True)
  rundir.save_config(run_dir, config)
  save_split(run_dir / rundir.SPLIT, source, split)
  if bad:
    (run_dir / rundir.BAD_IMAGES).write_text(''.join(f'{p}\t{r}\n' for p, r in bad.items()))
  if leaks:
    (run_dir / rundir.LEAKAGE).write_text(''.join(
        f'{l["kind"]}\t{l["bits"]}\t{l["split_a"]}\t{l["a"]}\t{l["split_b"]}\t{l["b"]}\n'
        for l in leaks))


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


def zero_totals() -> dict:
  return {k: jnp.float32(0) for k in ('loss', 'accuracy', 'finite_steps')}


@jax.jit
def accumulate(totals, metrics):
  """Running sums of a step's metrics over the steps whose loss and gradients are finite
  (one dispatch per step, on device: nothing waits for the step to finish)."""
  ok = metrics['finite']
  return {'loss': totals['loss'] + jnp.where(ok, metrics['loss'], 0.0),
          'accuracy': totals['accuracy'] + jnp.where(ok, metrics['accuracy'], 0.0),
          'finite_steps': totals['finite_steps'] + ok.astype(jnp.float32)}


class NonFiniteGuard:
  """Stops the run at a step with a non-finite loss or gradient (unless they are skipped)."""

  def __init__(self, config, mngr):
    self.stop, self.mngr, self.last_loss = config.on_nonfinite == 'stop', mngr, None

  def check(self, step: int, metrics) -> None:
    if bool(metrics['finite']):
      self.last_loss = float(metrics['loss'])
      return
    if self.stop:
      kept = self.mngr.latest_step()
      kept = (f'the last good checkpoint {self.mngr.directory / str(kept)} is kept'
              if kept is not None else 'there is no checkpoint yet')
      last = 'none' if self.last_loss is None else f'{self.last_loss:.6g}'
      raise TrainingError(
          f'loss or gradient is {float(metrics["loss"])} at step {step} (last finite loss '
          f'{last}); {kept}: lower --config.optimizer.learning_rate, or set '
          f'--config.on_nonfinite=skip')


def position(epoch: int, step: int, totals, data_state, identity: dict) -> dict:
  """What a checkpoint records besides the state: see research.train.checkpoint."""
  return {'epoch': epoch, 'step': step, 'identity': identity, 'data': data_state,
          'totals': None if totals is None else {k: float(v) for k, v in totals.items()}}


def train(config, run_dir: Path, resume: bool = False, log=print) -> rundir.TrainedRun:
  """Trains `config` into `run_dir` (continuing its last checkpoint if `resume`).

  Data and weights are checked before a new run directory is written. A resumed
  run ends bit-identical to an uninterrupted one: checkpoints carry the data
  iterator's position and the epoch's running metric sums.
  """
  spec = get_spec(config.model.name)
  if resume:
    class_names, split = load_split(run_dir / rundir.SPLIT)
  else:
    source, bad, fingerprints = usable_source(config, log)
    class_names = source.class_names
    split = split_records(source, stratified_split(source.labels, tuple(config.data.split),
                                                   config.seed, source.class_names))
    leaks = check_leakage(split, fingerprints, config.data, log)
  log(f'split:   {" / ".join(f"{len(split[s])} {s}" for s in split)} '
      f'({", ".join(class_names)}), made before augmenting')
  steps = steps_per_epoch(len(split['train']), config.batch_size)
  if steps == 0:
    raise DataError(f'the train split has {len(split["train"])} images, fewer than batch_size '
                    f'{config.batch_size}: lower --config.batch_size or add images')
  model, state, labels, mesh, binary = build(config, len(class_names), steps)
  identity = checkpoint.model_identity(config, 1 if binary else len(class_names))
  state_bytes = sum(x.nbytes for x in jax.tree.leaves(state))
  rundir.check_writable(run_dir, (config.checkpoint.keep + 1) * state_bytes + 50 * 2**20)
  if not resume:
    start_run(run_dir, config, source, split, bad, leaks)
  trainable = sum(l == 'trainable' for l in labels.values())
  log(f'train:   {trainable}/{len(labels)} parameter tensors trainable; {len(jax.devices())} '
      f'{jax.devices()[0].platform} device(s); {steps} steps/epoch of {config.batch_size}')

  mngr = checkpoint.manager(run_dir, config.checkpoint.keep)
  at = position(1, 0, None, None, identity)
  if resume and mngr.latest_step() is not None:
    state, at = checkpoint.restore(mngr, state, identity)
    log(f'resumed: from checkpoint {mngr.latest_step()}: epoch {at["epoch"]}, step '
        f'{at["step"]}/{steps}')
  history = History(run_dir / rundir.METRICS, run_dir / rundir.TENSORBOARD, at['epoch'] - 1)
  train_step = jax.jit(make_train_step(labels, binary, config.on_nonfinite == 'skip'),
                       donate_argnums=0)
  eval_step = jax.jit(make_eval_step(binary))
  guard = NonFiniteGuard(config, mngr)
  rng = jax.random.key(config.seed + 1)
  size, every = spec.input_size, config.checkpoint.every_steps

  for epoch in range(at['epoch'], config.num_epochs + 1):
    began = time.time()
    batches = iter(train_batches(split['train'], epoch, config.data, size, config.batch_size,
                                 config.seed, shard=(jax.process_index(), jax.process_count())))
    done, totals = 0, zero_totals()
    if epoch == at['epoch'] and at['step']:
      batches.set_state(at['data'])
      done, totals = at['step'], {k: jnp.float32(v) for k, v in at['totals'].items()}
    previous = None  # (global step, metrics), checked once the next step is queued
    with tqdm(total=steps, initial=done, desc=f'epoch {epoch}/{config.num_epochs}',
              unit='step') as bar:
      for step in range(done + 1, steps + 1):
        state, metrics = train_step(state, shard_batch(next(batches), mesh), rng)
        totals = accumulate(totals, metrics)
        if previous is not None:
          guard.check(*previous)
          bar.set_postfix(loss=f'{float(previous[1]["loss"]):.4f}',
                          acc=f'{float(previous[1]["accuracy"]):.3f}')
        previous = ((epoch - 1) * steps + step, metrics)
        bar.update()
        if every and previous[0] % every == 0 and step < steps:
          guard.check(*previous)
          checkpoint.save(mngr, previous[0], state,
                          position(epoch, step, totals, batches.get_state(), identity))
    if previous is not None:
      guard.check(*previous)
    train_seconds = time.time() - began
    logits, _, val_labels = predict(eval_step, state, split['val'], config.data, size,
                                    config.batch_size, mesh, 'validating')
    val_loss, val_acc = loss_and_accuracy(jnp.asarray(logits), jnp.asarray(val_labels), binary)
    counted = float(totals['finite_steps'])
    record = {'epoch': epoch, 'train_loss': float(totals['loss']) / max(counted, 1),
              'train_accuracy': float(totals['accuracy']) / max(counted, 1),
              'skipped_steps': steps - int(counted),
              'val_loss': float(val_loss), 'val_accuracy': float(val_acc),
              'train_images_per_s': (steps - done) * config.batch_size / train_seconds,
              'seconds': time.time() - began}
    history.append(record)
    checkpoint.save(mngr, epoch * steps, state, position(epoch + 1, 0, None, None, identity))
    log(f'epoch {epoch}: train loss {record["train_loss"]:.4f} acc {record["train_accuracy"]:.4f}'
        f' | val loss {record["val_loss"]:.4f} acc {record["val_accuracy"]:.4f} | '
        f'{record["train_images_per_s"]:.1f} img/s'
        + (f' | {record["skipped_steps"]} non-finite steps skipped'
           if record['skipped_steps'] else ''))
  history.close()
  mngr.close()
  if history.records:
    plots.curves(history.records, run_dir / rundir.CURVES)
  return rundir.TrainedRun(run_dir, config, model, state, mesh, binary, class_names, split,
                           config.num_epochs)
