"""Deterministic stratified train/val/test split, made before any augmentation."""
import json
from pathlib import Path

import numpy as np
from sklearn.model_selection import train_test_split

from research.data.sources import DataError, Source

SPLITS = ('train', 'val', 'test')


def stratified_split(labels, fractions, seed: int, class_names=None) -> dict[str, np.ndarray]:
  """Indices per split; a pure function of the (sorted) labels, fractions and seed. Every
  class gets images in every split (a class missing from the test split cannot be scored)."""
  train_f, val_f, test_f = fractions
  if min(fractions) <= 0 or abs(sum(fractions) - 1) > 1e-6:
    raise DataError(f'data.split {tuple(fractions)} must be three positive fractions '
                    f'summing to 1, e.g. (0.7, 0.15, 0.15)')
  index, labels = np.arange(len(labels)), np.asarray(labels)
  try:
    train, rest = train_test_split(index, train_size=train_f, stratify=labels,
                                   random_state=seed)
    val, test = train_test_split(rest, train_size=val_f / (val_f + test_f),
                                 stratify=labels[rest], random_state=seed)
  except ValueError:
    counts = np.bincount(labels)
    smallest = int(counts.argmin())
    name = class_names[smallest] if class_names else smallest
    raise DataError(f'class {name!r} has {counts[smallest]} images, too few for one in each of '
                    f'train/val/test at data.split {tuple(fractions)}: add images to {name!r} '
                    f'or change data.split') from None
  return {'train': np.sort(train), 'val': np.sort(val), 'test': np.sort(test)}


def split_records(source: Source, split: dict[str, np.ndarray]) -> dict[str, list]:
  """{split: [(path, label), ...]} for indices from `stratified_split`."""
  return {name: [(source.paths[i], source.labels[i]) for i in split[name]] for name in SPLITS}


def save_split(path: Path, source: Source, records: dict[str, list]) -> None:
  record = {'class_names': list(source.class_names), 'source': source.description, **records}
  path.write_text(json.dumps(record, indent=1))


def load_split(path: Path) -> tuple[tuple[str, ...], dict[str, list]]:
  """(class names, {split: [(path, label), ...]}) as recorded in a run directory."""
  record = json.loads(path.read_text())
  return tuple(record['class_names']), {s: [tuple(x) for x in record[s]] for s in SPLITS}
