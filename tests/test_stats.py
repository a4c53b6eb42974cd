"""research.evaluate.stats against known values, hand-computed cases and scikit-learn/scipy:
intervals, paired comparisons, the detectable difference, calibration and temperature."""
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats as scipy_stats
from sklearn.metrics import (balanced_accuracy_score, f1_score, log_loss, roc_auc_score)

from research.evaluate import stats
from research.models import Task


def test_wilson_interval_known_values():
  # 0 of 10: the textbook Wilson 95% upper bound 0.2775; 81 of 263 by the formula by hand
  assert stats.wilson(0, 10) == pytest.approx((0.0, 0.27753), abs=1e-5)
  k, n, z = 81, 263, scipy_stats.norm.ppf(0.975)
  p = k / n
  centre = (p + z * z / (2 * n)) / (1 + z * z / n)
  half = z / (1 + z * z / n) * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
  assert stats.wilson(k, n) == pytest.approx((centre - half, centre + half), abs=1e-9)
  assert stats.wilson(0, 0) == (None, None)


def test_newcombe_interval_of_a_difference_known_values():
  # Newcombe (1998), Table II, method 10: 56/70 - 48/80 and 9/10 - 3/10
  assert stats.newcombe(56, 70, 48, 80) == pytest.approx((0.0524, 0.3339), abs=5e-5)
  assert stats.newcombe(9, 10, 3, 10) == pytest.approx((0.1705, 0.8090), abs=5e-5)
  low, high = stats.newcombe(300, 394, 300, 394)
  assert low == pytest.approx(-high) and stats.verdict((low, high)) == 'no detectable difference'


def test_mcnemar_exact_known_value():
  # 1 image only a gets right, 9 only b: p = 2 * P(X <= 1 | 10, 1/2) = 2 * 11 / 1024
  a = np.array([1] + [0] * 9 + [1] * 5, bool)
  b = np.array([0] + [1] * 9 + [1] * 5, bool)
  assert stats.mcnemar(a, b) == {'only_a_right': 1, 'only_b_right': 9, 'p': 22 / 1024}
  assert stats.mcnemar(a, a)['p'] == 1.0


def data(k: int, n: int = 300, seed: int = 1):
  rng = np.random.default_rng(seed)
  labels = rng.integers(0, k, n)
  probs = rng.dirichlet(np.ones(k), n)
  probs[np.arange(n), labels] += 0.4
  probs = np.round(probs / probs.sum(1, keepdims=True), 2)  # ties, as real scores have
  probs[:, 0] = 1 - probs[:, 1:].sum(1)
  return labels, probs


@pytest.mark.parametrize('k', [2, 4])
def test_bootstrap_metrics_equal_scikit_learn_with_sample_weights(k):
  labels, probs = data(k)
  preds = probs.argmax(1)
  weights = stats.resample_weights(len(labels), 4, seed=3)
  confusion = stats.weighted_confusion(labels, preds, weights, k)
  auc = stats.auc_of(labels, probs, weights)
  for r, w in enumerate(weights):
    assert stats.balanced_accuracy_of(confusion)[r] == pytest.approx(
        balanced_accuracy_score(labels, preds, sample_weight=w), abs=1e-12)
    assert stats.macro_f1_of(confusion)[r] == pytest.approx(
        f1_score(labels, preds, average='macro', labels=range(k), zero_division=0,
                 sample_weight=w), abs=1e-12)
    reference = (roc_auc_score(labels, probs[:, 1], sample_weight=w) if k == 2 else
                 roc_auc_score(labels, probs, multi_class='ovr', average='macro', sample_weight=w))
    assert auc[r] == pytest.approx(reference, abs=1e-12)


def test_intervals_contain_the_estimate_and_repeat_exactly():
  labels, probs = data(3)
  names = ('a', 'b', 'c')
  first, again = stats.intervals(labels, probs, names), stats.intervals(labels, probs, names)
  assert first == again
  assert first['accuracy'] == stats.wilson((probs.argmax(1) == labels).sum(), len(labels))
  low, high = first['balanced_accuracy']
  assert low < balanced_accuracy_score(labels, probs.argmax(1)) < high
  low, high = first['roc_auc']
  assert low < stats.roc_auc(labels, probs) < high
  assert stats.intervals(labels, probs, names, seed=1) != first  # the seed is what repeats


def test_paired_bootstrap_matches_scipy_and_seeds_widen_it():
  rng = np.random.default_rng(0)
  a = rng.random(400) < 0.85
  b = np.where(rng.random(400) < 0.8, a, ~a)  # disagrees on ~20%
  result = stats.paired_difference(a, b)
  assert result['difference'] == pytest.approx(a.mean() - b.mean())
  reference = scipy_stats.bootstrap((a.astype(float), b.astype(float)),
                                    lambda x, y, axis: x.mean(axis) - y.mean(axis), paired=True,
                                    method='percentile', n_resamples=5000, vectorized=True,
                                    random_state=np.random.default_rng(1)).confidence_interval
  assert result['interval'] == pytest.approx((reference.low, reference.high), abs=0.01)
  # the same seed three times is one seed; seeds that disagree add their spread
  same = stats.paired_difference(np.stack([a] * 3), np.stack([b] * 3))['interval']
  assert same == pytest.approx(result['interval'], abs=0.01)
  noisy = np.stack([np.where(rng.random(400) < 0.9, a, ~a) for _ in range(3)])
  wide = stats.paired_difference(noisy, np.stack([b] * 3))['interval']
  assert wide[1] - wide[0] > result['interval'][1] - result['interval'][0]


def test_verdicts():
  rng = np.random.default_rng(0)
  b = rng.random(300) < 0.7
  better = stats.compare(np.ones(300, bool), b)
  assert better['verdict'] == 'better' and better['mcnemar']['p'] < 1e-10
  assert stats.compare(b, np.ones(300, bool))['verdict'] == 'worse'
  flipped = b.copy()
  flipped[:2] = ~flipped[:2]
  same = stats.compare(flipped, b)
  assert same['verdict'] == 'no detectable difference'
  assert same['disagreement'] == pytest.approx(2 / 300)


def test_detectable_difference_solves_connors_sample_size():
  # Connor (1987): n = (z_a sqrt(p) + z_b sqrt(p - d^2))^2 / d^2; p = 0.2, d = 0.1 -> n = 154.6
  z_a, z_b = scipy_stats.norm.ppf(0.975), scipy_stats.norm.ppf(0.8)
  n = (z_a * np.sqrt(0.2) + z_b * np.sqrt(0.2 - 0.01)) ** 2 / 0.01
  assert n == pytest.approx(154.6, abs=0.05)
  assert stats.detectable_difference(n, 0.2) == pytest.approx(0.1, abs=1e-6)
  assert stats.detectable_difference(4 * n, 0.2) < 0.06  # 4x the images: about half
  assert stats.detectable_difference(9, 0.3) is None  # nothing is detectable on 9 images


def test_expected_calibration_error_by_hand_and_by_guo_et_al():
  labels = np.array([1, 0, 1, 0])
  probs = np.array([[0.1, 0.9], [0.1, 0.9], [0.4, 0.6], [0.7, 0.3]])
  # bins of 1/15: 0.9 (one right, one wrong), 0.6 (right), 0.7 (right)
  assert stats.reliability(labels, probs)['ece'] == pytest.approx(
      0.5 * abs(0.5 - 0.9) + 0.25 * abs(1 - 0.6) + 0.25 * abs(1 - 0.7))

  labels, probs = data(4, n=500, seed=7)
  confidence, right = probs.max(1), probs.argmax(1) == labels
  edges, ece = np.linspace(0, 1, 16), 0.0
  for lower, upper in zip(edges[:-1], edges[1:]):  # Guo et al.'s (2017) loop
    inside = (confidence > lower) & (confidence <= upper)
    if inside.any():
      ece += inside.mean() * abs(right[inside].mean() - confidence[inside].mean())
  assert stats.reliability(labels, probs)['ece'] == pytest.approx(ece, abs=1e-12)


def test_nll_and_brier():
  labels, probs = data(3, seed=2)
  result = stats.calibration(labels, probs)
  assert result['nll'] == pytest.approx(log_loss(labels, probs))
  assert result['brier'] == pytest.approx(
      0.5 * ((probs - np.eye(3)[labels]) ** 2).sum(1).mean())
  binary_labels, binary = data(2, seed=2)
  assert stats.calibration(binary_labels, binary)['brier'] == pytest.approx(
      ((binary[:, 1] - binary_labels) ** 2).mean())


def test_scaled_probabilities_are_the_tasks():
  logits = np.random.default_rng(0).normal(0, 3, (20, 1)).astype(np.float32)
  np.testing.assert_allclose(stats.scaled_probabilities(logits),
                             np.asarray(Task(2).probabilities(jnp.asarray(logits))), atol=1e-6)
  many = np.random.default_rng(1).normal(0, 3, (20, 5)).astype(np.float32)
  np.testing.assert_allclose(stats.scaled_probabilities(many, 2.0),
                             np.asarray(Task(5).probabilities(jnp.asarray(many / 2))), atol=1e-6)


def test_temperature_recovers_the_temperature_labels_were_drawn_at():
  rng = np.random.default_rng(0)
  logits = rng.normal(0, 4, (20000, 3))
  truth = 2.5  # labels drawn from softmax(logits / 2.5): the logits are overconfident
  p = stats.scaled_probabilities(logits, truth)
  labels = (rng.random((len(p), 1)) > p.cumsum(1)).sum(1)
  fitted = stats.fit_temperature(logits, labels)
  assert fitted == pytest.approx(truth, rel=0.05)
  grid = np.linspace(1, 4, 301)
  nll = [log_loss(labels, stats.scaled_probabilities(logits, t)) for t in grid]
  assert fitted == pytest.approx(grid[int(np.argmin(nll))], abs=0.011)
  before = stats.calibration(labels, stats.scaled_probabilities(logits))['ece']
  assert stats.calibration(labels, stats.scaled_probabilities(logits, fitted))['ece'] < before
