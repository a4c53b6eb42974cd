"""How sure a test score is: intervals, paired comparisons, the smallest difference a test
split can detect, and calibration. Numpy and scipy only; every function is deterministic
(bootstraps are seeded), so a run's intervals repeat exactly.

- Accuracy and per-class accuracy: Wilson 95% score intervals (scipy.stats.binomtest).
- Balanced accuracy, macro F1, ROC AUC: percentile bootstrap over test images
  (RESAMPLES resamples, seed SEED); each resample is the same metric with every image
  weighted by how often it was drawn (the formulas are tested equal to scikit-learn's with
  `sample_weight`).
- Paired comparisons of runs scored on the same test images: the accuracy difference with a
  paired bootstrap interval (images drawn once for both runs; with several training seeds,
  each run's seeds are drawn with replacement too), McNemar's exact test (scipy's binomial
  test on the discordant images), and a verdict from the interval.
- The detectable difference: the smallest accuracy difference a paired test on n images
  detects with 80% power at alpha 0.05 (two-sided), given the share of images two models
  disagree on (Connor 1987, the sample size of McNemar's test, solved for the difference).
- Calibration: expected calibration error over BINS equal-width confidence bins (top
  label), negative log-likelihood, Brier score, and a temperature fitted to minimise the
  negative log-likelihood (Guo et al. 2017).
"""
import numpy as np
from scipy import optimize, special
from scipy import stats as scipy_stats
from sklearn.metrics import brier_score_loss, log_loss

CONFIDENCE = 0.95
RESAMPLES = 1000
SEED = 0
BINS = 15
POWER = 0.8
ALPHA = 0.05


def wilson(successes: int, n: int, confidence: float = CONFIDENCE) -> tuple[float, float]:
  """Wilson score interval of a proportion (None, None with no trials)."""
  if n == 0:
    return (None, None)
  ci = scipy_stats.binomtest(int(successes), int(n)).proportion_ci(confidence, 'wilson')
  return (float(ci.low), float(ci.high))


def newcombe(successes_a: int, n_a: int, successes_b: int, n_b: int,
             confidence: float = CONFIDENCE) -> tuple[float, float]:
  """Interval of the difference p_a - p_b of two proportions from independent samples, made
  from their Wilson intervals (Newcombe 1998, method 10). Unpaired: where both were scored on
  the same images, `paired_difference` is narrower."""
  p_a, p_b = successes_a / n_a, successes_b / n_b
  (low_a, high_a), (low_b, high_b) = (wilson(successes_a, n_a, confidence),
                                      wilson(successes_b, n_b, confidence))
  return (float(p_a - p_b - np.hypot(p_a - low_a, high_b - p_b)),
          float(p_a - p_b + np.hypot(high_a - p_a, p_b - low_b)))


def resample_weights(n: int, resamples: int = RESAMPLES, seed: int = SEED) -> np.ndarray:
  """(resamples, n) counts: how often each of n images is drawn in each bootstrap resample."""
  rng = np.random.default_rng(seed)
  return rng.multinomial(n, np.full(n, 1 / n), size=resamples).astype(np.float64)


def percentile_interval(values: np.ndarray, confidence: float = CONFIDENCE):
  """The central `confidence` share of bootstrap values (resamples where the metric is
  undefined, e.g. a class not drawn, are left out)."""
  values = np.asarray(values, float)
  values = values[np.isfinite(values)]
  if not len(values):
    return (None, None)
  tail = 100 * (1 - confidence) / 2
  low, high = np.percentile(values, [tail, 100 - tail])
  return (float(low), float(high))


def weighted_confusion(labels, preds, weights: np.ndarray, k: int) -> np.ndarray:
  """(R, k, k) confusion matrices (rows: true class) with image weights (R, n)."""
  cell = np.asarray(labels) * k + np.asarray(preds)
  onehot = np.zeros((len(cell), k * k))
  onehot[np.arange(len(cell)), cell] = 1
  return (weights @ onehot).reshape(len(weights), k, k)


def balanced_accuracy_of(confusion: np.ndarray) -> np.ndarray:
  """Mean recall over the classes present (scikit-learn's balanced_accuracy_score)."""
  support = confusion.sum(-1)
  recall = np.divide(np.diagonal(confusion, axis1=-2, axis2=-1), support,
                     out=np.zeros(support.shape), where=support > 0)
  present = (support > 0).sum(-1)
  return np.where(present > 0, recall.sum(-1) / np.maximum(present, 1), np.nan)


def macro_f1_of(confusion: np.ndarray) -> np.ndarray:
  """Mean F1 over all classes, 0 where undefined (scikit-learn's f1_score, average='macro',
  labels=range(k), zero_division=0)."""
  tp = np.diagonal(confusion, axis1=-2, axis2=-1)
  denominator = confusion.sum(-1) + confusion.sum(-2)
  return np.divide(2 * tp, denominator, out=np.zeros(tp.shape), where=denominator > 0).mean(-1)


def weighted_auc(positive: np.ndarray, scores: np.ndarray, weights: np.ndarray) -> np.ndarray:
  """(R,) ROC AUC of `scores` for the boolean `positive` under image weights (R, n): the
  weighted share of (positive, negative) pairs ranked right, ties counted half (the
  Mann-Whitney form of scikit-learn's roc_auc_score with sample_weight); NaN without both."""
  _, group = np.unique(scores, return_inverse=True)
  groups = group.max() + 1
  onehot = np.zeros((len(scores), groups))
  onehot[np.arange(len(scores)), group] = 1
  pos = (weights * positive) @ onehot  # (R, groups), in ascending score
  neg = (weights * ~positive) @ onehot
  below = np.cumsum(neg, -1) - neg
  pairs = pos.sum(-1) * neg.sum(-1)
  right = (pos * (below + neg / 2)).sum(-1)
  return np.divide(right, pairs, out=np.full(len(weights), np.nan), where=pairs > 0)


def auc_of(labels, probs: np.ndarray, weights: np.ndarray) -> np.ndarray:
  """ROC AUC: of class 1's probability with two classes, else the mean one-vs-rest AUC over
  the classes (scikit-learn's multi_class='ovr', average='macro')."""
  labels = np.asarray(labels)
  k = probs.shape[1]
  if k == 2:
    return weighted_auc(labels == 1, probs[:, 1], weights)
  return np.mean([weighted_auc(labels == c, probs[:, c], weights) for c in range(k)], axis=0)


def intervals(labels, probs: np.ndarray, class_names, resamples: int = RESAMPLES,
              seed: int = SEED) -> dict:
  """95% intervals of a test report's metrics: Wilson for accuracy and per-class accuracy,
  the bootstrap (`resamples`, `seed`) for balanced accuracy, macro F1 and ROC AUC."""
  labels, k = np.asarray(labels), len(class_names)
  preds = probs.argmax(-1)
  weights = resample_weights(len(labels), resamples, seed)
  confusion = weighted_confusion(labels, preds, weights, k)
  per_class = {c: wilson(((preds == i) & (labels == i)).sum(), (labels == i).sum())
               for i, c in enumerate(class_names)}
  return {'accuracy': wilson((preds == labels).sum(), len(labels)),
          'per_class_accuracy': per_class,
          'balanced_accuracy': percentile_interval(balanced_accuracy_of(confusion)),
          'macro_f1': percentile_interval(macro_f1_of(confusion)),
          'roc_auc': percentile_interval(auc_of(labels, probs, weights))}


def roc_auc(labels, probs: np.ndarray) -> float | None:
  """The point value `intervals` bootstraps (None where a class is missing)."""
  value = float(auc_of(labels, probs, np.ones((1, len(labels))))[0])
  return None if np.isnan(value) else value


# --- paired comparisons -------------------------------------------------------------------

def paired_difference(correct_a: np.ndarray, correct_b: np.ndarray, resamples: int = RESAMPLES,
                      seed: int = SEED, confidence: float = CONFIDENCE) -> dict:
  """Accuracy of a minus accuracy of b on the same n test images, from (seeds, n) boolean
  arrays of which images each training seed of each run classified right. The difference
  is of the seed-mean accuracies; its interval is a percentile bootstrap in which each
  resample draws n images with replacement (the same for both runs) and, per run, its seeds
  with replacement (with one seed each: the ordinary paired bootstrap)."""
  a, b = np.atleast_2d(correct_a).astype(float), np.atleast_2d(correct_b).astype(float)
  if a.shape[1] != b.shape[1]:
    raise ValueError(f'runs scored on {a.shape[1]} and {b.shape[1]} images cannot be paired')
  n, rng = a.shape[1], np.random.default_rng(seed)
  images = rng.multinomial(n, np.full(n, 1 / n), size=resamples) / n  # (R, n)
  seed_mean = lambda c: (rng.multinomial(len(c), np.full(len(c), 1 / len(c)), size=resamples)
                         / len(c)) @ c  # (R, n): each resample's seed-mean correctness
  values = (images * (seed_mean(a) - seed_mean(b))).sum(-1)
  low, high = percentile_interval(values, confidence)
  return {'difference': float(a.mean() - b.mean()), 'interval': (low, high),
          'resamples': resamples, 'seed': seed}


def majority(correct: np.ndarray) -> np.ndarray:
  """Per image: right in more than half of the seeds."""
  correct = np.atleast_2d(correct)
  return correct.sum(0) * 2 > len(correct)


def mcnemar(correct_a: np.ndarray, correct_b: np.ndarray) -> dict:
  """McNemar's exact test (two-sided binomial test on the discordant images) between two
  runs' per-image correctness; with several seeds each run's majority vote over seeds."""
  a, b = majority(correct_a), majority(correct_b)
  only_a, only_b = int((a & ~b).sum()), int((~a & b).sum())
  p = 1.0 if only_a + only_b == 0 else float(
      scipy_stats.binomtest(only_a, only_a + only_b, 0.5).pvalue)
  return {'only_a_right': only_a, 'only_b_right': only_b, 'p': p}


def disagreement(correct_a: np.ndarray, correct_b: np.ndarray) -> float:
  """Share of images on which a seed of a and a seed of b, drawn at random, differ in being
  right (with one seed each: the share of discordant images)."""
  a = np.atleast_2d(correct_a).astype(float).mean(0)
  b = np.atleast_2d(correct_b).astype(float).mean(0)
  return float(np.mean(a * (1 - b) + b * (1 - a)))


def detectable_difference(n: int, discordant: float, power: float = POWER,
                          alpha: float = ALPHA) -> float | None:
  """The smallest accuracy difference d a paired (McNemar) test on `n` images detects with
  `power` at two-sided `alpha`, when a share `discordant` of the images is classified right by
  one model only: Connor's (1987) sample size n = (z_a sqrt(p) + z_b sqrt(p - d^2))^2 / d^2,
  solved for d. None if no difference up to `discordant` (the largest possible) is
  detectable."""
  if n <= 0 or not 0 < discordant <= 1:
    return None
  z_a, z_b = scipy_stats.norm.ppf(1 - alpha / 2), scipy_stats.norm.ppf(power)
  needed = lambda d: (z_a * np.sqrt(discordant) + z_b * np.sqrt(max(discordant - d * d, 0))) ** 2 / (d * d)
  if needed(discordant) > n:
    return None
  return float(optimize.brentq(lambda d: needed(d) - n, 1e-9, discordant, xtol=1e-10))


def verdict(interval) -> str:
  """'better' / 'worse' when the difference's interval lies above / below 0, else 'no
  detectable difference'."""
  low, high = interval
  if low is not None and low > 0:
    return 'better'
  if high is not None and high < 0:
    return 'worse'
  return 'no detectable difference'


def compare(correct_a: np.ndarray, correct_b: np.ndarray, seed: int = SEED) -> dict:
  """Run a against baseline b on the same images: difference, interval, McNemar, verdict, the
  observed disagreement and the difference detectable at it."""
  difference = paired_difference(correct_a, correct_b, seed=seed)
  rate = disagreement(correct_a, correct_b)
  return {**difference, 'mcnemar': mcnemar(correct_a, correct_b),
          'verdict': verdict(difference['interval']), 'disagreement': rate,
          'detectable': detectable_difference(np.atleast_2d(correct_a).shape[1], rate)}


# --- calibration --------------------------------------------------------------------------

def class_logits(logits: np.ndarray) -> np.ndarray:
  """(N, classes) logits whose softmax is the class probabilities: a one-logit (sigmoid)
  head's z becomes (0, z), since softmax(0, z) = (1 - sigmoid(z), sigmoid(z))."""
  logits = np.asarray(logits, np.float64)
  return np.concatenate([np.zeros_like(logits), logits], -1) if logits.shape[1] == 1 else logits


def scaled_probabilities(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
  """Class probabilities of `logits` (a head's outputs) divided by `temperature`."""
  return special.softmax(class_logits(logits) / temperature, axis=-1)


def fit_temperature(logits: np.ndarray, labels) -> float:
  """The temperature T > 0 that minimises the mean negative log-likelihood of
  softmax(logits / T) (searched over log T in [-3, 3]: T from 0.05 to 20)."""
  z, labels = class_logits(logits), np.asarray(labels)
  nll = lambda log_t: -special.log_softmax(z / np.exp(log_t), axis=-1)[
      np.arange(len(labels)), labels].mean()
  return float(np.exp(optimize.minimize_scalar(nll, bounds=(-3, 3), method='bounded',
                                               options={'xatol': 1e-6}).x))


def reliability(labels, probs: np.ndarray, bins: int = BINS) -> dict:
  """Top-label confidence in `bins` equal-width bins ((0, 1/bins], ...): per bin the image
  count, mean confidence and accuracy; the expected calibration error is the count-weighted
  mean of |accuracy - confidence|."""
  labels = np.asarray(labels)
  confidence, right = probs.max(-1), probs.argmax(-1) == labels
  index = np.clip(np.ceil(confidence * bins).astype(int) - 1, 0, bins - 1)
  count = np.bincount(index, minlength=bins)
  mean = lambda x: np.divide(np.bincount(index, x, bins), count, out=np.full(bins, np.nan),
                             where=count > 0)
  conf, acc = mean(confidence), mean(right.astype(float))
  ece = float(np.nansum(count * np.abs(acc - conf)) / len(labels))
  return {'bins': bins, 'count': count.tolist(), 'confidence': conf.tolist(),
          'accuracy': acc.tolist(), 'ece': ece}


def nll(labels, probs: np.ndarray) -> float:
  """Mean negative log-likelihood (natural log), probabilities clipped at 1e-7 (and the rows
  renormalised, so scikit-learn's log_loss sees probabilities)."""
  clipped = np.clip(probs, 1e-7, 1)
  return float(log_loss(labels, clipped / clipped.sum(-1, keepdims=True),
                        labels=range(probs.shape[1])))


def calibration(labels, probs: np.ndarray, bins: int = BINS) -> dict:
  """ECE (`bins` equal-width bins), negative log-likelihood (natural log, probabilities
  clipped at 1e-7) and Brier score (half the summed squared error over the classes, mean
  over images: for two classes the usual (p - y)^2 of class 1)."""
  labels, k = np.asarray(labels), probs.shape[1]
  return {'ece': reliability(labels, probs, bins)['ece'],
          'nll': nll(labels, probs),
          'brier': float(brier_score_loss(labels, probs, labels=range(k), scale_by_half=True))}
