"""grain input pipelines: decode + augment in background threads, batched as numpy.

grain rather than tf.data: no TensorFlow install (1.2 GB) for what is
PIL + numpy work, per-record deterministic randomness from (seed, index), and
iterators whose position can be checkpointed. Threads, not processes: decoding
(PIL) and warping (scipy) release the GIL, and on a 2-core machine worker
processes would only compete with XLA for the cores.
"""
import grain
import numpy as np

from research.data.augment import augment
from research.data.images import load_image


def epoch_seed(seed: int, epoch: int) -> int:
  return int(np.random.SeedSequence([seed, epoch]).generate_state(1)[0])


def _read_options(threads: int, batch_size: int) -> grain.ReadOptions:
  return grain.ReadOptions(num_threads=threads, prefetch_buffer_size=2 * batch_size)


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
           shard: tuple[int, int]):
  """One epoch of `load(record, rng)`, shuffled and batched (see `train_batches`)."""
  index, count = shard
  records = list(records)
  if data_config.balanced_sampling:
    draw = balanced_draw([label for _, label in records], epoch_seed(seed + 2, epoch))
    records = [records[i] for i in draw]
  # each record's randomness is seeded by its place in the global order, and process p
  # takes the p-th block of every global batch: any process count gives the same batches
  ds = (grain.MapDataset.source(records)
        .shuffle(seed=epoch_seed(seed, epoch))
        .random_map(load, seed=epoch_seed(seed + 1, epoch))
        .batch(batch_size // count, drop_remainder=True)[index::count])
  return ds.to_iter_dataset(_read_options(data_config.threads, batch_size))


def train_batches(records, epoch: int, data_config, size: int, batch_size: int, seed: int,
                  shard: tuple[int, int] = (0, 1)):
  """One epoch of shuffled, augmented, full batches: {'image': uint8 NHWC, 'label': int32};
  class-balanced draws if `data.balanced_sampling`.

  With `shard=(process_index, process_count)` each process reads its own slice of
  every global batch of `batch_size` (the same images, in the same order, as one
  process would).
  """
  def load(record, rng):
    image = load_image(record[0], size)
    return {'image': augment(image, rng, data_config.augment), 'label': np.int32(record[1])}
  return _epoch(records, load, epoch, data_config, batch_size, seed, shard)


def cached_batches(features, labels, epoch: int, data_config, batch_size: int, seed: int,
                   shard: tuple[int, int] = (0, 1)):
  """`train_batches` over precomputed `features` (views, N, ...): the same records in the
  same order, each {'features': one view of record i, drawn at random, 'label'}."""
  views = len(features)

  def load(record, rng):
    view = rng.integers(views) if views > 1 else 0
    return {'features': features[view, record[0]], 'label': np.int32(record[1])}
  return _epoch(enumerate(labels), load, epoch, data_config, batch_size, seed, shard)


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


def eval_batches(records, data_config, size: int, batch_size: int):
  """All records in order, unaugmented; the last batch may be short."""
  return view_batches(records, data_config, size, batch_size, None)


def steps_per_epoch(num_records: int, batch_size: int) -> int:
  return num_records // batch_size
