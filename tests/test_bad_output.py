"""An output directory that cannot be written, or lacks space, fails before training starts."""
import subprocess

import pytest

from helpers import make_folder
from research.cli.main import main


def run(folder, workdir, *extra):
  return main(['configs/efficientnet_adam.py', '--config.model.name=simple_cnn',
               '--config.model.pretrained=False', '--config.freeze.before=',
               '--config.batch_size=4', '--config.num_epochs=1', f'--config.data.path={folder}',
               '--config.data.image_size=32',
               f'--config.workdir={workdir}', *extra])


def last_error(capsys) -> str:
  return capsys.readouterr().err.strip().splitlines()[-1]


def test_an_unwritable_output_directory_is_refused_up_front(tmp_path, capsys):
  folder = make_folder(tmp_path / 'images', per_class=12)
  (tmp_path / 'not_a_dir').write_text('a file where the run directory should go')
  assert run(folder, tmp_path / 'not_a_dir' / 'run') == 2
  assert last_error(capsys).startswith('error: ')
  assert (tmp_path / 'not_a_dir').read_text() == 'a file where the run directory should go'


@pytest.fixture
def tiny_disk(tmp_path):
  """A real 1 MiB filesystem (tmpfs; needs root, skipped where mounting is not allowed)."""
  mount = tmp_path / 'tiny'
  mount.mkdir()
  if subprocess.run(['mount', '-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', str(mount)],
                    capture_output=True, check=False).returncode:
    pytest.skip('cannot mount a tmpfs here')
  yield mount
  subprocess.run(['umount', str(mount)], check=True)


def test_a_full_disk_is_refused_before_training(tmp_path, tiny_disk, capsys):
  folder = make_folder(tmp_path / 'images', per_class=12)
  assert run(folder, tiny_disk / 'run') == 2
  assert last_error(capsys) == (
      f'error: {tiny_disk} has 1 MiB free, a run needs about 51 MiB (checkpoints): free space '
      f'or choose another --config.workdir')
  assert not (tiny_disk / 'run').exists()
