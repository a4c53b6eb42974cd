"""Data as users keep it: pre-split folders (train/, val/ or valid/ or validation/, test/),
a CSV with a split column, and no validation split at all."""
import json

import pytest

from helpers import make_folder
from research.cli.main import main
from research.config import base_config
from research.data import DataError, load_source, make_split, split_records


def data_config(path):
  config = base_config().data
  config.path = str(path)
  return config


def split_of(path, fractions=(0.7, 0.15, 0.15)):
  source = load_source(data_config(path))
  return source, split_records(source, make_split(source, fractions, seed=0))


def folders(split):
  return {s: sorted({p.split('/')[-3] for p, _ in records}) for s, records in split.items()}


def test_pre_split_folders_are_used_as_given(tmp_path):
  for name, count in (('train', 6), ('validation', 2), ('test', 3)):
    make_folder(tmp_path / name, per_class=count, classes=('cat', 'dog'))
  source, split = split_of(tmp_path)
  assert source.class_names == ('cat', 'dog')
  assert folders(split) == {'train': ['train'], 'val': ['validation'], 'test': ['test']}
  assert [len(split[s]) for s in ('train', 'val', 'test')] == [12, 4, 6]
  assert all(p.split('/')[-2] == source.class_names[l] for s in split for p, l in split[s])


def test_a_missing_validation_folder_is_carved_from_train_stratified(tmp_path):
  make_folder(tmp_path / 'train', per_class=17, classes=('cat', 'dog'))
  make_folder(tmp_path / 'test', per_class=3, classes=('cat', 'dog'))
  _, split = split_of(tmp_path)
  assert folders(split) == {'train': ['train'], 'val': ['train'], 'test': ['test']}
  assert [len(split[s]) for s in ('train', 'val', 'test')] == [28, 6, 6]  # 0.15/0.85 of 34
  assert sorted(l for _, l in split['val']) == [0, 0, 0, 1, 1, 1]
  assert not {p for p, _ in split['val']} & {p for p, _ in split['train']}


def test_a_class_missing_from_a_given_split_is_named(tmp_path):
  make_folder(tmp_path / 'train', per_class=4, classes=('cat', 'dog'))
  make_folder(tmp_path / 'test', per_class=2, classes=('cat',))
  with pytest.raises(DataError, match=f"^class 'dog' has no images in the test split of folder "
                     f"{tmp_path} \\(split as given: test, train\\): add some, or leave test out "
                     f"to carve it from train$"):
    split_of(tmp_path)


def test_two_folders_for_one_split_are_refused(tmp_path):
  for name in ('train', 'val', 'valid'):
    make_folder(tmp_path / name, per_class=2)
  with pytest.raises(DataError, match='has both val/ and valid/ for the val split'):
    split_of(tmp_path)


def test_a_csv_split_column(tmp_path):
  images = make_folder(tmp_path / 'images', per_class=6)
  rows = ['path,label,split'] + [
      f'images/{c}/{c}_{i:03d}.png,{c},{"train" if i < 4 else "valid" if i == 4 else "test"}'
      for c in ('bright', 'dark') for i in range(6)]
  (tmp_path / 'data.csv').write_text('\n'.join(rows) + '\n')
  _, split = split_of(tmp_path / 'data.csv')
  assert [len(split[s]) for s in ('train', 'val', 'test')] == [8, 2, 2]
  assert {p.rsplit('_', 1)[-1] for p, _ in split['val']} == {'004.png'}
  (tmp_path / 'bad.csv').write_text(f'{images}/bright/bright_000.png,bright,holdout\n')
  with pytest.raises(DataError, match="split 'holdout' in row .* is not one of: train, val"):
    split_of(tmp_path / 'bad.csv')


def test_no_validation_split_trains_without_validation(tmp_path):
  images = make_folder(tmp_path / 'images', per_class=8)
  assert main(['configs/efficientnet_adam.py', '--config.model.name=simple_cnn',
               '--config.model.pretrained=False', '--config.freeze.before=',
               '--config.batch_size=4', '--config.num_epochs=2', '--config.gradcam.num_images=1',
               '--config.data.image_size=32',
               '--config.data.split=(0.75, 0, 0.25)', f'--config.data.path={images}',
               f'--config.workdir={tmp_path / "run"}']) == 0
  split = json.loads((tmp_path / 'run' / 'split.json').read_text())
  assert [len(split[s]) for s in ('train', 'val', 'test')] == [12, 0, 4]
  records = [json.loads(l) for l in (tmp_path / 'run' / 'metrics.jsonl').read_text().splitlines()]
  assert len(records) == 2 and not any('val_loss' in r for r in records)
  assert (tmp_path / 'run' / 'curves.png').exists()
