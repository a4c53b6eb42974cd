"""Data parallelism with jax.sharding: one 'data' mesh axis over every device.

Batches are sharded along 'data'; parameters and optimizer state are
replicated. XLA inserts the cross-device reductions (gradients, BatchNorm
statistics), so N devices compute what one device would on the whole batch.
"""
import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P


def make_mesh() -> Mesh:
  return Mesh(np.asarray(jax.devices()), ('data',))


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


def replicate(tree, mesh: Mesh):
  return jax.device_put(tree, replicated(mesh))


def shard_batch(batch: dict, mesh: Mesh) -> dict:
  """This process's part of the global batch -> one global array per key."""
  sharding = NamedSharding(mesh, P('data'))
  return {k: jax.make_array_from_process_local_data(sharding, v) for k, v in batch.items()}
