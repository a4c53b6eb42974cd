"""Data parallelism with jax.sharding: one 'data' mesh axis over the devices of every process.

On a CPU, every core is a device of its own (`use_cpu_cores`): XLA:CPU runs many small
ops on one thread, and a batch split over devices keeps every core busy (BENCHMARKS.md).
A run's mesh takes as many of them as divide its batch into parts of MIN_PER_DEVICE
images or more.

Batches are sharded along 'data'; parameters and optimizer state are
replicated. XLA inserts the cross-device reductions (gradients, BatchNorm
statistics), so N devices compute what one device would on the whole batch.
Several processes (hosts) are JAX's own multi-controller runtime: `start` calls
`jax.distributed.initialize`, each process feeds its part of every global batch,
and only process 0 writes files.
"""
import os
import socket
import sys
import time

import jax
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from research.errors import UserError

# Explicit settings (one command per process); JAX reads the first itself.
COORDINATOR = 'JAX_COORDINATOR_ADDRESS'
NUM_PROCESSES, PROCESS_ID = 'JAX_NUM_PROCESSES', 'JAX_PROCESS_ID'
TIMEOUT = 'RESEARCH_DISTRIBUTED_TIMEOUT'  # seconds to wait for every process (default 120)
CLUSTER_SIZES = ('SLURM_NTASKS', 'OMPI_COMM_WORLD_SIZE')  # launchers JAX detects by itself
CPU_DEVICES = 'JAX_NUM_CPU_DEVICES'  # JAX's own setting: when set, it decides
MIN_PER_DEVICE = 4  # images of a batch on one CPU device, at least
XLA_FLAGS = 'XLA_FLAGS'
EIGEN_CONVOLUTIONS = '--xla_cpu_experimental_ynn_fusion_type=-individual_convolution'
YNNPACK_CONVOLUTIONS = '--xla_cpu_experimental_ynn_fusion_type=+individual_convolution'


class DistributedError(UserError, RuntimeError):
  """The processes of a multi-process run cannot find each other."""


def several_processes() -> bool:
  """Whether this process is one of several: explicit settings, a launcher that started
  more than one task (SLURM, Open MPI), or RESEARCH_DISTRIBUTED=1 (any cluster JAX detects,
  e.g. a cloud TPU pod)."""
  return (bool(os.environ.get(COORDINATOR) or os.environ.get(NUM_PROCESSES))
          or any(int(os.environ.get(v, '1')) > 1 for v in CLUSTER_SIZES)
          or os.environ.get('RESEARCH_DISTRIBUTED') == '1')


def reachable(address: str, timeout: float) -> bool:
  """Whether something accepts connections at host:port within `timeout` seconds."""
  host, _, port = address.rpartition(':')
  deadline = time.monotonic() + timeout
  while time.monotonic() < deadline:
    try:
      with socket.create_connection((host.strip('[]'), int(port)), timeout=1):
        return True
    except OSError:
      time.sleep(0.5)
  return False


def start() -> None:
  """`jax.distributed.initialize()` when this process is one of several; never for a plain
  single-process run. A process that cannot reach the coordinator ends in one line after
  the timeout (JAX's client would abort the process instead)."""
  if not several_processes() or jax.distributed.is_initialized():
    return
  address, count, index = (os.environ.get(k) for k in (COORDINATOR, NUM_PROCESSES, PROCESS_ID))
  timeout = int(os.environ.get(TIMEOUT, '120'))
  if address and index not in (None, '0') and not reachable(address, timeout):
    raise DistributedError(
        f'process {index} of {count} could not join the run at {address} within {timeout} s: '
        f'start process 0 there, or fix {COORDINATOR} (host:port of process 0)')
  if index == '0':
    print(f'joining: process 0 of {count} hosts {address}; waiting up to {timeout} s '
          f'({TIMEOUT}) for the others', file=sys.stderr)
  jax.distributed.initialize(num_processes=int(count) if count else None,
                             process_id=int(index) if index else None,
                             initialization_timeout=timeout)


def is_main() -> bool:
  """Process 0: the one that writes reports, plots and logs."""
  return jax.process_index() == 0


def barrier(name: str) -> None:
  """Every process waits here for the others (nothing to wait for with one)."""
  if jax.process_count() > 1:
    multihost_utils.sync_global_devices(name)


def use_cpu_cores() -> int | None:
  """Each core its own JAX CPU device; only before JAX starts its backends, and not when
  JAX_NUM_CPU_DEVICES says otherwise or this is one of several processes. The count, or
  None where nothing changed. Also `use_eigen_convolutions`."""
  use_eigen_convolutions()
  if os.environ.get(CPU_DEVICES) or several_processes():
    return None
  count = os.cpu_count() or 1
  try:
    jax.config.update('jax_num_cpu_devices', count)
  except RuntimeError:  # the backends already started (a test, a notebook): as they are
    return None
  return count


def use_eigen_convolutions() -> None:
  """XLA:CPU's own (Eigen) convolutions instead of YNNPACK's, which jaxlib 0.10 picks for
  every convolution on a CPU: InceptionV3's train step 1.4x faster, no row slower
  (docs/speed.md; `./run.sh bench --sections convolutions`); YNNPACK keeps the matrix
  products. Only before JAX starts its backends (XLA reads XLA_FLAGS then; after, XLA_FLAGS
  is left as it is), and not where XLA_FLAGS already chooses (YNNPACK_CONVOLUTIONS has
  YNNPACK's back)."""
  from jax._src import xla_bridge  # pylint: disable=import-outside-toplevel  (no public query)
  if xla_bridge.backends_are_initialized():  # too late for this process
    return
  flags = os.environ.get(XLA_FLAGS, '')
  if 'ynn_fusion_type' not in flags:
    os.environ[XLA_FLAGS] = f'{flags} {EIGEN_CONVOLUTIONS}'.strip()


def dividing(batch_size: int, devices: int) -> int:
  """The most of `devices` that divide `batch_size` into parts of MIN_PER_DEVICE or more."""
  return max(k for k in range(1, devices + 1)
             if batch_size % k == 0 and (k == 1 or batch_size // k >= MIN_PER_DEVICE))


def make_mesh(batch_size: int | None = None) -> Mesh:
  """Every device of every process; with one process on CPU devices and a `batch_size`, the
  first `dividing` it."""
  devices = jax.devices()
  if batch_size and jax.process_count() == 1 and devices[0].platform == 'cpu':
    devices = devices[:dividing(batch_size, len(devices))]
  return Mesh(np.asarray(devices), ('data',))


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


def replicate(tree, mesh: Mesh):
  return jax.device_put(tree, replicated(mesh))


def shard_batch(batch: dict, mesh: Mesh) -> dict:
  """This process's part of the global batch -> one global array per key."""
  sharding = NamedSharding(mesh, P('data'))
  if jax.process_count() == 1:  # the whole batch is here: one transfer
    return jax.device_put(batch, sharding)
  return {k: jax.make_array_from_process_local_data(sharding, v) for k, v in batch.items()}


def fetch(tree):
  """Numpy values of (possibly multi-process) global arrays, the same on every process."""
  if jax.process_count() == 1:
    return jax.device_get(tree)
  return multihost_utils.process_allgather(tree, tiled=True)


def local(tree):
  """Numpy copies of replicated arrays from this process's own device (no communication),
  for work one process does alone."""
  return jax.tree.map(lambda a: np.asarray(a.addressable_data(0)) if isinstance(a, jax.Array)
                      else a, tree)
