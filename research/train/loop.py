"""The training loop: build the state, then train epoch by epoch with checkpoints and metrics.

What to validate on is the caller's: `fit` takes a `validate(variables) -> {metric:
value}` function (val_loss, val_accuracy, val_balanced_accuracy), keeps the best
epoch's weights by `checkpoint.best_metric`, stops early after `checkpoint.patience`
epochs without a better one, and returns the history.
"""
import dataclasses
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
from tqdm import tqdm

from research import parallel, rundir
from research.config import ConfigError
from research.data import train_batches
from research.errors import UserError
from research.models import create_model, input_size
from research.train import checkpoint, feature_cache
from research.train.feature_cache import FeatureCache
from research.train.freeze import TRAINABLE, Phase
from research.train.history import History
from research.train.state import TrainState, create_train_state
from research.train.step import class_weights, make_train_step


class TrainingError(UserError, RuntimeError):
  """Training cannot go on (e.g. the loss is no longer finite)."""


@dataclasses.dataclass
class Built:
  """A model and its replicated train state, ready to train."""
  model: object
  state: TrainState
  phases: list[Phase]
  mesh: object
  binary: bool
  steps: int  # per epoch
  identity: dict  # what checkpoints record of the model (research.train.checkpoint)


def build(config, num_classes: int, steps: int, log=print) -> Built:
  binary = num_classes == 2
  model = create_model(config.model, 1 if binary else num_classes)
  mesh = parallel.make_mesh()
  if config.batch_size % len(jax.devices()):
    raise ConfigError(f'batch_size {config.batch_size} must be a multiple of the device count '
                      f'{len(jax.devices())} ({jax.process_count()} process(es)): change '
                      f'--config.batch_size')
  state, phases = create_train_state(model, config, steps, jax.random.key(config.seed), log)
  return Built(model, parallel.replicate(state, mesh), phases, mesh, binary, steps,
               checkpoint.model_identity(config, 1 if binary else num_classes))


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


def variables(state) -> dict:
  """What inference needs of a train state."""
  return {'params': state.params, 'batch_stats': state.batch_stats}


def phase_at(phases: list[Phase], epoch: int) -> int:
  return max(k for k, p in enumerate(phases) if p.epoch <= epoch)


def stopped_early(records: list[dict], checkpoint_config) -> int | None:
  """The best epoch, if `patience` epochs have passed without a better one since (None before
  the first epoch or without validation)."""
  best = checkpoint.best_epoch(records, checkpoint_config.best_metric)
  patience = checkpoint_config.patience
  if patience and best is not None and records[-1]['epoch'] - best >= patience:
    return best
  return None


def fit(config, run_dir: Path, built: Built, train_records, resume: bool, validate=None,
        log=print) -> tuple[TrainState, list[dict]]:
  """Trains to `config.num_epochs` (from the last checkpoint if `resume`); returns the final
  state and the per-epoch records (metrics.jsonl).

  A resumed run ends bit-identical to an uninterrupted one: checkpoints carry the
  data iterator's position and the epoch's running metric sums. At a phase change
  the step is rebuilt for the phase's trainable set.
  """
  state, steps, mesh = built.state, built.steps, built.mesh
  mngr = checkpoint.manager(run_dir, config.checkpoint.keep)
  best_mngr, metric = checkpoint.best_manager(run_dir), config.checkpoint.best_metric
  num_classes = 2 if built.binary else built.identity['outputs']
  weights = class_weights(config.loss.class_weights, [l for _, l in train_records], num_classes)
  if weights:
    log(f'loss:    class weights {", ".join(f"{w:.3g}" for w in weights)}')
  at = position(1, 0, None, None, built.identity)
  if resume and mngr.latest_step() is not None:
    state, at = checkpoint.restore(mngr, state, built.identity)
    log(f'resumed: from checkpoint {mngr.latest_step()}: epoch {at["epoch"]}, step '
        f'{at["step"]}/{steps}')
  history = History(run_dir / rundir.METRICS, run_dir / rundir.TENSORBOARD, at['epoch'] - 1,
                    writes=parallel.is_main())
  guard = NonFiniteGuard(config, mngr)
  rng = jax.random.key(config.seed + 1)
  size, every, phase = input_size(config), config.checkpoint.every_steps, None
  cache = (FeatureCache(config, built.model, variables(state), train_records, size, run_dir, log)
           if feature_cache.wanted(config, built.phases) else None)
  # at a terminal the bar shows the loss; in a log, a plain line every N steps
  plain_every = 0 if sys.stderr.isatty() else config.log_every_steps

  for epoch in range(at['epoch'], config.num_epochs + 1):
    if best := stopped_early(history.records, config.checkpoint):
      log(f'stopped: no better {metric} for {config.checkpoint.patience} epochs since epoch '
          f'{best} (checkpoint.patience)')
      break
    if phase != (now := phase_at(built.phases, epoch)):
      phase = now
      labels = built.phases[phase].labels
      train_step = jax.jit(make_train_step(labels, built.binary, config.on_nonfinite == 'skip',
                                           weights, config.loss.label_smoothing),
                           donate_argnums=0)
      if len(built.phases) > 1:
        log(f'phase {phase + 1}/{len(built.phases)} from epoch {built.phases[phase].epoch}: '
            f'{sum(l == TRAINABLE for l in labels.values())}/{len(labels)} parameter tensors '
            f'trainable, learning rate x {built.phases[phase].lr_factor:g}')
    began = time.time()
    shard = (jax.process_index(), jax.process_count())
    batches = iter(cache.batches(epoch, shard) if cache else train_batches(
        train_records, epoch, config.data, size, config.batch_size, config.seed, shard))
    done, totals = 0, zero_totals()
    if epoch == at['epoch'] and at['step']:
      batches.set_state(at['data'])
      done, totals = at['step'], {k: jnp.float32(v) for k, v in at['totals'].items()}
    previous = None  # (global step, metrics), checked once the next step is queued
    with tqdm(total=steps, initial=done, desc=f'epoch {epoch}/{config.num_epochs}',
              unit='step', disable=None) as bar:
      for step in range(done + 1, steps + 1):
        state, metrics = train_step(state, parallel.shard_batch(next(batches), mesh), rng)
        totals = accumulate(totals, metrics)
        if previous is not None:
          guard.check(*previous)
          loss, accuracy = float(previous[1]['loss']), float(previous[1]['accuracy'])
          bar.set_postfix(loss=f'{loss:.4f}', acc=f'{accuracy:.3f}')
          if plain_every and (step - 1) % plain_every == 0:
            log(f'epoch {epoch} step {step - 1}/{steps}: loss {loss:.4f} acc {accuracy:.3f}')
        previous = ((epoch - 1) * steps + step, metrics)
        bar.update()
        if every and previous[0] % every == 0 and step < steps:
          guard.check(*previous)
          checkpoint.save(mngr, previous[0], state,
                          position(epoch, step, totals, batches.get_state(), built.identity))
    if previous is not None:
      guard.check(*previous)
    train_seconds = time.time() - began
    counted = float(totals['finite_steps'])
    record = {'epoch': epoch, 'train_loss': float(totals['loss']) / max(counted, 1),
              'train_accuracy': float(totals['accuracy']) / max(counted, 1),
              'skipped_steps': steps - int(counted)}
    if validate is not None:
      record.update(validate(variables(state)))
    record.update(train_images_per_s=(steps - done) * config.batch_size / train_seconds,
                  seconds=time.time() - began)
    history.append(record)
    if validate is not None and checkpoint.best_epoch(history.records, metric) == epoch:
      checkpoint.save_best(best_mngr, epoch, variables(state), built.identity)
    checkpoint.save(mngr, epoch * steps, state, position(epoch + 1, 0, None, None,
                                                         built.identity))
    log(f'epoch {epoch}: train loss {record["train_loss"]:.4f} acc {record["train_accuracy"]:.4f}'
        + (f' | val loss {record["val_loss"]:.4f} acc {record["val_accuracy"]:.4f}'
           if validate is not None else '')
        + f' | {record["train_images_per_s"]:.1f} img/s'
        + (f' | {record["skipped_steps"]} non-finite steps skipped'
           if record['skipped_steps'] else ''))
  history.close()
  mngr.close()
  best_mngr.close()
  return state, history.records
