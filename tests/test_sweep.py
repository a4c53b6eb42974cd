"""Sweeps: every point runs as an ordinary run directory; killed with SIGKILL inside a point,
`sweep --resume` keeps the finished points and ends with the uninterrupted sweep's table;
`compare` writes the same table for any runs."""
import csv
import json
import sys
from pathlib import Path

import pytest

from helpers import make_folder
from research.cli.main import main
from research.experiment.compare import TIMING
from test_kill_resume import ROOT, kill_when, steps_saved

CONFIG = '''from research.config import base_config

def get_config():
  c = base_config()
  c.model.name, c.model.pretrained = 'simple_cnn', False
  c.batch_size, c.num_epochs, c.data.image_size = 4, 2, 32
  c.gradcam.num_images = 1
  c.checkpoint.every_steps, c.checkpoint.keep = 1, 2
  c.data.path = {folder!r}
  c.data.augment.hflip = True
  return c

def get_sweep():
  return [{{'optimizer.learning_rate': rate}} for rate in (1e-3, 3e-3)] + [
      {{'name': 'sgd', 'optimizer.name': 'sgd', 'model.hidden': (8,)}}]
'''


@pytest.fixture(scope='module')
def config_file(tmp_path_factory):
  root = tmp_path_factory.mktemp('sweep')
  folder = make_folder(root / 'images', per_class=12)
  path = root / 'tiny.py'
  path.write_text(CONFIG.format(folder=str(folder)))
  return path


def run_in(cwd: Path, args, condition=lambda: False) -> bool:
  """`./run.sh sweep ARGS` from `cwd` (sweeps go to cwd/checkpoints/), killed when
  `condition()` holds; False if it finished first."""
  return kill_when([sys.executable, '-m', 'research.cli.main', 'sweep', *args], condition,
                   cwd=cwd)


def table(sweep_dir: Path) -> list[dict]:
  with open(sweep_dir / 'sweep.csv') as f:
    return [{k: v for k, v in row.items() if k not in TIMING} for row in csv.DictReader(f)]


def only_sweep(cwd: Path) -> Path:
  [sweep_dir] = (cwd / 'checkpoints').iterdir()
  return sweep_dir


@pytest.fixture(scope='module')
def whole(config_file, tmp_path_factory):
  """The sweep run uninterrupted (its folder)."""
  cwd = tmp_path_factory.mktemp('whole')
  assert not run_in(cwd, [str(config_file)])
  return only_sweep(cwd)


def test_a_killed_sweep_resumes_to_the_uninterrupted_table(config_file, whole, tmp_path):
  killed = tmp_path / 'killed'
  killed.mkdir()
  expected = table(whole)
  assert [r['run'] for r in expected] == ['learning_rate=0.001', 'learning_rate=0.003', 'sgd']
  assert set(expected[0]) >= {'optimizer.learning_rate', 'optimizer.name', 'model.hidden',
                              'max train acc', 'min train loss', 'max val acc', 'min val loss',
                              'test acc', 'test acc bright', 'test acc dark'}

  point = lambda: only_sweep(killed) / 'learning_rate=0.003'
  mid_point = lambda: (killed / 'checkpoints').exists() and any(
      (killed / 'checkpoints').iterdir()) and 3 in steps_saved(point())
  assert run_in(killed, [str(config_file)], mid_point)  # SIGKILL mid-epoch 1 of point 2
  sweep_dir = only_sweep(killed)
  first = sweep_dir / 'learning_rate=0.001'
  assert (first / 'report.json').exists() and not (point() / 'report.json').exists()
  finished = (first / 'metrics.jsonl').stat().st_mtime_ns

  assert not run_in(killed, ['--resume', str(sweep_dir)])
  assert (first / 'metrics.jsonl').stat().st_mtime_ns == finished  # not run again
  assert table(sweep_dir) == expected
  assert (sweep_dir / 'sweep.png').exists() and '| sgd |' in (sweep_dir / 'sweep.md').read_text()


def test_compare_tabulates_any_runs_from_their_records(whole, tmp_path, capsys):
  runs = [whole / 'learning_rate=0.001', whole / 'sgd']
  assert main(['compare', *map(str, runs), '--out', str(tmp_path / 'cmp')]) == 0
  with open(tmp_path / 'cmp' / 'compare.csv') as f:
    rows = list(csv.DictReader(f))
  assert [r['run'] for r in rows] == ['learning_rate=0.001', 'sgd']
  assert [r['optimizer.name'] for r in rows] == ['adam', 'sgd']  # only differing keys
  assert 'optimizer.learning_rate' not in rows[0]
  for row, run in zip(rows, runs):
    report = json.loads((run / 'report.json').read_text())
    metrics = [json.loads(l) for l in (run / 'metrics.jsonl').read_text().splitlines()]
    assert float(row['test acc']) == report['accuracy']
    assert float(row['max val acc']) == max(m['val_accuracy'] for m in metrics)
    assert float(row['min train loss']) == min(m['train_loss'] for m in metrics)
  capsys.readouterr()
  assert main(['compare', str(runs[0]), str(tmp_path / 'nothing')]) == 2
  assert capsys.readouterr().err == (f'error: {tmp_path / "nothing"} is not a run directory (no '
                                     f'config.json): pass a folder made by ./run.sh '
                                     f'configs/<experiment>.py, e.g. checkpoints/<run>\n')


def test_a_sweep_whose_weights_cannot_be_had_stops_before_any_point(tmp_path, capsys,
                                                                     monkeypatch):
  monkeypatch.setenv('RESEARCH_CACHE', str(tmp_path / 'cache'))
  monkeypatch.chdir(tmp_path)
  assert main(['sweep', str(ROOT / 'configs' / 'restaurant.py')]) == 2
  err = capsys.readouterr().err
  assert err.startswith('error: could not download https://download.pytorch.org/models/'
                        'resnet50-0676ba61.pth') and err.count('\n') == 1
  assert err.endswith(f'put resnet50-0676ba61.pth at '
                      f'{tmp_path}/cache/weights/resnet50-0676ba61.pth\n')
  assert not (tmp_path / 'checkpoints').exists()
