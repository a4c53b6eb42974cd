"""Orbax checkpoints in the run directory: the train state with where training stands, and
the best epoch's weights, written in the background.

Each checkpoint holds `state` and a JSON `progress`: the epoch and the steps done in it,
the epoch's running metric sums (the batches to come follow from these) and which model
it is (`architecture`; on disk 'position' holding 'identity', the names runs were always saved
with). Orbax writes into a temporary directory and renames it when complete, so a process
killed mid-save leaves the previous checkpoint valid; a checkpoint that cannot
be read back (a damaged disk, a truncated copy) is set aside and the one before it used.
`checkpoints/best` keeps one checkpoint: the params and batch_stats of the epoch with the
best validation metric so far (`best_epoch`).
"""
from pathlib import Path

import jax
import numpy as np
import orbax.checkpoint as ocp

from research import rundir
from research.errors import UserError
from research.rundir import RunDirError

BEST = 'best'  # under checkpoints/
WHICH = ('best', 'last')
DAMAGED = '.damaged'  # suffix of a checkpoint directory set aside


def best_epoch(records: list[dict], metric: str) -> int | None:
  """The first epoch with the best `metric` in per-epoch `records` (lowest for a loss,
  highest otherwise; a later epoch must be strictly better, as Keras's ModelCheckpoint);
  None without validation."""
  scored = [r for r in records if metric in r]
  if not scored:
    return None
  sign = 1 if metric.endswith('loss') else -1
  return min(scored, key=lambda r: (sign * r[metric], r['epoch']))['epoch']


def model_architecture(config, num_outputs: int) -> dict:
  """What a checkpoint records of the model it belongs to."""
  return {'model': config.model.name, 'hidden': list(config.model.hidden),
          'pooling': config.model.pooling, 'outputs': num_outputs}


def _manager(folder: Path, keep: int | None = None) -> ocp.CheckpointManager:
  return ocp.CheckpointManager(folder, options=ocp.CheckpointManagerOptions(
      max_to_keep=keep, create=True, enable_async_checkpointing=True))


def read_progress(mngr: ocp.CheckpointManager, step: int, architecture: dict) -> dict:
  """The checkpoint's progress; a checkpoint of another model or head is refused, naming
  both."""
  progress = mngr.restore(step, args=ocp.args.Composite(position=ocp.args.JsonRestore()))
  progress = progress['position']
  theirs = progress.pop('identity')
  if architecture is not None and theirs != architecture:
    theirs, ours = (', '.join(f'{k}={v}' for k, v in d.items()) for d in (theirs, architecture))
    raise RunDirError(f'checkpoint {mngr.directory / str(step)} holds {theirs}, but the config '
                      f'asks for {ours}: use the run directory that checkpoint came from')
  return progress


class Checkpoints:
  """A run's two checkpoint managers: `last` (train state + progress, the last `keep`) and
  `best` (the best epoch's params and batch_stats). Saves return once the arrays are
  copied; the files are written in the background (`wait` for them)."""

  def __init__(self, run_dir: Path, keep: int, architecture: dict):
    folder = Path(run_dir).absolute() / rundir.CHECKPOINTS
    self.last, self.best = _manager(folder, keep), _manager(folder / BEST, 1)
    self.architecture = architecture

  def latest_step(self) -> int | None:
    return self.last.latest_step()

  def path(self, step: int) -> Path:
    return Path(self.last.directory) / str(step)

  def save(self, step: int, state, progress: dict) -> None:
    """A `last` checkpoint, written only after any best save issued before it: a resume
    from it never finds its epoch recorded as the best without that epoch's weights."""
    self.best.wait_until_finished()
    self.last.save(step, args=ocp.args.Composite(
        state=ocp.args.StandardSave(state),
        position=ocp.args.JsonSave({**progress, 'identity': self.architecture})))

  def save_best(self, epoch: int, variables: dict) -> None:
    """The weights of `epoch` as the best (replacing the previous best); an epoch redone
    after a resume is already there, bit-identical."""
    if epoch in self.best.all_steps():
      return
    self.best.save(epoch, args=ocp.args.Composite(
        state=ocp.args.StandardSave(variables),
        position=ocp.args.JsonSave({'epoch': epoch + 1, 'step': 0,
                                    'identity': self.architecture})))

  def restore(self, state, log=print):
    """(state, progress) of the newest checkpoint that reads back; `state` gives the
    structure and shardings. One that does not is renamed <step>.damaged, said in one line,
    and the one before it is tried."""
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, state)
    while (step := self.latest_step()) is not None:
      try:
        progress = read_progress(self.last, step, self.architecture)
        restored = self.last.restore(step, args=ocp.args.Composite(
            state=ocp.args.StandardRestore(abstract)))
        return restored['state'], progress
      except UserError:
        raise
      except Exception as e:  # pylint: disable=broad-except  (orbax, tensorstore, json, OS)
        damaged = self.path(step)
        damaged.rename(damaged.with_name(damaged.name + DAMAGED))
        self.last.reload()
        before = self.latest_step()
        log(f'resume:  checkpoint {damaged} cannot be read ({type(e).__name__}); set aside as '
            f'{damaged.name}{DAMAGED}, '
            + (f'resuming from checkpoint {before}' if before is not None else
               'starting from the beginning (no checkpoint before it)'))
    return None

  def wait(self) -> None:
    self.last.wait_until_finished()
    self.best.wait_until_finished()

  def close(self) -> None:
    self.last.close()
    self.best.close()


def restore_variables(run_dir: Path, abstract: dict | None = None,
                      architecture: dict | None = None,
                      which: str = 'best') -> tuple[dict, dict, str]:
  """(params and batch_stats, progress, 'best' or 'last') of a run's best checkpoint (the
  last if it has none: no validation) or its last, for inference: the optimizer state is
  not read. `abstract` gives their shapes and shardings (None: numpy arrays as saved);
  a checkpoint of another `architecture` is refused (None: not checked)."""
  folder = Path(run_dir).absolute() / rundir.CHECKPOINTS
  mngr = ocp.CheckpointManager(folder / BEST) if which == 'best' else None
  if mngr is None or mngr.latest_step() is None:
    which, mngr = 'last', ocp.CheckpointManager(folder)
  step = mngr.latest_step()
  if step is None:
    raise RunDirError(f'{run_dir} has no checkpoint yet: train it first, or resume it with '
                      f'--resume {run_dir}')
  progress = read_progress(mngr, step, architecture)
  if abstract is None:
    saved = mngr.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore()))
    mngr.close()
    return ({k: jax.tree.map(np.asarray, saved['state'][k]) for k in ('params', 'batch_stats')
             if k in saved['state']}, progress, which)
  restored = mngr.restore(step, args=ocp.args.Composite(
      state=ocp.args.PyTreeRestore(
          abstract, restore_args=ocp.checkpoint_utils.construct_restore_args(abstract),
          partial_restore=True)))
  mngr.close()
  return restored['state'], progress, which
