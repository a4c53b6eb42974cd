"""`data.tfds`: TensorFlow Datasets by name, read without TensorFlow, offline.

Nothing can be downloaded here, so each dataset is prepared for real into a local
data directory by its own registered tfds builder -- its name, version and features
-- with only the download replaced by local examples (noisy JPEGs: the first class
light, the second dark), as tfds's own builder tests do.
"""
import io
import json
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image
import tensorflow_datasets as tfds

from research.cli.main import main
from research.config import base_config
from research.data import DataError, load_source, make_split, split_records
from research.data import tfds_source
from research.data.images import load_image
from test_kill_resume import ROOT


def jpeg(value: int, seed: int, size: int) -> bytes:
  rng = np.random.default_rng(seed)
  pixels = np.clip(rng.normal(value, 20, (size, size, 3)), 0, 255).astype(np.uint8)
  out = io.BytesIO()
  Image.fromarray(pixels).save(out, 'JPEG')
  return out.getvalue()


def local(name: str, splits: dict[str, int], size: int, broken=()):
  """The registered tfds builder `name` with `splits` {split: images per class} of local
  examples instead of its download; `broken` indices of train get truncated bytes."""
  registered = tfds.builder_cls(name)

  class Local(registered, skip_registration=True):
    name = registered.name

    def _split_generators(self, dl_manager):
      labels = self.info.features['label'].names
      return {split: self._examples(split, count, labels) for split, count in splits.items()}

    def _examples(self, split, count, labels):
      for c, label in enumerate(labels):
        for i in range(count):
          data = jpeg(200 - 150 * c // (len(labels) - 1), seed=len(split) * 1000 + 100 * c + i,
                      size=size)
          key = f'{split}/{label}/{i}'
          if split == 'train' and c * count + i in broken:
            data = data[:len(data) // 3]
          yield key, self._record(key, data, label)

    def _record(self, key, data, label):
      if registered.name == 'cats_vs_dogs':
        return {'image': data, 'image/filename': f'PetImages/{key}.jpg', 'label': label}
      return {'image': data, 'label': label}

  return Local


def prepare(name, data_dir, **kwargs):
  local(name, **kwargs)(data_dir=str(data_dir)).download_and_prepare(
      file_format='array_record')
  return str(data_dir)


def data_config(name, data_dir, path=''):
  config = base_config().data
  config.path, config.tfds, config.tfds_dir = path, name, str(data_dir)
  return config


def test_a_dataset_with_train_only_is_split_stratified(tmp_path):
  data_dir = prepare('cats_vs_dogs', tmp_path / 'tfds', splits={'train': 10}, size=48)
  source = load_source(data_config('cats_vs_dogs', data_dir))
  assert source.class_names == ('cat', 'dog') and not source.given
  assert sorted(source.labels) == [0] * 10 + [1] * 10
  split = split_records(source, make_split(source, (0.6, 0.2, 0.2), seed=0))
  assert [sorted(l for _, l in split[s]) for s in ('val', 'test')] == [[0, 0, 1, 1]] * 2
  path, label = split['train'][0]
  assert path.startswith(f'tfds:{tmp_path}/tfds/cats_vs_dogs/4.0.1#train/')
  assert abs(load_image(path, 32).mean() - (200 if label == 0 else 50)) < 15
  # in a process of its own (this one may have imported TensorFlow for another test file):
  # reading a prepared dataset's images imports no TensorFlow
  script = ('import sys; from research.data import load_source; from research.config import '
            'base_config; from research.data.images import load_image\n'
            'config = base_config().data; config.path = ""; config.tfds = "cats_vs_dogs"; '
            f'config.tfds_dir = {str(data_dir)!r}\n'
            'source = load_source(config); load_image(source.paths[0], 32)\n'
            'assert "tensorflow" not in sys.modules, "TensorFlow was imported"\n')
  subprocess.run([sys.executable, '-c', script], check=True, cwd=ROOT)


def test_a_dataset_s_own_splits_are_kept(tmp_path):
  data_dir = prepare('beans', tmp_path / 'tfds', splits={'train': 6, 'validation': 2, 'test': 3},
                     size=500)
  source = load_source(data_config('beans', data_dir))
  split = split_records(source, make_split(source, (0.7, 0.15, 0.15), seed=0))
  assert source.class_names == ('angular_leaf_spot', 'bean_rust', 'healthy')
  assert {s: {p.split('#')[1].split('/')[0] for p, _ in split[s]} for s in split} == {
      'train': {'train'}, 'val': {'validation'}, 'test': {'test'}}
  assert [len(split[s]) for s in ('train', 'val', 'test')] == [18, 6, 9]


def test_a_run_on_a_tfds_dataset(tmp_path):
  """Trains and skips the unreadable record as it would a file."""
  data_dir = prepare('cats_vs_dogs', tmp_path / 'tfds', splits={'train': 10}, size=48, broken=(3,))
  run = tmp_path / 'run'
  assert main(['configs/efficientnet_adam.py', '--config.model.name=simple_cnn',
               '--config.model.pretrained=False', '--config.freeze.before=',
               '--config.batch_size=4', '--config.num_epochs=1', '--config.gradcam.num_images=1',
               '--config.data.image_size=32',
               '--config.data.tfds=cats_vs_dogs', f'--config.data.tfds_dir={data_dir}',
               f'--config.workdir={run}']) == 0
  split = json.loads((run / 'split.json').read_text())
  assert split['class_names'] == ['cat', 'dog']
  assert sum(len(split[s]) for s in ('train', 'val', 'test')) == 19
  bad = (run / 'bad_images.txt').read_text().splitlines()
  assert len(bad) == 1 and bad[0].startswith(f'tfds:{data_dir}/cats_vs_dogs/4.0.1#train/')
  assert json.loads((run / 'report.json').read_text())['num_images'] == len(split['test'])


def test_a_dataset_not_prepared_is_one_line(tmp_path, monkeypatch):
  monkeypatch.setattr(tfds_source, 'tensorflow_installed', lambda: False)  # the core install
  with pytest.raises(DataError, match=f"^tfds dataset tf_flowers is not prepared in {tmp_path}: "
                     f"pip install -e '.\\[tfds-prepare\\]' \\(TensorFlow, to download and "
                     f"prepare it once\\), or point --config.data.tfds_dir at a directory where "
                     f"it is prepared$"):
    load_source(data_config('tf_flowers', tmp_path))
  with pytest.raises(DataError, match="^data.tfds 'cats_and_dogs' is not a TensorFlow Datasets "
                     "name"):
    load_source(data_config('cats_and_dogs', tmp_path))
  with pytest.raises(DataError, match='both name the data: set only one'):
    load_source(data_config('tf_flowers', tmp_path, path=str(tmp_path)))
