"""Orbax checkpoints of the whole train state, one per epoch, in the run directory."""
from pathlib import Path

import jax
import orbax.checkpoint as ocp


def manager(run_dir: Path, keep: int) -> ocp.CheckpointManager:
  return ocp.CheckpointManager(
      Path(run_dir).absolute() / 'checkpoints',
      options=ocp.CheckpointManagerOptions(max_to_keep=keep, create=True))


def save(mngr: ocp.CheckpointManager, epoch: int, state) -> None:
  mngr.save(epoch, args=ocp.args.StandardSave(state))
  mngr.wait_until_finished()


def restore(mngr: ocp.CheckpointManager, state, epoch: int | None = None):
  """`state` (same structure and shardings) filled from the checkpoint of `epoch` (latest)."""
  epoch = mngr.latest_step() if epoch is None else epoch
  abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, state)
  return mngr.restore(epoch, args=ocp.args.StandardRestore(abstract))
