"""The training loop: build the state, then train epoch by epoch with checkpoints and metrics.

What to validate on is the caller's: `fit` takes a `validate(variables) -> {metric:
value}` function (val_loss, val_accuracy, val_balanced_accuracy), keeps the best
epoch's weights by `checkpoint.best_metric`, stops early after `checkpoint.patience`
epochs without a better one, and returns the history.

Nothing in the step loop waits for the devices: the step adds its metrics to the epoch's
sums on device, the next batch is put on the devices while the current step runs, and
values are read back only at log steps, checkpoints and the epoch's end, where a
non-finite step is caught before anything is saved. Checkpoints are written in the
background. SIGTERM or SIGUSR1 (a cluster's preemption notice) finishes the step,
checkpoints and stops with `Preempted`.
"""
import collections
import contextlib
import dataclasses
import os
import signal
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
from jax.experimental import multihost_utils
from tqdm import tqdm

from research import parallel, rundir
from research.config import ConfigError
from research.data import run_batches, worker_count
from research.errors import UserError
from research.models import Task, create_model, input_size
from research.train import feature_cache
from research.train.checkpoint import Checkpoints, best_epoch, model_architecture
from research.train.feature_cache import FeatureCache
from research.train.freeze import TRAINABLE, Phase
from research.train.history import History
from research.train.state import TrainState, create_train_state
from research.train.step import class_weights, make_train_step, with_totals, zero_totals

PREEMPTED_EXIT = 75  # EX_TEMPFAIL: try again (resume)


class TrainingError(UserError, RuntimeError):
  """Training cannot go on (e.g. the loss is no longer finite)."""


class Preempted(Exception):
  """A preemption notice stopped training after a checkpoint; resuming continues it."""

  def __init__(self, signal_name: str, epoch: int, step: int, run_dir: Path, checkpoint: Path):
    super().__init__(f'{signal_name}: stopped after step {step} of epoch {epoch}; checkpoint '
                     f'{checkpoint} written')
    self.run_dir = run_dir


@dataclasses.dataclass
class Setup:
  """A model and its replicated train state, ready to train."""
  model: object
  task: Task
  state: TrainState
  phases: list[Phase]
  mesh: object
  steps: int  # per epoch
  architecture: dict  # what checkpoints record of the model (research.train.checkpoint)


def build(config, num_classes: int, steps: int, log=print) -> Setup:
  task = Task(num_classes)
  model = create_model(config.model, task.outputs)
  mesh = parallel.make_mesh(config.batch_size)
  if config.batch_size % mesh.size:
    raise ConfigError(f'batch_size {config.batch_size} must be a multiple of the device count '
                      f'{mesh.size} ({jax.process_count()} process(es)): change '
                      f'--config.batch_size')
  state, phases = create_train_state(model, config, steps, jax.random.key(config.seed), log)
  return Setup(model, task, parallel.replicate(state, mesh), phases, mesh, steps,
               model_architecture(config, task.outputs))


def progress_record(epoch: int, step: int, totals=None) -> dict:
  """Where training stands, as a checkpoint records it: `step` steps of `epoch` done and the
  epoch's running sums (the batches to come follow from these: data.run_batches)."""
  return {'epoch': epoch, 'step': step,
          'totals': None if totals is None else {k: v.item() for k, v in
                                                 jax.device_get(totals).items()}}


def variables(state) -> dict:
  """What inference needs of a train state."""
  return {'params': state.params, 'batch_stats': state.batch_stats}


def phase_at(phases: list[Phase], epoch: int) -> int:
  return max(k for k, p in enumerate(phases) if p.epoch <= epoch)


def stopped_early(records: list[dict], checkpoint_config) -> int | None:
  """The best epoch, if `patience` epochs have passed without a better one since (None before
  the first epoch or without validation)."""
  best = best_epoch(records, checkpoint_config.best_metric)
  patience = checkpoint_config.patience
  if patience and best is not None and records[-1]['epoch'] - best >= patience:
    return best
  return None


def on_devices(batches, mesh):
  """The batches on the devices, one ahead: the next is copied while the current step
  runs."""
  queue = collections.deque()

  def put() -> None:
    batch = next(batches, None)
    if batch is not None:
      queue.append(parallel.shard_batch(batch, mesh))

  try:
    put()
    while queue:
      put()
      yield queue.popleft()
  finally:
    if hasattr(batches, 'close'):  # grain's worker processes, if any
      batches.close()


class PreemptionNotice:
  """SIGTERM or SIGUSR1 while training: `received` becomes the signal's name. With several
  processes, JAX's preemption service (which listens for SIGTERM itself) agrees on the step
  at which all of them stop; SIGUSR1 (SLURM's --signal) is passed on to it as SIGTERM."""

  def __init__(self):
    self.received, self.previous = None, {}

  def __enter__(self):
    several = jax.process_count() > 1
    for sig in (signal.SIGUSR1,) if several else (signal.SIGTERM, signal.SIGUSR1):
      with contextlib.suppress(ValueError):  # not the main thread: no handlers
        self.previous[sig] = signal.signal(sig, self.relay if several else self.notice)
    return self

  def notice(self, signum, frame) -> None:
    del frame
    self.received = signal.Signals(signum).name

  @staticmethod
  def relay(signum, frame) -> None:
    del signum, frame
    os.kill(os.getpid(), signal.SIGTERM)

  def __exit__(self, *exc):
    for sig, handler in self.previous.items():
      signal.signal(sig, handler)

  def reached(self, global_step: int) -> bool:
    if jax.process_count() > 1:
      if multihost_utils.reached_preemption_sync_point(global_step):
        self.received = self.received or 'preemption notice'
        return True
      return False
    return self.received is not None


class Training:
  """One run's training: its step for the current phase, checkpoints, history and data."""

  def __init__(self, config, run_dir: Path, setup: Setup, train_records, validate, log,
               on_epoch=None):
    self.config, self.setup, self.validate, self.log = config, setup, validate, log
    self.on_epoch = on_epoch
    self.run_dir, self.records, self.cache = Path(run_dir), train_records, None
    self.checkpoints = Checkpoints(run_dir, config.checkpoint.keep, setup.architecture)
    self.weights = class_weights(config.loss.class_weights, [l for _, l in train_records],
                                 setup.task.num_classes)
    self.rng = jax.random.key(config.seed + 1)
    self.phase, self.step_fn = None, None
    # at a terminal the bar shows the loss at log steps; in a log, a plain line there
    self.log_every = config.log_every_steps
    self.plain_lines = not sys.stderr.isatty()

  def set_phase(self, epoch: int) -> None:
    """The step of the phase `epoch` is in, compiled at the phase's first epoch."""
    phases = self.setup.phases
    if self.phase == (now := phase_at(phases, epoch)):
      return
    self.phase = now
    labels = phases[now].labels
    self.step_fn = jax.jit(with_totals(make_train_step(
        labels, self.setup.task, self.config.on_nonfinite == 'skip', self.weights,
        self.config.loss.label_smoothing)), donate_argnums=(0, 1))
    if len(phases) > 1:
      self.log(f'phase {now + 1}/{len(phases)} from epoch {phases[now].epoch}: '
               f'{sum(l == TRAINABLE for l in labels.values())}/{len(labels)} parameter '
               f'tensors trainable, learning rate x {phases[now].lr_factor:g}')

  def check_finite(self, totals) -> None:
    """Stops at a non-finite step (unless they are skipped), before anything is saved."""
    if self.config.on_nonfinite != 'stop':
      return
    bad = int(totals['first_nonfinite'])
    if not bad:
      return
    self.checkpoints.wait()
    kept = self.checkpoints.latest_step()
    kept = (f'the last good checkpoint {self.checkpoints.path(kept)} is kept'
            if kept is not None else 'there is no checkpoint yet')
    last = float(totals['last_finite_loss'])
    last = 'none' if last != last else f'{last:.6g}'  # NaN: no finite step before it
    raise TrainingError(
        f'loss or gradient is {float(totals["nonfinite_loss"])} at step {bad} (last finite '
        f'loss {last}); {kept}: lower --config.optimizer.learning_rate, or set '
        f'--config.on_nonfinite=skip')

  def batches(self, start: int):
    """The run's batches on the devices, from global batch `start` on."""
    config, shard = self.config, (jax.process_index(), jax.process_count())
    features, records = ((self.cache.features, self.cache.labels) if self.cache else
                         (None, self.records))
    return on_devices(run_batches(
        records, config.num_epochs, start, config.data, input_size(config), config.batch_size,
        config.seed, shard, worker_count(config.data, jax.default_backend() != 'cpu'),
        features), self.setup.mesh)

  def train_epoch(self, state, batches, epoch: int, done: int, totals, notice):
    """Steps `done`+1 .. of `epoch` (`totals` as they stood after `done`) on the next batches;
    returns (state, totals)."""
    config, steps = self.config, self.setup.steps
    save_every = config.checkpoint.every_steps
    with tqdm(total=steps, initial=done, desc=f'epoch {epoch}/{config.num_epochs}',
              unit='step', disable=None) as bar:
      for step in range(done + 1, steps + 1):
        global_step = (epoch - 1) * steps + step
        state, totals = self.step_fn(state, totals, next(batches), self.rng)
        bar.update()
        if self.log_every and step % self.log_every == 0 and step < steps:
          self.check_finite(totals)
          self.show(bar, epoch, step, totals)
        preempted = notice.reached(global_step)
        if (save_every and global_step % save_every == 0 and step < steps) or preempted:
          self.check_finite(totals)
          self.checkpoints.save(global_step, state, progress_record(epoch, step, totals))
        if preempted:
          self.checkpoints.wait()
          raise Preempted(notice.received, epoch, step, self.run_dir,
                          self.checkpoints.path(global_step))
    return state, totals

  def show(self, bar, epoch: int, step: int, totals) -> None:
    finite = max(float(totals['finite_steps']), 1)
    loss, accuracy = float(totals['loss']) / finite, float(totals['accuracy']) / finite
    bar.set_postfix(loss=f'{loss:.4f}', acc=f'{accuracy:.3f}')
    if self.plain_lines:
      self.log(f'epoch {epoch} step {step}/{self.setup.steps}: loss {loss:.4f} acc '
               f'{accuracy:.3f}')

  def fit(self, resume: bool) -> tuple[TrainState, list[dict]]:
    config, setup, steps = self.config, self.setup, self.setup.steps
    state, start = setup.state, progress_record(1, 0)
    if resume and self.checkpoints.latest_step() is not None:
      restored = self.checkpoints.restore(state, self.log)
      if restored is not None:
        state, start = restored
        self.log(f'resumed: from checkpoint {self.checkpoints.latest_step()}: epoch '
                 f'{start["epoch"]}, step {start["step"]}/{steps}')
    history = History(self.run_dir / rundir.METRICS, self.run_dir / rundir.TENSORBOARD,
                      start['epoch'] - 1, writes=parallel.is_main())
    self.cache = (FeatureCache(config, setup.model, setup.task, variables(state), setup.mesh,
                               self.records, self.run_dir, self.log)
                  if feature_cache.wanted(config, setup.phases) else None)
    metric, last_finite = config.checkpoint.best_metric, jnp.float32(jnp.nan)
    batches = self.batches((start['epoch'] - 1) * steps + start['step'])
    with PreemptionNotice() as notice, contextlib.closing(history), \
         contextlib.closing(batches):
      for epoch in range(start['epoch'], config.num_epochs + 1):
        if best := stopped_early(history.records, config.checkpoint):
          self.log(f'stopped: no better {metric} for {config.checkpoint.patience} epochs since '
                   f'epoch {best} (checkpoint.patience)')
          break
        self.set_phase(epoch)
        began = time.time()
        done = start['step'] if epoch == start['epoch'] else 0
        totals = {**zero_totals((epoch - 1) * steps + done), 'last_finite_loss': last_finite}
        if done:
          totals = {k: jnp.asarray(v, zero_totals()[k].dtype) for k, v in
                    {**jax.device_get(totals), **start['totals']}.items()}
        state, totals = self.train_epoch(state, batches, epoch, done, totals, notice)
        self.check_finite(totals)
        last_finite = totals['last_finite_loss']
        train_seconds = time.time() - began
        counted = float(totals['finite_steps'])
        record = {'epoch': epoch, 'train_loss': float(totals['loss']) / max(counted, 1),
                  'train_accuracy': float(totals['accuracy']) / max(counted, 1),
                  'skipped_steps': steps - int(counted)}
        if self.validate is not None:
          record.update(self.validate(variables(state)))
        record.update(train_images_per_s=(steps - done) * config.batch_size / train_seconds,
                      seconds=time.time() - began)
        history.append(record)
        if self.validate is not None and best_epoch(history.records, metric) == epoch:
          self.checkpoints.save_best(epoch, variables(state))
        self.checkpoints.save(epoch * steps, state, progress_record(epoch + 1, 0))
        self.log(f'epoch {epoch}: train loss {record["train_loss"]:.4f} acc '
                 f'{record["train_accuracy"]:.4f}'
                 + (f' | val loss {record["val_loss"]:.4f} acc {record["val_accuracy"]:.4f}'
                    if self.validate is not None else '')
                 + f' | {record["train_images_per_s"]:.1f} img/s'
                 + (f' | {record["skipped_steps"]} non-finite steps skipped'
                    if record['skipped_steps'] else ''))
        if self.on_epoch is not None:
          self.on_epoch(record)
        if notice.received and epoch < config.num_epochs:  # came during validation
          self.checkpoints.wait()
          raise Preempted(notice.received, epoch, steps, self.run_dir,
                          self.checkpoints.path(epoch * steps))
    return state, history.records


def fit(config, run_dir: Path, setup: Setup, train_records, resume: bool, validate=None,
        log=print, on_epoch=None) -> tuple[TrainState, list[dict]]:
  """Trains to `config.num_epochs` (from the last checkpoint if `resume`); returns the final
  state and the per-epoch records (metrics.jsonl). `on_epoch(record)` is called after each
  epoch is recorded and checkpointed (a tuner's pruning: it may raise to stop the run).

  A resumed run ends bit-identical to an uninterrupted one: checkpoints carry the
  data iterator's position and the epoch's running metric sums. At a phase change
  the step is rebuilt for the phase's trainable set.
  """
  training = Training(config, run_dir, setup, train_records, validate, log, on_epoch)
  try:
    return training.fit(resume)
  finally:
    training.checkpoints.wait()
    training.checkpoints.close()
