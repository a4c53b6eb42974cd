"""`./run.sh curve`'s pieces on constructed data (no backbone): the power-law fit, its
verdicts and its backtest, nested stratified subsets, the probe's points, the written report;
and a killed fine-tune curve resumed with its finished points kept."""
import csv
import os
import subprocess
import sys

import numpy as np
import pytest
from scipy import stats

from helpers import make_folder
from research.cli.main import main
from research.config import ConfigError
from research.experiment import curve
from test_kill_resume import ROOT, kill_when
from test_tune import CONFIG

A, B, C = 0.6, 0.7, 0.05  # the true curve: error = A·n^(-B) + C
SIZES = np.array([5, 10, 18, 30, 50])  # images per class


def truth(n):
  return 1 - (A * np.power(n, -B) + C)


def rising_points(seeds=3, noise=0.002):
  """(n, accuracy): `seeds` points a size on the true curve, with Gaussian noise."""
  n = np.repeat(SIZES, seeds).astype(float)
  return n, truth(n) + np.random.default_rng(0).normal(0, noise, n.shape)


def test_the_fit_recovers_a_known_curve_and_extrapolates_it():
  n, accuracy = rising_points()
  f = curve.forecast(n, accuracy, target=0.9)
  assert f['n'] == 50
  # within half a percentage point of the truth at 2× and 4× the data (the worst of 30 noise
  # draws at this noise was 0.36 and 0.47 pp); a band around it, within 1 pp of the truth
  for key, x in (('at 2n', 100), ('at 4n', 200)):
    expected, low, high = f[key]
    assert expected == pytest.approx(truth(x), abs=0.005)
    assert truth(x) - 0.01 < low < expected < high < truth(x) + 0.01
  assert 1 - f['ceiling'] == pytest.approx(C, abs=0.02)
  needed = (A / (1 - 0.9 - C)) ** (1 / B)  # 34.8 images per class reach 0.9
  assert f['target n'] == pytest.approx(needed, rel=0.1)
  line = curve.verdict('m', f, 0.9)
  assert line.startswith(f'm: with 2× the data (100 images per class) expect val accuracy '
                         f'{f["at 2n"][0]:.3f} (')
  assert f'with 4× (200) {f["at 4n"][0]:.3f} (' in line
  assert line.endswith(f'; 0.9 accuracy needs ~{f["target n"]:.0f} images per class')
  assert 'flattened' not in line
  assert curve.verdict('m', curve.forecast(n, accuracy, target=0.7), 0.7).endswith(
      '; 0.7 accuracy is reached already at 5 images per class')
  # a target above the ceiling (1 - C = 0.95) is never reached
  beyond = curve.forecast(n, accuracy, target=0.97)
  assert beyond['target n'] == np.inf
  assert curve.verdict('m', beyond, 0.97).endswith(
      f'; 0.97 is not reached by this curve: it levels off at ~{beyond["ceiling"]:.3f}')


def test_the_fit_recovers_known_parameters_and_the_backtest_predicts_the_largest_size():
  """error = 0.6·n^(-0.5) + 0.1, 3 seeds a size with N(0, 0.002²) noise: the fit recovers the
  parameters, Hoiem et al.'s e_N and β_N at N = 80, and the fit to 5-40 images per class
  predicts 80's accuracy; a curve that flattens at 80 shows as a positive backtest error."""
  a, b, c, val_images = 0.6, 0.5, 0.1, 400
  true = lambda x: 1 - (a * np.power(x, -b) + c)
  n = np.repeat([5, 10, 20, 40, 80], 3).astype(float)
  accuracy = true(n) + np.random.default_rng(0).normal(0, 0.002, n.shape)
  # tolerances about twice the worst of 30 noise draws (0.023, 0.034, 0.010; 0.0047 at 80)
  assert curve.fit(n, accuracy) == pytest.approx([a, b, c], abs=0.05)
  assert curve.fit(n, accuracy)[2] == pytest.approx(c, abs=0.02)
  f = curve.forecast(n, accuracy)
  assert f['e_N'][0] == pytest.approx(1 - true(80), abs=0.005)
  # with b = 1/2 the curve is a line in n^(-1/2): β_N is the error left above c at N
  assert f['beta_N'][0] == pytest.approx(1 - true(80) - c, abs=0.008)
  assert f['e_N'][1] < f['e_N'][0] < f['e_N'][2] and f['beta_N'][1] < f['beta_N'][2]
  bt = curve.backtest(n, accuracy, val_images)
  assert bt['fitted on'] == (5, 40) and bt['n'] == 80
  predicted, low, high = bt['predicted']
  assert predicted == pytest.approx(true(80), abs=0.01) and low < predicted < high
  largest = accuracy[n == 80]
  interval = stats.binomtest(round(largest.mean() * val_images * 3), val_images * 3) \
      .proportion_ci(0.95, 'wilson')
  assert bt['measured'] == pytest.approx((largest.mean(), interval.low, interval.high))
  assert bt['error'] == predicted - largest.mean()
  assert curve.backtest_line('m', bt, 5) == (
      f'm: backtest: fitted on 5-40 images per class, the fit predicted {predicted:.3f} '
      f'({low:.3f}-{high:.3f}) at 80, measured {largest.mean():.3f} ({interval.low:.3f}-'
      f'{interval.high:.3f}): off by {bt["error"]:+.3f}')
  # 80 images per class measured no better than 40: the extrapolation promised too much
  flat = np.where(n == 80, accuracy - true(80) + true(40), accuracy)
  assert curve.backtest(n, flat, val_images)['error'] == pytest.approx(true(80) - true(40),
                                                                       abs=0.005)


def test_three_sizes_give_no_backtest():
  n = np.repeat([5, 10, 20], 3).astype(float)
  accuracy = 1 - (0.6 * np.power(n, -0.5) + 0.1)
  assert curve.backtest(n, accuracy, 100) is None
  assert curve.backtest_line('m', None, 3) == (
      'm: no backtest: it fits a·n^(-b) + c to every size but the largest, which takes 3 of '
      'them; give 4 or more sizes (3 measured)')


def test_a_flat_curve_says_more_images_will_not_help():
  n = np.repeat(SIZES, 3).astype(float)
  flat = 0.8 + np.random.default_rng(0).normal(0, 0.002, n.shape)
  line = curve.verdict('m', curve.forecast(n, flat), None)
  assert line.startswith('m: the curve has flattened: 2× the data (100 images per class) adds ')
  assert line.endswith('more images of the same kind will not help much; try fine-tuning or '
                       'a higher resolution')
  rising = curve.verdict('m', curve.forecast(*rising_points()), None)
  assert 'flattened' not in rising and 'will not help' not in rising


def test_subsets_are_nested_and_stratified_for_every_seed():
  labels = np.repeat([0, 1, 2], [60, 21, 9])
  rng = np.random.default_rng(0)
  labels = labels[rng.permutation(len(labels))]
  fractions = curve.fractions(None, labels)
  assert fractions == list(curve.FRACTIONS)
  drawn = {}
  for seed in range(5):
    subsets = drawn[seed] = curve.nested_subsets(labels, fractions, seed)
    assert len(subsets[-1]) == len(labels) and len(set(subsets[-1])) == len(labels)
    for smaller, larger in zip(subsets, subsets[1:]):
      assert set(smaller) < set(larger)
    for fraction, subset in zip(fractions, subsets):
      for c, count in enumerate(np.bincount(labels)):
        assert abs((labels[subset] == c).sum() - fraction * count) <= 1
  assert not np.array_equal(drawn[0][0], drawn[1][0])  # seeds draw different subsets
  # sizes in images per class: over the mean per class (90 / 3), each class keeping its share
  assert curve.fractions([9, 15, 0.5, 1], labels) == pytest.approx([0.3, 0.5, 1])
  with pytest.raises(ConfigError, match=r'^curve sizes \[15, 0.5, 1\] give 2 distinct subsets, '
                                        r'too few to fit a·n\^\(-b\) \+ c: give 3 or more'):
    curve.fractions([15, 0.5, 1], labels)
  for size in (31, 2.5, 0):
    with pytest.raises(ConfigError, match=rf'^curve size {size} is neither a fraction in '
                                          r'\(0, 1\] of the train split nor a whole number of '
                                          r'images per class up to its 30: give e\.g\. '):
      curve.fractions([size], labels)


def gaussians(per_class: int, seed: int, classes=4, dim=30):
  """(features, labels): class means fixed (N(0, 0.5²) a dimension), unit noise around them."""
  means = np.random.default_rng(42).normal(0, 0.5, (classes, dim))
  labels = np.repeat(np.arange(classes), per_class)
  return means[labels] + np.random.default_rng(seed).normal(0, 1, (len(labels), dim)), labels


def test_probe_points_rise_with_the_images_per_class():
  (train, train_labels), (val, val_labels) = gaussians(100, 1), gaussians(100, 2)
  rows = curve.probe_points({'train': train, 'val': val}, {'train': train_labels,
                                                           'val': val_labels},
                            [0.1, 0.3, 1.0], [0, 1, 2], list('abcd'))
  assert [(r['seed'], r['images per class'], r['train images']) for r in rows] == [
      (s, n, 4 * n) for s in range(3) for n in (10, 30, 100)]
  mean = {n: np.mean([r['val accuracy'] for r in rows if r['images per class'] == n])
          for n in (10, 30, 100)}
  assert mean[10] < mean[30] < mean[100] and mean[100] - mean[10] > 0.1
  row = rows[-1]  # all training images: equal to the probe on all of them
  predicted = curve.make_probe().fit(train, train_labels).predict(val)
  assert row['val accuracy'] == (predicted == val_labels).mean()
  assert row['val accuracy a'] == (predicted[val_labels == 0] == 0).mean()


def test_report_writes_the_table_verdicts_class_gains_and_figure(tmp_path):
  n, accuracy = rising_points()
  rows = [{'model': 'm', 'seed': i % 3, 'images per class': x, 'train images': int(2 * x),
           'val images': 60, 'val accuracy': y, 'val balanced accuracy': y, 'val accuracy cat': y,
           'val accuracy dog': y - 0.1 * (x < 50), 'seconds': 0.1}
          for i, (x, y) in enumerate(zip(n, accuracy))]
  result = curve.report(rows, ['cat', 'dog'], tmp_path, '300 train / 60 val images', 0.9)
  gain = accuracy[n == 50].mean() - accuracy[n == 30].mean()  # cat's; dog's is 0.1 more
  assert result['gains'] == [f'm: classes by gain from 30 to 50 images per class: dog '
                             f'{100 * (gain + 0.1):+.1f} pp, cat {100 * gain:+.1f} pp']
  with open(tmp_path / 'curve.csv', newline='') as f:
    written = list(csv.DictReader(f))
  assert len(written) == 15 and list(written[0]) == list(rows[0])
  md = (tmp_path / 'curve.md').read_text()
  mean, std = accuracy[-3:].mean(), accuracy[-3:].std()
  # the 95% interval: Wilson's on the 60 validation images pooled over the 3 seeds
  ci = stats.binomtest(round(mean * 180), 180).proportion_ci(0.95, 'wilson')
  assert (f'| m | 50.0 | 100 | {mean:.4f} ± {std:.4f} | {ci.low:.4f}-{ci.high:.4f} | '
          f'{mean:.4f} ± {std:.4f} | 3 |') in md
  f = result['forecasts']['m']
  assert (f'| m | 50.0 | {f["e_N"][0]:.4f} ({f["e_N"][1]:.4f}-{f["e_N"][2]:.4f}) | '
          f'{f["beta_N"][0]:.4f} ({f["beta_N"][1]:.4f}-{f["beta_N"][2]:.4f}) |') in md
  assert f['backtest'] == curve.backtest(n, accuracy, 60)
  assert result['backtests'] == [curve.backtest_line('m', f['backtest'], 5)]
  assert '## Backtest' in md
  for line in result['verdicts'] + result['backtests'] + result['gains']:
    assert f'- {line}' in md
  assert (tmp_path / 'curve.png').read_bytes()[:4] == b'\x89PNG'


def test_a_killed_finetune_curve_resumes_with_its_finished_points_kept(tmp_path):
  """SIGKILLed while its second point trains, the same command finishes the curve: the first
  point is not trained again, and every point equals an uninterrupted curve's."""
  config = tmp_path / 'tiny.py'  # simple_cnn at 32 px, 2 epochs
  config.write_text(CONFIG.format(folder=str(make_folder(tmp_path / 'images', 15)), space={}))
  args = ['curve', str(config), '--mode', 'finetune', '--sizes', '0.4,0.7,1', '--seeds', '1']
  killed, whole = tmp_path / 'killed', tmp_path / 'whole'
  cmd = [sys.executable, '-m', 'research.cli.main', *args, '--out', str(killed)]
  points = killed / 'points'
  assert kill_when(cmd, lambda: (points / 'simple_cnn-seed0-0.7' / 'config.json').exists())
  first = points / 'simple_cnn-seed0-0.4' / 'point.json'
  kept = first.stat().st_mtime_ns
  assert not (points / 'simple_cnn-seed0-0.7' / 'point.json').exists()
  resumed = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, check=False,
                           env={**os.environ, "PYTHONPATH": str(ROOT)})
  assert resumed.returncode == 0, resumed.stderr
  assert first.stat().st_mtime_ns == kept
  assert resumed.stdout.count('point:') == 2  # the killed point and the last one
  assert 'simple_cnn: no backtest: ' in resumed.stdout  # 3 sizes
  assert main([*args, '--out', str(whole)]) == 0

  def rows(out):
    with open(out / 'curve.csv', newline='') as f:
      return [{k: v for k, v in row.items() if k != 'seconds'} for row in csv.DictReader(f)]

  assert len(rows(killed)) == 3 and rows(killed) == rows(whole)
