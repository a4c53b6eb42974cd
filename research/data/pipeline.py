"""grain input pipelines: decode + augment in background threads and, beside an accelerator,
worker processes; batched as numpy.

grain rather than tf.data: no TensorFlow install (1.2 GB) for what is
PIL + numpy work, per-record deterministic randomness from (seed, index), and
iterators whose position can be checkpointed. Threads release the GIL while PIL
decodes and scipy warps; worker processes (`data.workers`, grain's mp_prefetch)
each make whole batches, so any worker count gives the same batches in the same
order. On a CPU-only machine the default is none: XLA needs the cores.
"""
import os

import grain
import numpy as np
from absl import flags

from research.data.augment import augment
from research.data.images import load_image


def epoch_seed(seed: int, epoch: int) -> int:
  return int(np.random.SeedSequence([seed, epoch]).generate_state(1)[0])


def _read_options(threads: int, batch_size: int) -> grain.ReadOptions:
  return grain.ReadOptions(num_threads=threads, prefetch_buffer_size=2 * batch_size)


def worker_count(data_config, accelerator: bool) -> int:
  """`data.workers`, or for -1: none on a CPU-only machine, else the cores less one (the
  training process's), at most 32."""
  if data_config.workers >= 0:
    return data_config.workers
  return min(max((os.cpu_count() or 1) - 1, 0), 32) if accelerator else 0


def balanced_draw(labels, seed: int) -> np.ndarray:
  """Indices for one class-balanced epoch of len(labels) draws: each class gets an equal
  share of the draws (the remainder to the first classes), taken from its images in
  shuffled passes, so a rare class's images repeat and a common class is subsampled."""
  rng = np.random.default_rng(seed)
  labels = np.asarray(labels)
  classes = np.unique(labels)
  shares = np.full(len(classes), len(labels) // len(classes))
  shares[:len(labels) % len(classes)] += 1
  draws = []
  for c, share in zip(classes, shares):
    members = np.flatnonzero(labels == c)
    passes = -(-share // len(members))
    draws.append(np.concatenate([rng.permutation(members) for _ in range(passes)])[:share])
  return np.concatenate(draws)


def _epoch(records, load, epoch: int, data_config, batch_size: int, seed: int,
           shard: tuple[int, int]) -> grain.MapDataset:
  """One epoch of `load(record, rng)`, shuffled and batched (see `train_batches`), each
  batch then passed through `load.batch` if it has one."""
  index, count = shard
  records = list(records)
  if data_config.balanced_sampling:
    draw = balanced_draw([label for _, label in records], epoch_seed(seed + 2, epoch))
    records = [records[i] for i in draw]
  # each record's randomness is seeded by its place in the global order, and process p
  # takes the p-th block of every global batch (of whole global batches only): any process
  # count gives the same batches, steps_per_epoch of them
  blocks = (grain.MapDataset.source(records)
            .shuffle(seed=epoch_seed(seed, epoch))
            .random_map(load, seed=epoch_seed(seed + 1, epoch))
            .batch(batch_size // count, drop_remainder=True))
  blocks = blocks[:steps_per_epoch(len(records), batch_size) * count][index::count]
  return blocks.map(load.batch) if hasattr(load, 'batch') else blocks


def _iterate(ds: grain.MapDataset, data_config, batch_size: int, workers: int = 0):
  """An iterator over `ds`, its batches made in `workers` processes (0: in this one)."""
  ds = ds.to_iter_dataset(_read_options(data_config.threads, batch_size))
  if workers:
    if not flags.FLAGS.is_parsed():  # grain reads its absl flags; this CLI is argparse's
      flags.FLAGS.mark_as_parsed()
    ds = ds.mp_prefetch(grain.MultiprocessingOptions(num_workers=workers,
                                                     per_worker_buffer_size=2))
  return iter(ds)


class Augmented:
  """Loads a (path, label) record, resized and augmented (picklable: worker processes get a
  copy)."""

  def __init__(self, size: int, augment_config):
    self.size, self.augment = size, augment_config

  def __call__(self, record, rng):
    image = load_image(record[0], self.size)
    return {'image': augment(image, rng, self.augment), 'label': np.int32(record[1])}


class Cached:
  """Record (index, label) of precomputed `features` (views, N, ...): one view of it, drawn
  at random; a batch's features are gathered at once (`batch`)."""

  def __init__(self, features):
    self.features = features

  def __call__(self, record, rng):
    view = rng.integers(len(self.features)) if len(self.features) > 1 else 0
    return {'view': np.int32(view), 'index': np.int32(record[0]), 'label': np.int32(record[1])}

  def batch(self, batch: dict) -> dict:
    return {'features': self.features[batch['view'], batch['index']], 'label': batch['label']}


def train_batches(records, epoch: int, data_config, size: int, batch_size: int, seed: int,
                  shard: tuple[int, int] = (0, 1)):
  """One epoch of shuffled, augmented, full batches: {'image': uint8 NHWC, 'label': int32};
  class-balanced draws if `data.balanced_sampling`.

  With `shard=(process_index, process_count)` each process reads its own slice of
  every global batch of `batch_size` (the same images, in the same order, as one
  process would).
  """
  return _iterate(_epoch(records, Augmented(size, data_config.augment), epoch, data_config,
                         batch_size, seed, shard), data_config, batch_size)


def cached_batches(features, labels, epoch: int, data_config, batch_size: int, seed: int,
                   shard: tuple[int, int] = (0, 1)):
  """`train_batches` over precomputed `features` (views, N, ...): the same records in the
  same order, each {'features': one view of record i, drawn at random, 'label'}."""
  return _iterate(_epoch(enumerate(labels), Cached(features), epoch, data_config, batch_size,
                         seed, shard), data_config, batch_size)


def run_batches(records, epochs: int, start: int, data_config, size: int, batch_size: int,
                seed: int, shard: tuple[int, int] = (0, 1), workers: int = 0, features=None):
  """Epochs 1..`epochs` of `train_batches` (of `cached_batches` when `features` are given)
  one after another, from global batch `start` on, in one iterator: its worker processes
  start once for the whole run. The batches are a function of (seed, epoch, position)
  alone, so a resumed run needs only the count of batches done."""
  load = Augmented(size, data_config.augment) if features is None else Cached(features)
  records = list(records) if features is None else list(enumerate(records))
  ds = grain.MapDataset.concatenate([_epoch(records, load, epoch, data_config, batch_size,
                                            seed, shard) for epoch in range(1, epochs + 1)])
  return _iterate(ds[start:], data_config, batch_size, workers if features is None else 0)


def view_batches(records, data_config, size: int, batch_size: int, seed: int | None):
  """All records in order, as batches of {'image', 'label'}: unaugmented if `seed` is None,
  else one augmented view each, seeded by (`seed`, index); the last batch may be short."""
  def load(record, rng=None):
    image = load_image(record[0], size)
    if rng is not None:
      image = augment(image, rng, data_config.augment)
    return {'image': image, 'label': np.int32(record[1])}
  ds = grain.MapDataset.source(list(records))
  ds = ds.map(load) if seed is None else ds.random_map(load, seed=seed)
  return ds.batch(batch_size, drop_remainder=False).to_iter_dataset(
      _read_options(data_config.threads, batch_size))


def steps_per_epoch(num_records: int, batch_size: int) -> int:
  return num_records // batch_size
