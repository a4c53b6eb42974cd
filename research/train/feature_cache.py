"""Frozen features computed once.

When the backbone is frozen for the whole run, the head is all that trains and the
backbone's (pooled) output for an image never changes: it is computed once for every
training image and the train step reads it instead of running the backbone each epoch.
With augmentation off this is exact. With augmentation on, `feature_cache.views` = K
caches K augmented views of each image and each epoch draws one of them per image (a
fixed pool of K augmentations instead of a fresh one every epoch); K = 0 recomputes.
Validation features (unaugmented, and mirrored for `evaluation.tta_flip`) are cached too.
Caches over `feature_cache.memory_gb` are memory-mapped in the run directory. With
`feature_cache.dir` set, runs share one folder of caches, each named by what determines
its features (backbone, weights, input size, compute dtype, pooling, views and images):
the runs of a tune that change only the head read the features the first one computed.
"""
import hashlib
import json
import os
from pathlib import Path

import numpy as np

from research import cache
from research.data import augments, epoch_seed
from research.inference import inference_of
from research.models import input_size
from research.train.freeze import backbone_is_frozen

CACHE_DIR = 'feature_cache'


def wanted(config, phases) -> bool:
  """Whether this run trains on cached features: the backbone frozen in every phase, and
  augmentation off or `feature_cache.views` > 0."""
  cache = config.feature_cache
  return bool(cache.enabled and all(backbone_is_frozen(p.labels) for p in phases)
              and (cache.views > 0 or not augments(config.data.augment)))


class FeatureCache:
  """A run's cached training features and the batches drawn from them."""

  def __init__(self, config, model, task, variables, mesh, train_records, run_dir: Path, log):
    cache, self.config = config.feature_cache, config
    self.labels = [label for _, label in train_records]
    views = ([epoch_seed(config.seed + 3, k) for k in range(cache.views)]
             if augments(config.data.augment) else [None])
    self.features = shared(config, train_records, views, lambda: inference_of(
        config, model, task, variables, mesh).features(
            train_records, views, Path(run_dir) / CACHE_DIR / 'train.npy', cache.memory_gb,
            'caching features'))
    log(f'cache:   backbone features of {len(self.labels)} train images x {len(views)} '
        f'view(s), {self.features.nbytes / 2**20:.0f} MiB '
        f'({"memory-mapped" if isinstance(self.features, np.memmap) else "in memory"}); '
        f'the head trains on them')


def val_features(inference, config, records):
  """Validation features, unaugmented, and mirrored too for `evaluation.tta_flip`."""
  views = [None, 'mirror'] if config.evaluation.tta_flip else [None]
  return shared(config, records, views, lambda: inference.features(
      records, views, None, config.feature_cache.memory_gb, 'caching val features'))


def shared(config, records, views: list, compute):
  """`compute()`, or the same features from `feature_cache.dir` (written there once)."""
  if not config.feature_cache.dir:
    return compute()
  m = config.model
  what = json.dumps([m.name, m.pretrained, m.weights, m.init_from, m.dtype, m.pooling,
                     input_size(config), views, config.data.augment.to_dict(),
                     [cache.identity(p) or [p] for p, _ in records]], sort_keys=True)
  path = Path(config.feature_cache.dir) / f'{hashlib.sha256(what.encode()).hexdigest()[:20]}.npy'
  if path.exists():
    return np.load(path, mmap_mode='r')
  features = compute()
  path.parent.mkdir(parents=True, exist_ok=True)
  partial = path.with_suffix(f'.{os.getpid()}.tmp')
  with open(partial, 'wb') as f:
    np.save(f, features)
  partial.replace(path)  # whole or absent: a killed writer leaves no half file under the name
  return features
