"""Deterministic stratified train/val/test split, made before any augmentation."""
import json
from pathlib import Path

import numpy as np
from sklearn.model_selection import train_test_split

from research import rundir
from research.data.types import DataError, Source

SPLITS = ('train', 'val', 'test')


def check_fractions(fractions) -> None:
  train_f, val_f, test_f = fractions
  if train_f <= 0 or test_f <= 0 or val_f < 0 or abs(sum(fractions) - 1) > 1e-6:
    raise DataError(f'data.split {tuple(fractions)} must be train/val/test fractions summing '
                    f'to 1, train and test positive, e.g. (0.7, 0.15, 0.15) or (0.75, 0, 0.25) '
                    f'for no validation')


def smallest_class(labels: np.ndarray, class_names) -> tuple:
  """(name, image count) of the class with the fewest images among `labels`."""
  counts = np.bincount(labels)
  smallest = int(np.argmin(np.where(counts > 0, counts, counts.max() + 1)))
  return (class_names[smallest] if class_names else smallest), int(counts[smallest])


def carve(index: np.ndarray, labels: np.ndarray, fraction: float, seed: int, class_names):
  """(kept, carved): `fraction` of `index`, stratified by class."""
  try:
    return train_test_split(index, test_size=fraction, stratify=labels[index],
                            random_state=seed)
  except ValueError:
    name, count = smallest_class(labels[index], class_names)
    raise DataError(f'class {name!r} has {count} images, too few to split off a '
                    f'{fraction:.2g} fraction: add images to {name!r} or change '
                    f'data.split') from None


def stratified_split(labels, fractions, seed: int, class_names=None) -> dict[str, np.ndarray]:
  """Indices per split; a pure function of the (sorted) labels, fractions and seed. Every
  class gets images in every split (a class missing from the test split cannot be scored);
  validation may be 0 (no per-epoch validation)."""
  check_fractions(fractions)
  train_f, val_f, test_f = fractions
  index, labels = np.arange(len(labels)), np.asarray(labels)
  try:
    train, rest = train_test_split(index, train_size=train_f, stratify=labels,
                                   random_state=seed)
    val, test = (train_test_split(rest, train_size=val_f / (val_f + test_f),
                                  stratify=labels[rest], random_state=seed)
                 if val_f else (rest[:0], rest))
  except ValueError:
    name, count = smallest_class(labels, class_names)
    raise DataError(f'class {name!r} has {count} images, too few for one in each of '
                    f'train/val/test at data.split {tuple(fractions)}: add images to {name!r} '
                    f'or change data.split') from None
  return {'train': np.sort(train), 'val': np.sort(val), 'test': np.sort(test)}


def given_split(source: Source, fractions, seed: int) -> dict[str, np.ndarray]:
  """The data's own splits; a split it lacks is carved from train (stratified) at its
  data.split fraction, unless that is 0. Every class must be in every split."""
  check_fractions(fractions)
  given, labels = np.asarray(source.given), np.asarray(source.labels)
  split = {s: np.flatnonzero(given == s) for s in SPLITS}
  share = dict(zip(SPLITS, fractions))
  missing = [s for s in ('val', 'test') if not len(split[s]) and share[s] > 0]
  total = share['train'] + sum(share[s] for s in missing)
  train, given_train = split['train'], len(split['train'])
  for name in missing:  # its share of the given train images, as a fraction of what is left
    train, split[name] = carve(train, labels, share[name] / total * given_train / len(train),
                               seed, source.class_names)
  split['train'] = train
  for name in SPLITS:
    present = set(labels[split[name]].tolist())
    lacking = [c for i, c in enumerate(source.class_names) if i not in present]
    if len(split[name]) and lacking:
      raise DataError(f'class {lacking[0]!r} has no images in the {name} split of '
                      f'{source.description}: add some, or leave {name} out to carve it from '
                      f'train')
  return {s: np.sort(v) for s, v in split.items()}


def make_split(source: Source, fractions, seed: int) -> dict[str, np.ndarray]:
  """The data's own splits if it has them, else a stratified split."""
  if source.given:
    return given_split(source, fractions, seed)
  return stratified_split(source.labels, fractions, seed, source.class_names)


def split_records(source: Source, split: dict[str, np.ndarray]) -> dict[str, list]:
  """{split: [(path, label), ...]} for indices from `stratified_split`."""
  return {name: [(source.paths[i], source.labels[i]) for i in split[name]] for name in SPLITS}


def save_split(path: Path, source: Source, records: dict[str, list]) -> None:
  record = {'class_names': list(source.class_names), 'source': source.description, **records}
  rundir.write_whole(path, json.dumps(record, indent=1))


def load_split(path: Path) -> tuple[tuple[str, ...], dict[str, list]]:
  """(class names, {split: [(path, label), ...]}) as recorded in a run directory."""
  record = json.loads(path.read_text())
  return tuple(record['class_names']), {s: [tuple(x) for x in record[s]] for s in SPLITS}
