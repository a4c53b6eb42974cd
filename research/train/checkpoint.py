"""Orbax checkpoints in the run directory: the train state plus where training stands, and
the best epoch's weights.

Each checkpoint holds `state` and a JSON `position`: the epoch and the steps done
in it, the epoch's running metric sums, the data iterator's state (grain) and
what model it is. Orbax writes into a temporary directory and renames it when
complete, so a process killed mid-save leaves the previous checkpoint valid.
`checkpoints/best` keeps one checkpoint: the params and batch_stats of the epoch
with the best validation metric so far (`best_epoch`).
"""
from pathlib import Path

import jax
import jax.numpy as jnp
import orbax.checkpoint as ocp

from research import parallel, rundir
from research.data import load_split
from research.models import create_model, input_size
from research.rundir import RunDirError


BEST = 'best'  # under checkpoints/
WHICH = ('best', 'last')


def manager(run_dir: Path, keep: int) -> ocp.CheckpointManager:
  return ocp.CheckpointManager(
      Path(run_dir).absolute() / rundir.CHECKPOINTS,
      options=ocp.CheckpointManagerOptions(max_to_keep=keep, create=True))


def best_manager(run_dir: Path) -> ocp.CheckpointManager:
  return ocp.CheckpointManager(
      Path(run_dir).absolute() / rundir.CHECKPOINTS / BEST,
      options=ocp.CheckpointManagerOptions(max_to_keep=1, create=True))


def best_epoch(records: list[dict], metric: str) -> int | None:
  """The first epoch with the best `metric` in per-epoch `records` (lowest for a loss,
  highest otherwise; a later epoch must be strictly better, as Keras's ModelCheckpoint);
  None without validation."""
  scored = [r for r in records if metric in r]
  if not scored:
    return None
  sign = 1 if metric.endswith('loss') else -1
  return min(scored, key=lambda r: (sign * r[metric], r['epoch']))['epoch']


def save_best(mngr: ocp.CheckpointManager, epoch: int, variables: dict, identity: dict) -> None:
  """The weights of `epoch` as the best (replacing the previous best); an epoch redone after
  a resume is already there, bit-identical."""
  if epoch in mngr.all_steps():
    return
  mngr.save(epoch, args=ocp.args.Composite(
      state=ocp.args.StandardSave(variables),
      position=ocp.args.JsonSave({'epoch': epoch + 1, 'step': 0, 'identity': identity})))
  mngr.wait_until_finished()


def model_identity(config, num_outputs: int) -> dict:
  return {'model': config.model.name, 'hidden': list(config.model.hidden),
          'pooling': config.model.pooling, 'outputs': num_outputs}


def save(mngr: ocp.CheckpointManager, step: int, state, position: dict) -> None:
  mngr.save(step, args=ocp.args.Composite(state=ocp.args.StandardSave(state),
                                          position=ocp.args.JsonSave(position)))
  mngr.wait_until_finished()


def read_position(mngr: ocp.CheckpointManager, step: int, identity: dict) -> dict:
  """The checkpoint's position; a checkpoint of another model or head is refused, naming
  both."""
  position = mngr.restore(step, args=ocp.args.Composite(position=ocp.args.JsonRestore()))
  position = position['position']
  if position['identity'] != identity:
    theirs, ours = (', '.join(f'{k}={v}' for k, v in d.items())
                    for d in (position['identity'], identity))
    raise RunDirError(f'checkpoint {mngr.directory / str(step)} holds {theirs}, but the config '
                      f'asks for {ours}: use the run directory that checkpoint came from')
  return position


def restore(mngr: ocp.CheckpointManager, state, identity: dict):
  """(state, position) from the latest checkpoint; `state` gives the structure and
  shardings."""
  step = mngr.latest_step()
  position = read_position(mngr, step, identity)
  abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, state)
  restored = mngr.restore(step, args=ocp.args.Composite(state=ocp.args.StandardRestore(abstract)))
  return restored['state'], position


def restore_variables(run_dir: Path, abstract: dict, identity: dict,
                      which: str = 'best') -> tuple[dict, dict, str]:
  """(params and batch_stats, position, 'best' or 'last') of a run's best checkpoint (the
  last if it has none: no validation) or its last, for inference: the optimizer state is
  not read. `abstract` gives their shapes and shardings."""
  folder = Path(run_dir).absolute() / rundir.CHECKPOINTS
  mngr = ocp.CheckpointManager(folder / BEST) if which == 'best' else None
  if mngr is None or mngr.latest_step() is None:
    which, mngr = 'last', ocp.CheckpointManager(folder)
  step = mngr.latest_step()
  if step is None:
    raise RunDirError(f'{run_dir} has no checkpoint yet: train it first, or resume it with '
                      f'--resume {run_dir}')
  position = read_position(mngr, step, identity)
  restored = mngr.restore(step, args=ocp.args.Composite(
      state=ocp.args.PyTreeRestore(
          abstract, restore_args=ocp.checkpoint_utils.construct_restore_args(abstract),
          partial_restore=True)))
  mngr.close()
  return restored['state'], position, which


def restore_run(run_dir: Path, which: str = 'best') -> rundir.TrainedRun:
  """A run's model, rebuilt from its config, with the params and batch_stats of its best
  (or last) checkpoint; no optimizer is built or read."""
  run_dir = Path(run_dir)
  config = rundir.load_config(run_dir)
  class_names, split = load_split(run_dir / rundir.SPLIT)
  outputs = 1 if len(class_names) == 2 else len(class_names)
  model = create_model(config.model, outputs)
  size, mesh = input_size(config), parallel.make_mesh()
  sharding = parallel.replicated(mesh)
  shapes = jax.eval_shape(model.init, jax.random.key(0), jnp.zeros((1, size, size, 3), jnp.uint8))
  abstract = jax.tree.map(lambda s: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=sharding),
                          {'params': shapes['params'],
                           'batch_stats': shapes.get('batch_stats', {})})
  variables, position, which = restore_variables(run_dir, abstract,
                                                 model_identity(config, outputs), which)
  return rundir.TrainedRun(run_dir, config, model, variables, mesh, outputs == 1, class_names,
                           split, position['epoch'] - 1, which)
