"""End to end through the CLI on a real image folder: outputs, resume, eval, gradcam."""
import json
import shutil

import numpy as np

from helpers import make_folder, truncate
from research import rundir
from research.cli.main import main
from research.experiment.run import restore
from research.train import checkpoint
from research.train.freeze import flat

SMALL = ['--config.model.name=simple_cnn', '--config.model.pretrained=False', '--config.freeze.before=',
         '--config.batch_size=4', '--config.gradcam.num_images=2', '--config.data.image_size=32',
         '--config.data.augment.rotation=10.0', '--config.data.augment.hflip=True']


def train(folder, workdir, epochs, *extra):
  return main(['configs/efficientnet_adam.py', *SMALL, f'--config.data.path={folder}',
               f'--config.workdir={workdir}', f'--config.num_epochs={epochs}', *extra])


def history(run_dir):
  """metrics.jsonl without the times."""
  return [{k: v for k, v in json.loads(line).items() if k not in ('seconds', 'train_images_per_s')}
          for line in (run_dir / 'metrics.jsonl').read_text().splitlines()]


def test_a_run_writes_every_output_and_resumes_bit_identically(folder, tmp_path):
  assert train(folder, tmp_path / 'full', 2) == 0
  full = tmp_path / 'full'
  for name in ('config.json', 'split.json', 'metrics.jsonl', 'curves.png', 'report.json',
               'report.md', 'roc.png', 'confusion.png'):
    assert (full / name).exists(), name
  assert len(list((full / rundir.GRADCAM).glob('*.png'))) == 2
  [features] = (full / rundir.FEATURES).iterdir()  # one test image, its one block
  assert [p.name for p in features.iterdir()] == ['00_backbone.png']
  assert sorted(p.name for p in (full / 'checkpoints').iterdir() if p.name.isdigit()) == ['4', '8']  # by global step
  split = json.loads((full / 'split.json').read_text())
  assert not {p for p, _ in split['test']} & {p for p, _ in split['train']}

  assert train(folder, tmp_path / 'resumed', 1) == 0
  assert train(folder, tmp_path / 'resumed', 2, '--resume', str(tmp_path / 'resumed')) == 0
  for which in ('last', 'best'):
    a, b = restore(full, which), restore(tmp_path / 'resumed', which)
    assert a.checkpoint == b.checkpoint == which and a.epoch == b.epoch
    for path, value in flat(a.variables['params']).items():
      assert np.array_equal(value, flat(b.variables['params'])[path]), path
  assert a.epoch == checkpoint.best_epoch(history(full), 'val_accuracy')
  assert history(full) == history(tmp_path / 'resumed')


def test_eval_reproduces_the_report_and_gradcam_writes_pngs(folder, tmp_path, capsys):
  assert train(folder, tmp_path / 'run', 1) == 0
  report = json.loads((tmp_path / 'run' / 'report.json').read_text())
  assert main(['eval', str(tmp_path / 'run')]) == 0
  assert json.loads((tmp_path / 'run' / 'report.json').read_text()) == report
  image = next((folder / 'dark').iterdir())
  capsys.readouterr()
  assert main(['gradcam', str(tmp_path / 'run'), str(image)]) == 0
  assert capsys.readouterr().out.split('\n', 1)[1].strip() == str(
      tmp_path / 'run' / 'gradcam' / f'{image.stem}.png')
  # same file name in two class folders: two pictures
  twins = [folder / c / 'x.png' for c in ('bright', 'dark')]
  for twin, source in zip(twins, (image, next((folder / 'bright').iterdir()))):
    twin.write_bytes(source.read_bytes())
  try:
    assert main(['gradcam', str(tmp_path / 'run'), *map(str, twins)]) == 0
    assert capsys.readouterr().out.split('\n', 1)[1].split() == [
        str(tmp_path / 'run' / 'gradcam' / f'{c}_x.png') for c in ('bright', 'dark')]
    assert main(['gradcam', str(tmp_path / 'run'), str(image), '--class', '7']) == 2
    assert capsys.readouterr().err == (f'error: --class 7: {tmp_path / "run"} has 2 classes, '
                                       f'0 = bright, 1 = dark\n')
    assert main(['features', str(tmp_path / 'run'), str(image)]) == 0
    assert capsys.readouterr().out.split('\n', 1)[1].strip() == str(
        tmp_path / 'run' / 'features' / image.stem)
  finally:
    for twin in twins:
      twin.unlink()


def test_resume_with_a_different_config_names_the_keys(folder, tmp_path, capsys):
  assert train(folder, tmp_path / 'run', 1) == 0
  capsys.readouterr()
  assert train(folder, tmp_path / 'run', 2, '--config.optimizer.name=sgd',
               '--resume', str(tmp_path / 'run')) == 2
  assert 'optimizer.name differ' in capsys.readouterr().err


def test_resume_needs_no_override_repeated(folder, tmp_path):
  """The run directory holds the overrides a run started with: --resume alone continues it
  (a longer num_epochs aside) to the history of a run trained that long at once."""
  assert train(folder, tmp_path / 'full', 2) == 0
  assert train(folder, tmp_path / 'run', 1) == 0
  assert main(['configs/efficientnet_adam.py', '--resume', str(tmp_path / 'run'),
               '--config.num_epochs=2']) == 0
  assert history(tmp_path / 'run') == history(tmp_path / 'full')
  saved = json.loads((tmp_path / 'run' / 'config.json').read_text())
  assert saved['data']['path'] == str(folder) and saved['model']['name'] == 'simple_cnn'


def test_a_run_directory_is_never_overwritten(folder, tmp_path, capsys):
  assert train(folder, tmp_path / 'run', 1) == 0
  saved = (tmp_path / 'run' / 'report.json').read_text()
  capsys.readouterr()
  assert train(folder, tmp_path / 'run', 1) == 2
  assert 'already holds a run' in capsys.readouterr().err
  assert (tmp_path / 'run' / 'report.json').read_text() == saved


def test_missing_weight_file_stops_before_the_run_dir_is_written(folder, tmp_path, capsys):
  code = main(['configs/efficientnet_adam.py', f'--config.data.path={folder}', '--config.batch_size=4',
               f'--config.workdir={tmp_path / "run"}', f'--config.model.weights={tmp_path}/x.pth'])
  assert code == 2
  assert capsys.readouterr().err.splitlines()[-1] == (
      f'error: weight file {tmp_path}/x.pth does not exist: fix --config.model.weights or leave '
      f'it empty to use efficientnet-lite0-57934424.pth')
  assert not (tmp_path / 'run').exists()


def test_missing_data_path_exits_2_with_one_line(tmp_path, capsys):
  code = main(['configs/efficientnet_adam.py', f'--config.data.path={tmp_path}/none',
               f'--config.workdir={tmp_path / "run"}'])
  err = capsys.readouterr().err
  assert code == 2 and err.startswith(f'error: data.path {tmp_path}/none does not exist')
  assert err.count('\n') == 1
  assert not (tmp_path / 'run').exists()


def test_unreadable_images_are_skipped_counted_and_listed(tmp_path, capsys):
  images = make_folder(tmp_path / 'images', per_class=12)
  broken = truncate(next((images / 'dark').iterdir()))
  (images / 'bright' / 'empty.jpg').write_bytes(b'')
  assert train(images, tmp_path / 'run', 1) == 0
  assert 'skipping 2 unreadable images' in capsys.readouterr().out
  listed = (tmp_path / 'run' / rundir.BAD_IMAGES).read_text().splitlines()
  assert sorted(line.split('\t')[0] for line in listed) == sorted(
      [str(broken), str(images / 'bright' / 'empty.jpg')])
  split = json.loads((tmp_path / 'run' / 'split.json').read_text())
  assert sum(len(split[s]) for s in ('train', 'val', 'test')) == 24 + 1 - 2


def test_a_class_missing_from_a_split_is_named(tmp_path, capsys):
  images = make_folder(tmp_path / 'images', per_class=12)
  make_folder(images, per_class=3, classes=('rare',))
  assert train(images, tmp_path / 'run', 1) == 2
  assert capsys.readouterr().err.strip().splitlines()[-1] == (
      "error: class 'rare' has 3 images, too few for one in each of train/val/test at "
      "data.split (0.7, 0.15, 0.15): add images to 'rare' or change data.split")
  assert not (tmp_path / 'run').exists()


def test_a_checkpoint_of_another_head_is_refused_naming_both(folder, tmp_path, capsys):
  assert train(folder, tmp_path / 'a', 1) == 0
  assert train(folder, tmp_path / 'b', 1, '--config.model.hidden=(8,)') == 0
  shutil.rmtree(tmp_path / 'a' / 'checkpoints')
  shutil.copytree(tmp_path / 'b' / 'checkpoints', tmp_path / 'a' / 'checkpoints')
  report = (tmp_path / 'a' / 'report.json').read_text()
  capsys.readouterr()
  assert main(['eval', str(tmp_path / 'a')]) == 2
  assert capsys.readouterr().err.strip().splitlines()[-1] == (
      f'error: checkpoint {tmp_path / "a" / "checkpoints" / "best" / "1"} holds model=simple_cnn, '
      f'hidden=[8], pooling=avg, outputs=1, but the config asks for model=simple_cnn, '
      f'hidden=[], pooling=avg, outputs=1: use the run directory that checkpoint came from')
  assert (tmp_path / 'a' / 'report.json').read_text() == report


def test_logs_plain_lines_where_stderr_is_no_terminal(folder, tmp_path, capsys):
  assert train(folder, tmp_path / 'run', 1, '--config.log_every_steps=2') == 0
  out, err = capsys.readouterr()  # pytest's capture is no terminal, as a log file is not
  assert '\r' not in out + err
  assert 'epoch 1 step 2/4: loss ' in out and 'epoch 1: train loss' in out
