"""Sources, the split, augmentation and bad input, on real files."""
from pathlib import Path

import ml_collections
import numpy as np
import pytest

from helpers import make_folder, truncate, write_image
from research.config import base_config
from research.data import (SCAN_CACHE, DataError, scan_images, load_image, load_source,
                           stratified_split, train_batches)
from research.data import images
from research.data.augment import augment


def data_config(path=''):
  config = base_config().data
  config.path, config.threads = str(path), 2
  config.augment.update(rotation=40.0, shear=0.2, zoom=0.2, hflip=True)
  return config


def test_folder_source_labels_follow_sorted_class_folders(tmp_path):
  source = load_source(data_config(make_folder(tmp_path, per_class=3)))
  assert source.class_names == ('bright', 'dark')
  assert source.labels == (0, 0, 0, 1, 1, 1)
  assert all('/bright/' in p for p in source.paths[:3])


def test_csv_source_resolves_paths_relative_to_the_csv(tmp_path):
  make_folder(tmp_path, per_class=2)
  (tmp_path / 'labels.csv').write_text(
      'path,label\nbright/bright_000.png,b\ndark/dark_000.png,d\nbright/bright_001.png,b\n')
  source = load_source(data_config(tmp_path / 'labels.csv'))
  assert source.class_names == ('b', 'd')
  assert sorted(source.labels) == [0, 0, 1]


def test_elpv_default_has_all_images_and_both_tasks():
  binary = load_source(data_config())
  assert len(binary.paths) == 2624 and binary.class_names == ('functional', 'defective')
  config = data_config()
  config.elpv_task = 'levels'
  levels = load_source(config)
  assert set(levels.labels) == {0, 1, 2, 3}
  assert [l > 0 for l in levels.labels] == [bool(l) for l in binary.labels]


def test_missing_data_path_is_one_clear_line(tmp_path):
  with pytest.raises(DataError) as e:
    load_source(data_config(tmp_path / 'nope'))
  assert str(e.value) == (f'data.path {tmp_path / "nope"} does not exist: point --config.data.path '
                          'at a folder with one sub-folder per class, or at a CSV of path,label')


def test_class_folder_without_images_is_named(tmp_path):
  make_folder(tmp_path, per_class=2)
  (tmp_path / 'empty').mkdir()
  (tmp_path / 'empty' / 'notes.txt').write_text('no images here')
  with pytest.raises(DataError, match=f'class folder {tmp_path / "empty"} has no images'):
    load_source(data_config(tmp_path))


def test_split_is_stratified_disjoint_complete_and_deterministic():
  labels = [0] * 70 + [1] * 30
  split = stratified_split(labels, (0.7, 0.15, 0.15), seed=3)
  together = np.concatenate([split['train'], split['val'], split['test']])
  assert sorted(together.tolist()) == list(range(100))
  assert [len(split[s]) for s in ('train', 'val', 'test')] == [70, 15, 15]
  assert sum(labels[i] for i in split['train']) == 21  # 30% of 70: stratified
  again = stratified_split(labels, (0.7, 0.15, 0.15), seed=3)
  assert all((split[s] == again[s]).all() for s in split)
  other = stratified_split(labels, (0.7, 0.15, 0.15), seed=4)
  assert not (split['test'] == other['test']).all()


def test_truncated_image_is_skipped_and_named_or_stops_the_run(tmp_path):
  good = write_image(tmp_path / 'good.png', 100)
  bad = truncate(write_image(tmp_path / 'bad.jpg', 100, size=200).rename(tmp_path / 'bad.jpg'))
  assert list(scan_images([str(good), str(bad)], 'skip')[0]) == [str(bad)]
  with pytest.raises(DataError, match=f'cannot read image {bad} .*set --config.data.on_bad_image=skip'):
    scan_images([str(good), str(bad)], 'error')


def test_a_second_scan_decodes_only_files_changed_since(tmp_path, monkeypatch):
  """The scan cache: what a first scan found (bad images, fingerprints) comes back without
  decoding; a file rewritten under its name is decoded again."""
  good = [str(write_image(tmp_path / f'good{i}.png', 50 * i, seed=i)) for i in range(3)]
  bad = str(truncate(write_image(tmp_path / 'bad.png', 100, size=200)))
  cache = tmp_path / 'cache' / SCAN_CACHE
  first = scan_images([*good, bad], 'skip', cache=cache)
  assert list(first[0]) == [bad] and sorted(first[1]) == sorted(good)

  decoded = []
  real_decode = images.decode
  monkeypatch.setattr(images, 'decode', lambda data: decoded.append(data) or real_decode(data))
  again = scan_images([*good, bad], 'skip', cache=cache)
  assert decoded == []
  assert again[0] == first[0]
  for path, (digest, phash, mirror) in first[1].items():
    assert again[1][path][0] == digest
    assert np.array_equal(again[1][path][1], phash) and np.array_equal(again[1][path][2], mirror)
  with pytest.raises(DataError, match=f'cannot read image {bad} '):
    scan_images([*good, bad], 'error', cache=cache)  # a bad image from the cache stops too
  assert decoded == []

  write_image(Path(bad), 100, size=200)  # repaired: another size and modification time
  repaired = scan_images([*good, bad], 'skip', cache=cache)
  assert len(decoded) == 1 and repaired[0] == {} and sorted(repaired[1]) == sorted([*good, bad])
  assert repaired[1][bad][0] == scan_images([bad], 'skip')[1][bad][0]  # as without a cache


def test_a_scan_cache_that_cannot_be_used_is_passed_over(tmp_path):
  """Its folder is a file (as a read-only home would refuse it), or its file is not SQLite:
  the scan decodes everything and finds what it finds without a cache."""
  paths = [str(write_image(tmp_path / 'a.png', 60)),
           str(truncate(write_image(tmp_path / 'b.png', 100, size=200)))]
  expected = scan_images(paths, 'skip')
  (tmp_path / 'file').write_text('')
  damaged = tmp_path / 'damaged.sqlite'
  damaged.write_bytes(b'not a database' * 100)
  for cache in (tmp_path / 'file' / SCAN_CACHE, damaged):
    bad, fingerprints = scan_images(paths, 'skip', cache=cache)
    assert bad == expected[0] and list(fingerprints) == list(expected[1])
    assert fingerprints[paths[0]][0] == expected[1][paths[0]][0]


def test_greyscale_images_become_three_channels(tmp_path):
  path = write_image(tmp_path / 'grey.png', 90, mode='L')
  image = load_image(str(path), 32)
  assert image.shape == (32, 32, 3) and image.dtype == np.uint8
  assert (image[..., 0] == image[..., 2]).all()


def test_augmentation_is_deterministic_per_seed_and_identity_when_off():
  image = np.random.default_rng(0).integers(0, 255, (32, 32, 3), dtype=np.uint8)
  cfg = data_config().augment
  a = augment(image, np.random.default_rng(7), cfg)
  b = augment(image, np.random.default_rng(7), cfg)
  assert (a == b).all() and not (a == image).all()
  off = ml_collections.ConfigDict(dict(rotation=0.0, shear=0.0, zoom=0.0, hflip=False))
  assert (augment(image, np.random.default_rng(7), off) == image).all()


def test_train_batches_reshuffle_per_epoch_and_repeat_per_seed(tmp_path):
  source = load_source(data_config(make_folder(tmp_path, per_class=4)))
  records = list(zip(source.paths, source.labels))
  labels = lambda epoch, seed: np.concatenate(
      [b['label'] for b in train_batches(records, epoch, data_config(tmp_path), 16, 4, seed)])
  first = [b['image'] for b in train_batches(records, 1, data_config(tmp_path), 16, 4, 0)]
  again = [b['image'] for b in train_batches(records, 1, data_config(tmp_path), 16, 4, 0)]
  assert all((x == y).all() for x, y in zip(first, again))
  assert len(first) == 2 and first[0].shape == (4, 16, 16, 3)
  assert any((labels(1, 0) != labels(e, 0)).any() for e in (2, 3, 4))
