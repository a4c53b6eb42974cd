"""The same image in two splits is found: exact, flipped, resized and re-encoded copies
of real photos; distinct photos are not flagged; the config can make it an error."""
import shutil

import pytest
import skimage.data
from PIL import Image

from helpers import make_folder
from research.cli.main import main
from research.data import find_leaks, scan_images

PHOTOS = ('astronaut', 'camera', 'chelsea', 'coffee', 'rocket', 'immunohistochemistry')

@pytest.fixture
def planted(tmp_path):
  """Six real photos in train; in test an exact, a flipped, a resized and a re-encoded copy
  of four of them, and two photos that are in no other split."""
  split = {'train': [], 'val': [], 'test': []}
  for i, name in enumerate(PHOTOS):
    image = Image.fromarray(getattr(skimage.data, name)()).convert('RGB')
    path = tmp_path / f'{name}.png'
    image.save(path)
    split['train'].append((str(path), 0))
  originals = [p for p, _ in split['train']]
  copies = {
      'exact': shutil.copy(originals[0], tmp_path / 'exact.png'),
      'flipped': tmp_path / 'flipped.png',
      'resized': tmp_path / 'resized.png',
      'reencoded': tmp_path / 'reencoded.jpg',
  }
  Image.open(originals[1]).transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(copies['flipped'])
  image = Image.open(originals[2])
  image.resize((image.width * 2 // 5, image.height * 2 // 5), Image.BILINEAR).save(copies['resized'])
  Image.open(originals[3]).save(copies['reencoded'], quality=80)
  split['test'] = [(str(p), 0) for p in copies.values()]
  for name in ('coins', 'moon'):
    path = tmp_path / f'{name}.png'
    Image.fromarray(getattr(skimage.data, name)()).save(path)
    split['val'].append((str(path), 0))
  return split, originals, copies

def test_every_planted_copy_is_found_and_nothing_else(planted):
  split, originals, copies = planted
  bad, fingerprints = scan_images([p for s in split.values() for p, _ in s], 'skip')
  assert not bad
  leaks = find_leaks(split, fingerprints, max_bits=8)
  found = {(leak['a'], leak['b'], leak['kind']) for leak in leaks}
  assert found == {(originals[0], str(copies['exact']), 'exact'),
                   (originals[1], str(copies['flipped']), 'near'),
                   (originals[2], str(copies['resized']), 'near'),
                   (originals[3], str(copies['reencoded']), 'near')}
  assert all(leak['split_a'] == 'train' and leak['split_b'] == 'test' for leak in leaks)

def copies_before_splitting(tmp_path):
  """The 20-classes mistake: every image and a flipped copy of it, then split."""
  folder = make_folder(tmp_path / 'images', per_class=12)
  for path in list(folder.rglob('*.png')):
    Image.open(path).transpose(Image.Transpose.FLIP_LEFT_RIGHT).save(
        path.with_name(f'{path.stem}_flipped.png'))
  return folder

def run(folder, run_dir, *extra):
  return main(['configs/efficientnet_adam.py', '--config.model.name=simple_cnn',
               '--config.model.pretrained=False', '--config.freeze.before=',
               '--config.batch_size=4', '--config.num_epochs=1', '--config.gradcam.num_images=0',
               '--config.data.image_size=32',
               f'--config.data.path={folder}', f'--config.workdir={run_dir}', *extra])

def test_leakage_is_listed_in_the_run_directory(tmp_path, capsys):
  folder = copies_before_splitting(tmp_path)
  assert run(folder, tmp_path / 'run') == 0
  assert 'pairs of images are the same image in two splits' in capsys.readouterr().out
  lines = (tmp_path / 'run' / 'leakage.txt').read_text().splitlines()
  assert lines and all(line.split('\t')[3].removesuffix('.png') in line.split('\t')[5]
                       or line.split('\t')[5].removesuffix('.png') in line.split('\t')[3]
                       for line in lines)  # each pair: an image and its own flipped copy

def test_leakage_can_be_an_error_before_anything_is_written(tmp_path, capsys):
  folder = copies_before_splitting(tmp_path)
  assert run(folder, tmp_path / 'run', '--config.data.leakage=error') == 2
  err = capsys.readouterr().err.strip().splitlines()[-1]  # after the progress bar
  assert err.startswith('error: ')
  assert err.endswith('near copy: remove the copies, or set --config.data.leakage=warn')
  assert not (tmp_path / 'run').exists()
