"""Research answers with their uncertainty, end to end through the CLI: training seeds on one
split, seed groups and paired tests in sweep and compare tables, a sweep of seeds resumed,
intervals and calibration in the report, a temperature used by eval and predict."""
import csv
import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest

from helpers import make_folder, write_image
from research.cli.main import main
from research.evaluate import stats
from research.evaluate.report import load_predictions
from research.experiment.predict import predict_arrays
from research.experiment.run import restore

CONFIG = '''from research.config import base_config

def get_config(arg='adam'):
  c = base_config()
  c.model.name, c.model.pretrained = 'simple_cnn', False
  c.batch_size, c.num_epochs, c.data.image_size = 4, 2, 32
  c.gradcam.num_images, c.features.num_images = 0, 0
  c.data.path = {folder!r}
  c.optimizer.name = arg
  return c

def get_sweep():
  return [{{'variant': 'adam'}}, {{'name': 'sgd', 'variant': 'sgd', 'optimizer.learning_rate': 0.01}}]
'''


@pytest.fixture(scope='module')
def project(tmp_path_factory):
  """A folder with a tiny config over a 3-class image folder; commands run from it."""
  root = tmp_path_factory.mktemp('uncertainty')
  folder = make_folder(root / 'images', per_class=14, classes=('bright', 'dark', 'mid'))
  (root / 'tiny.py').write_text(CONFIG.format(folder=str(folder)))
  return root


def in_dir(root: Path, argv: list[str]) -> int:
  here = os.getcwd()
  os.chdir(root)
  try:
    return main(argv)
  finally:
    os.chdir(here)


@pytest.fixture(scope='module')
def sweep_dir(project):
  """`./run.sh sweep tiny.py --seeds 2`: two points, two training seeds each."""
  assert in_dir(project, ['sweep', 'tiny.py', '--seeds', '2']) == 0
  [found] = (project / 'checkpoints').glob('tiny-sweep-*')
  return found


def without_times(rows: list[dict]) -> list[dict]:
  return [{k: v for k, v in r.items() if k not in ('learning time (s)', 'train img/s')}
          for r in rows]


def test_seeds_train_on_one_split_and_the_table_groups_and_pairs_them(sweep_dir):
  names = ['adam-seed0', 'adam-seed1', 'sgd-seed0', 'sgd-seed1']
  assert sorted(p.name for p in sweep_dir.iterdir() if p.is_dir()) == names
  configs = {n: json.loads((sweep_dir / n / 'config.json').read_text()) for n in names}
  assert [configs[n]['seed'] for n in names] == [0, 1, 0, 1]
  assert {configs[n]['data']['split_seed'] for n in names} == {0}
  splits = {n: json.loads((sweep_dir / n / 'split.json').read_text()) for n in names}
  assert all(splits[n]['test'] == splits['adam-seed0']['test'] for n in names)
  # the seeds trained differently: not the same weights twice
  assert not np.array_equal(load_predictions(sweep_dir / 'adam-seed0')['logits'],
                            load_predictions(sweep_dir / 'adam-seed1')['logits'])

  result = json.loads((sweep_dir / 'sweep_results.json').read_text())
  assert result['groups'] == {'adam': [0, 1], 'sgd': [2, 3]} and result['baseline'] == 'adam'
  [c] = result['comparisons']
  correct = lambda run: (lambda p: p['probs'].argmax(1) == p['labels'])(
      load_predictions(sweep_dir / run))
  a = np.stack([correct('sgd-seed0'), correct('sgd-seed1')])
  b = np.stack([correct('adam-seed0'), correct('adam-seed1')])
  expected = stats.compare(a, b)
  assert c['paired'] and c['images'] == len(splits['adam-seed0']['test'])
  assert c['difference'] == pytest.approx(expected['difference'])
  assert c['interval'] == pytest.approx(list(expected['interval']))
  assert c['mcnemar'] == expected['mcnemar'] and c['verdict'] == expected['verdict']
  md = (sweep_dir / 'sweep.md').read_text()
  accuracies = [r['test acc'] for r in result['rows'][:2]]
  assert (f'| adam | 2 | {np.mean(accuracies):.4f} ± {np.std(accuracies, ddof=1):.4f} |' in md)
  assert f'sgd vs adam: accuracy {expected["difference"]:+.4f}' in md


def test_a_sweep_of_seeds_resumes_to_the_same_table(project, sweep_dir, tmp_path):
  copy = shutil.copytree(sweep_dir, tmp_path / 'sweep')
  shutil.rmtree(copy / 'sgd-seed1')  # as if killed before its last run began
  finished = (copy / 'adam-seed0' / 'metrics.jsonl').stat().st_mtime_ns
  assert in_dir(project, ['sweep', '--resume', str(copy)]) == 0
  assert (copy / 'adam-seed0' / 'metrics.jsonl').stat().st_mtime_ns == finished
  again, before = (json.loads((d / 'sweep_results.json').read_text()) for d in (copy, sweep_dir))
  assert without_times(again['rows']) == without_times(before['rows'])
  assert again['comparisons'] == before['comparisons']


def test_compare_pairs_only_runs_scored_on_the_same_images(project, sweep_dir, capsys, tmp_path):
  other = tmp_path / 'other-split'
  assert in_dir(project, ['tiny.py', '--config.data.split_seed=1',
                          f'--config.workdir={other}']) == 0
  capsys.readouterr()
  runs = [sweep_dir / 'sgd-seed0', sweep_dir / 'adam-seed0', other]
  assert main(['compare', *map(str, runs), '--baseline', str(runs[1]),
               '--out', str(tmp_path / 'cmp')]) == 0
  out = capsys.readouterr().out.splitlines()
  expected = stats.compare(*(
      (lambda p: p['probs'].argmax(1) == p['labels'])(load_predictions(r)) for r in runs[:2]))
  low, high = expected['interval']
  assert out[3] == (f'sgd-seed0 vs adam-seed0: accuracy {expected["difference"]:+.4f} '
                    f'[{low:+.4f}, {high:+.4f}], McNemar p = {expected["mcnemar"]["p"]:.3g}: '
                    f'{expected["verdict"]} on {len(load_predictions(runs[0])["paths"])} test '
                    'images (' + ('no difference is detectable' if expected['detectable'] is None
                                  else f'detectable at this size: {expected["detectable"]:.3f}')
                    + ')')
  assert out[4] == 'other-split vs adam-seed0: scored on different test images: no paired test'
  assert main(['compare', *map(str, runs[:2]), '--baseline', str(other)]) == 2
  assert capsys.readouterr().err == (f'error: --baseline {other} is not one of the runs '
                                     f'compared: pass one of them\n')


def test_train_with_seeds_is_a_directory_of_runs(project, capsys):
  assert in_dir(project, ['tiny.py:sgd', '--seeds', '2', '--config.num_epochs=1']) == 0
  out = capsys.readouterr().out
  [found] = (project / 'checkpoints').glob('tiny-seeds-*')
  assert sorted(p.name for p in found.iterdir() if p.is_dir()) == ['sgd-seed0', 'sgd-seed1']
  assert 'sgd: test accuracy ' in out and ' over 2 seeds (' in out
  assert in_dir(project, ['tiny.py', '--seeds', '2', '--resume', str(found)]) == 2
  assert capsys.readouterr().err == ('error: --seeds N makes a directory of N runs: continue '
                                     'it with ./run.sh sweep --resume DIR, not with --resume\n')


def test_report_intervals_calibration_and_a_temperature_eval_and_predict_use(project, tmp_path,
                                                                             capsys):
  run = tmp_path / 'run'
  assert in_dir(project, ['tiny.py', f'--config.workdir={run}',
                          '--config.evaluation.temperature_scaling=True']) == 0
  report = json.loads((run / 'report.json').read_text())
  for name in ('reliability.png', 'test_predictions.npz', 'calibration.json', 'report.md'):
    assert (run / name).exists(), name
  predictions = load_predictions(run)
  fitted = json.loads((run / 'calibration.json').read_text())['best']
  trained = restore(run)
  assert fitted['epoch'] == report['epoch'] == trained.epoch
  # the temperature is the validation split's, as fitted by hand from the model's logits
  logits, _, labels = trained.inference.predict(trained.split['val'])
  assert fitted['temperature'] == pytest.approx(stats.fit_temperature(logits, labels), rel=1e-6)
  scaled = stats.scaled_probabilities(predictions['logits'], fitted['temperature'])
  np.testing.assert_allclose(predictions['probs'], scaled, atol=1e-12)
  calibration = report['calibration']
  assert calibration['applied'] and calibration['temperature'] == fitted['temperature']
  assert calibration['ece'] == pytest.approx(stats.reliability(
      predictions['labels'], scaled)['ece'])
  assert calibration['unscaled']['nll'] == pytest.approx(stats.nll(
      predictions['labels'], stats.scaled_probabilities(predictions['logits'])), abs=1e-6)
  n, right = report['num_images'], int(round(report['accuracy'] * report['num_images']))
  assert report['intervals']['accuracy'] == list(stats.wilson(right, n))
  assert report['detectable_difference']['disagreement'] == pytest.approx(1 - report['accuracy'])
  md = (run / 'report.md').read_text()
  low, high = report['intervals']['accuracy']
  assert f'- accuracy **{report["accuracy"]:.4f}** [{low:.3f}–{high:.3f}]' in md
  assert '![reliability diagram](reliability.png)' in md and '**uses** it' in md

  assert main(['eval', str(run)]) == 0  # the same report, intervals to the last digit
  assert json.loads((run / 'report.json').read_text()) == report
  image = write_image(tmp_path / 'new' / 'a.png', 120)
  assert main(['predict', str(run), str(image)]) == 0
  with open(run / 'predictions.csv') as f:
    [row] = list(csv.DictReader(f))
  logits, _ = trained.inference.predict_arrays([np.asarray(__import__('PIL.Image').Image.open(
      image).convert('RGB'))])
  expected = stats.scaled_probabilities(logits, fitted['temperature'])[0]
  assert [float(row[f'p({c})']) for c in trained.class_names] == pytest.approx(expected, abs=1e-5)
  assert predict_arrays(trained, [np.asarray(__import__('PIL.Image').Image.open(image))]) \
      == pytest.approx(expected[None], abs=1e-6)
