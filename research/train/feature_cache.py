"""Frozen features computed once.

When the backbone is frozen for the whole run, the head is all that trains and the
backbone's (pooled) output for an image never changes: it is computed once for every
training image and the train step reads it instead of running the backbone each epoch.
With augmentation off this is exact. With augmentation on, `feature_cache.views` = K
caches K augmented views of each image and each epoch draws one of them per image (a
fixed pool of K augmentations instead of a fresh one every epoch); K = 0 recomputes.
Validation features (unaugmented, and mirrored for `evaluation.tta_flip`) are cached too.
Caches over `feature_cache.memory_gb` are memory-mapped in the run directory.
"""
import functools
from pathlib import Path

import jax
import numpy as np
from tqdm import tqdm

from research import parallel, rundir
from research.data import augments, cached_batches, epoch_seed, view_batches
from research.train.freeze import backbone_is_frozen

CACHE_DIR = 'feature_cache'


def wanted(config, phases) -> bool:
  """Whether this run trains on cached features: the backbone frozen in every phase, and
  augmentation off or `feature_cache.views` > 0."""
  cache = config.feature_cache
  return bool(cache.enabled and all(backbone_is_frozen(p.labels) for p in phases)
              and (cache.views > 0 or not augments(config.data.augment)))


@functools.partial(jax.jit, static_argnums=(0, 3))
def features_of(model, variables, images, mirror: bool):
  """Pooled backbone features of uint8 images (mirrored left-right if `mirror`); flax
  modules are static (compared by value), so this compiles once per model and shape."""
  return model.apply(variables, images[:, :, ::-1] if mirror else images, method='features')


@functools.partial(jax.jit, static_argnums=0)
def classify(model, variables, features):
  return model.apply(variables, features, method='classify')


def compute(model, variables, records, data_config, size: int, batch_size: int,
            views: list, out_path: Path | None, memory_gb: float, desc: str) -> np.ndarray:
  """(len(views), N, ...) features of `records`, one row of views each: a view is None
  (as the image is), 'mirror' (flipped left-right) or an int seed (one augmented view).
  In memory, or memory-mapped at `out_path` when larger than `memory_gb`."""
  variables = parallel.local(variables)
  records = list(records)
  out = None
  with tqdm(total=len(views) * len(records), desc=desc, unit='img', disable=None) as bar:
    for v, view in enumerate(views):
      batches = view_batches(records, data_config, size, batch_size,
                             view if isinstance(view, int) else None)
      at = 0
      for batch in batches:
        images, n = batch['image'], len(batch['image'])
        if n < batch_size:  # pad the last batch: one compiled shape
          images = np.concatenate([images, np.repeat(images[-1:], batch_size - n, 0)])
        features = np.asarray(features_of(model, variables, images, view == 'mirror'))[:n]
        if out is None:
          out = allocate((len(views), len(records), *features.shape[1:]), out_path, memory_gb)
        out[v, at:at + n] = features
        at += n
        bar.update(n)
  return out


def allocate(shape: tuple, path: Path | None, memory_gb: float) -> np.ndarray:
  size = int(np.prod(shape)) * 4
  if path is None or size <= memory_gb * 2**30:
    return np.empty(shape, np.float32)
  rundir.check_writable(path.parent, size)
  path.parent.mkdir(parents=True, exist_ok=True)
  return np.lib.format.open_memmap(path, 'w+', np.float32, shape)


class FeatureCache:
  """A run's cached training features and the batches drawn from them."""

  def __init__(self, config, model, variables, train_records, size: int, run_dir: Path, log):
    cache, self.config = config.feature_cache, config
    self.labels = [label for _, label in train_records]
    views = ([epoch_seed(config.seed + 3, k) for k in range(cache.views)]
             if augments(config.data.augment) else [None])
    self.features = compute(model, variables, train_records, config.data, size,
                            config.batch_size, views, Path(run_dir) / CACHE_DIR / 'train.npy',
                            cache.memory_gb, 'caching features')
    log(f'cache:   backbone features of {len(self.labels)} train images x {len(views)} '
        f'view(s), {self.features.nbytes / 2**20:.0f} MiB '
        f'({"memory-mapped" if isinstance(self.features, np.memmap) else "in memory"}); '
        f'the head trains on them')

  def batches(self, epoch: int, shard: tuple[int, int]):
    return cached_batches(self.features, self.labels, epoch, self.config.data,
                          self.config.batch_size, self.config.seed, shard)


def val_features(config, model, variables, records, size: int) -> np.ndarray:
  """Validation features, unaugmented, and mirrored too for `evaluation.tta_flip`."""
  views = [None, 'mirror'] if config.evaluation.tta_flip else [None]
  return compute(model, variables, records, config.data, size, config.batch_size, views, None,
                 config.feature_cache.memory_gb, 'caching val features')


def head_logits(model, variables, features: np.ndarray, batch_size: int) -> np.ndarray:
  """The head's logits on cached (views, N, ...) features, averaged over the views."""
  variables = parallel.local(variables)
  return np.mean([np.concatenate([np.asarray(classify(model, variables, view[i:i + batch_size]))
                                  for i in range(0, len(view), batch_size)])
                  for view in features], axis=0)
