"""Speed ratios from alternating rounds: each round measures every side once, warm, one
after the other, so a slow minute of the machine falls on all sides of that round. The
ratio is the median of the per-round ratios with a percentile bootstrap interval over the
rounds, and a verdict only where the interval excludes 1."""
import statistics

import numpy as np

CONFIDENCE = 0.90
RESAMPLES = 1000
SEED = 0


def ratio(ours, reference, confidence: float = CONFIDENCE, resamples: int = RESAMPLES,
          seed: int = SEED) -> dict:
  """Rounds' speeds (higher is faster) of two sides -> median of ours/reference per round,
  its bootstrap interval (rounds drawn with replacement) and a verdict."""
  per_round = np.asarray(ours, float) / np.asarray(reference, float)
  draws = np.random.default_rng(seed).integers(0, len(per_round), (resamples, len(per_round)))
  medians = np.median(per_round[draws], axis=1)
  tail = (1 - confidence) / 2 * 100
  low, high = (float(v) for v in np.percentile(medians, [tail, 100 - tail]))
  return {'ratio': float(np.median(per_round)), 'interval': (low, high),
          'rounds': len(per_round), 'confidence': confidence,
          'verdict': 'faster' if low > 1 else 'slower' if high < 1 else 'within noise'}


def cell(result: dict) -> str:
  """'1.23× [1.10, 1.31] faster' for a table."""
  low, high = result['interval']
  return f'{result["ratio"]:.2f}× [{low:.2f}, {high:.2f}] {result["verdict"]}'


def spread(values: list[float], digits: int = 1) -> str:
  """'median [min–max]' of a side's rounds."""
  return (f'{statistics.median(values):.{digits}f} [{min(values):.{digits}f}–'
          f'{max(values):.{digits}f}]')
