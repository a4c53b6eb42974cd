"""Would more images help? Each backbone trained on nested, stratified subsets of the train
split (several seeds a size) and scored on the whole validation split; a power law, error ≈
a·n^(-b) + c (n: train images per class), fitted per backbone says what 2× and 4× the data
would give, and per-class accuracy says which classes gain most. A backtest fits every size but
the largest and predicts the largest: how far such an extrapolation was off on this data.

Mode 'probe' (the default): frozen features once per backbone (as `./run.sh probe`), a
logistic-regression probe per subset, seconds a point. Mode 'finetune': the config as it
is, trained on each subset, one ordinary run directory per point under out/points/
(resumable: a point that finished is kept, an interrupted one resumes from its checkpoint),
scored by its best checkpoint on the validation split; the test split is never used.
"""
import csv
import json
import time
from pathlib import Path

import numpy as np
from scipy.optimize import curve_fit
from sklearn.metrics import balanced_accuracy_score

from research import rundir
from research.config import ConfigError
from research.evaluate import plots
from research.evaluate.stats import wilson
from research.experiment.prepare import write_leaks
from research.experiment.probe import frozen_features, make_probe, model_configs, prepare_with_val

FRACTIONS = (0.1, 0.2, 0.35, 0.6, 1.0)
FLAT = 0.005  # a fitted gain from 2× the data below this: the curve has flattened
BOOTSTRAPS = 200


def fractions(sizes, labels: np.ndarray) -> list[float]:
  """Ascending fractions of the train split (`labels`), 3 or more: sizes <= 1 are fractions,
  whole sizes > 1 images per class (over the split's mean per class); None: FRACTIONS."""
  per_class = len(labels) / len(np.unique(labels))
  found = set()
  for size in FRACTIONS if sizes is None else sizes:
    if not (0 < size <= 1 or size == int(size) and 1 < size <= per_class):
      raise ConfigError(f'curve size {size} is neither a fraction in (0, 1] of the train split '
                        f'nor a whole number of images per class up to its {int(per_class)}: '
                        f'give e.g. --sizes 0.1,0.3,1 or --sizes 5,20,{int(per_class)}')
    found.add(size if size <= 1 else size / per_class)
  if len(found) < 3:
    raise ConfigError(f'curve sizes {list(sizes)} give {len(found)} distinct subsets, too few to '
                      f'fit a·n^(-b) + c: give 3 or more, e.g. --sizes 0.1,0.3,1')
  return sorted(found)


def nested_subsets(labels: np.ndarray, fractions_: list[float], seed: int) -> list[np.ndarray]:
  """Indices into `labels`, one array per ascending fraction: per class, the first
  round(fraction × its images), at least 1, of one random order drawn from `seed`; so each
  class keeps its share and every subset lies inside the larger ones."""
  rng = np.random.default_rng(seed)
  orders = [rng.permutation(np.flatnonzero(labels == c)) for c in np.unique(labels)]
  return [np.sort(np.concatenate([o[:max(1, int(f * len(o) + 0.5))] for o in orders]))
          for f in fractions_]


def point(seed: int, train_labels, truth, predicted, class_names, seconds: float) -> dict:
  """One row: the subset's size and the validation scores of its `predicted` labels."""
  hit = predicted == truth
  return {'seed': seed, 'images per class': len(train_labels) / len(class_names),
          'train images': len(train_labels), 'val images': len(truth),
          'val accuracy': float(hit.mean()),
          'val balanced accuracy': float(balanced_accuracy_score(truth, predicted)),
          **{f'val accuracy {name}': float(hit[truth == c].mean()) if (truth == c).any()
             else float('nan') for c, name in enumerate(class_names)},
          'seconds': seconds}


def probe_points(features: dict, labels: dict, fractions_, seeds, class_names) -> list[dict]:
  """A row (`point`) per seed and fraction: the probe fitted on that nested subset of
  features['train'], scored on all of features['val']."""
  rows = []
  for seed in seeds:
    for index in nested_subsets(labels['train'], fractions_, seed):
      began = time.time()
      probe = make_probe().fit(features['train'][index], labels['train'][index])
      rows.append(point(seed, labels['train'][index], labels['val'],
                        probe.predict(features['val']), class_names, time.time() - began))
  return rows


def finetune_points(config, split: dict, fractions_, seeds, class_names, out: Path,
                    log) -> list[dict]:
  """The rows `probe_points` gives, each from `config` trained on a `nested_subsets` subset
  of split['train'] (its own run directory, data given as a CSV with a split column) and
  scored by its best checkpoint on all of split['val']."""
  from research.experiment.run import restore, run  # pylint: disable=import-outside-toplevel
  labels = np.asarray([label for _, label in split['train']])
  rows = []
  for seed in seeds:
    for fraction, index in zip(fractions_, nested_subsets(labels, fractions_, seed)):
      run_dir = out / 'points' / f'{config.model.name}-seed{seed}-{fraction:.3g}'
      done = run_dir / 'point.json'
      if not done.exists():
        began = time.time()
        data = run_dir.parent / f'{run_dir.name}.csv'
        data.parent.mkdir(parents=True, exist_ok=True)
        with open(data, 'w', newline='') as f:
          csv.writer(f).writerows(
              [(path, class_names[label], 'train') for path, label in
               (split['train'][i] for i in index)]
              + [(path, class_names[label], s) for s in ('val', 'test') for path, label in
                 split[s]])
        c = config.copy_and_resolve_references()
        c.seed, c.data.path, c.workdir = seed, str(data.absolute()), str(run_dir)
        c.gradcam.num_images, c.features.num_images = 0, 0
        log(f'point:   {config.model.name}, seed {seed}, {len(index)} train images')
        run(c, run_dir, resume=(run_dir / 'config.json').exists(), log=log, report=False)
        trained = restore(run_dir)
        _, probs, truth = trained.inference.predict(split['val'], 'validating')
        own = [class_names.index(name) for name in trained.class_names]  # the CSV's order
        predicted = np.asarray(own)[probs.argmax(-1)]
        rundir.write_whole(done, json.dumps(point(seed, labels[index], truth, predicted,
                                                  class_names, time.time() - began)))
      # 'val images': the whole validation split, also for points written before it was kept
      rows.append({**json.loads(done.read_text()), 'val images': len(split['val'])})
  return rows


def power_law(n, a, b, c):
  return a * np.power(n, -b) + c


def fit(n, accuracy) -> np.ndarray:
  """(a, b, c) of error ≈ a·n^(-b) + c, least squares over the (n, accuracy) points."""
  n, error = np.asarray(n, float), 1 - np.asarray(accuracy, float)
  c0 = error.min() / 2
  a0 = max(error.max() - c0, 1e-3) * n.min() ** 0.5
  return curve_fit(power_law, n, error, p0=(a0, 0.5, c0), bounds=((1e-9, 1e-3, 0), (np.inf, 3, 1)),
                   maxfev=10000)[0]


def bootstrap(n, accuracy, seed: int = 0) -> tuple[np.ndarray, list[np.ndarray]]:
  """The `fit` to the points (n, accuracy) and its refits to BOOTSTRAPS resamples of them (at
  each n, its seeds' points drawn with replacement; a resample that does not converge is left
  out): the refits give every band."""
  n, accuracy = np.asarray(n, float), np.asarray(accuracy, float)
  params = fit(n, accuracy)
  rng, groups = np.random.default_rng(seed), [np.flatnonzero(n == v) for v in np.unique(n)]
  refits = []
  for _ in range(BOOTSTRAPS):
    pick = np.concatenate([rng.choice(g, len(g)) for g in groups])
    try:
      refits.append(fit(n[pick], accuracy[pick]))
    except RuntimeError:
      pass
  return params, refits or [params]


def band(value, params, refits) -> tuple[float, float, float]:
  """value(params) and the 5th and 95th percentiles of value over the refits (a 90% band)."""
  return (float(value(params)), *np.percentile([value(p) for p in refits], [5, 95]))


def accuracy_at(x):
  """The fitted accuracy at x images per class, as a function of the parameters."""
  return lambda p: 1 - power_law(x, *p)


def reliance(x):
  """Data reliance β at x (Hoiem et al. 2021), as a function of the parameters: the fitted
  error's slope against x^(-1/2) times x^(-1/2), -2x·de/dn = 2·a·b·x^(-b): the error left to
  lose were the curve a straight line in n^(-1/2) on to infinitely many images."""
  return lambda p: 2 * p[0] * p[1] * np.power(x, -p[1])


def forecast(n, accuracy, target=None, seed: int = 0) -> dict:
  """What the fit to per-seed points (n, accuracy) expects: accuracy at the largest n and at 2×
  and 4× it, each with a 90% band (`bootstrap`, `band`; no width with one seed), the error
  e_N and data reliance β_N at the largest n (Hoiem et al. 2021) with their bands, the
  ceiling 1 - c, the images per class `target` accuracy needs (inf: never)."""
  n = np.asarray(n, float)
  fits = bootstrap(n, accuracy, seed)
  a, b, c = params = fits[0]
  expect = lambda x: band(accuracy_at(x), *fits)
  reached = target is not None and 1 - target > c
  return {'params': params, 'n': n.max(), 'fewest': n.min(), 'at n': expect(n.max()),
          'at 2n': expect(2 * n.max()), 'at 4n': expect(4 * n.max()), 'ceiling': 1 - c,
          'e_N': band(lambda p: power_law(n.max(), *p), *fits),
          'beta_N': band(reliance(n.max()), *fits),
          'target n': (a / (1 - target - c)) ** (1 / b) if reached else np.inf}


def pooled(accuracies, val_images: int) -> tuple[float, float]:
  """95% Wilson interval of the mean of per-seed accuracies, each on the same `val_images`
  validation images, pooled: round(mean × val_images × seeds) right of val_images × seeds."""
  seeds = len(accuracies)
  return wilson(round(np.mean(accuracies) * val_images * seeds), val_images * seeds)


def backtest(n, accuracy, val_images: int, seed: int = 0) -> dict | None:
  """The fit to every size but the largest, and what it predicted at the largest (with the 90%
  band of `forecast`) against what was measured there (the seeds' mean, with its `pooled`
  interval): error = predicted - measured. None with fewer than 3 smaller sizes (3
  parameters)."""
  n, accuracy = np.asarray(n, float), np.asarray(accuracy, float)
  largest, smaller = n.max(), n < n.max()
  if len(np.unique(n[smaller])) < 3:
    return None
  predicted = band(accuracy_at(largest), *bootstrap(n[smaller], accuracy[smaller], seed))
  at = accuracy[n == largest]
  measured = (float(at.mean()), *pooled(at, val_images))
  return {'fitted on': (n[smaller].min(), n[smaller].max()), 'n': largest,
          'predicted': predicted, 'measured': measured, 'error': predicted[0] - measured[0]}


def backtest_line(model: str, b: dict | None, sizes: int) -> str:
  """One line: the backtest's prediction, the measurement and the error, or why there is none."""
  if b is None:
    return (f'{model}: no backtest: it fits a·n^(-b) + c to every size but the largest, which '
            f'takes 3 of them; give 4 or more sizes ({sizes} measured)')
  (p, p_low, p_high), (m, m_low, m_high) = b['predicted'], b['measured']
  return (f'{model}: backtest: fitted on {b["fitted on"][0]:.0f}-{b["fitted on"][1]:.0f} images '
          f'per class, the fit predicted {p:.3f} ({p_low:.3f}-{p_high:.3f}) at {b["n"]:.0f}, '
          f'measured {m:.3f} ({m_low:.3f}-{m_high:.3f}): off by {b["error"]:+.3f}')


def verdict(model: str, f: dict, target=None) -> str:
  """One line: what 2× and 4× the data would give, or that the curve has flattened, and the
  images per class `target` needs."""
  now, twice, four = f['at n'][0], f['at 2n'], f['at 4n']
  band = lambda e: f'{e[0]:.3f} ({e[1]:.3f}-{e[2]:.3f})'
  if twice[0] - now < FLAT:
    line = (f'{model}: the curve has flattened: 2× the data ({2 * f["n"]:.0f} images per class) '
            f'adds {100 * (twice[0] - now):.1f} pp, to {band(twice)}; more images of the same '
            f'kind will not help much; try fine-tuning or a higher resolution')
  else:
    line = (f'{model}: with 2× the data ({2 * f["n"]:.0f} images per class) expect val '
            f'accuracy {band(twice)}, with 4× ({4 * f["n"]:.0f}) {band(four)}')
  if target is None:
    return line
  if f['target n'] < f['fewest']:
    return line + f'; {target:g} accuracy is reached already at {f["fewest"]:.0f} images per class'
  if np.isfinite(f['target n']):
    return line + f'; {target:g} accuracy needs ~{f["target n"]:.0f} images per class'
  return line + f'; {target:g} is not reached by this curve: it levels off at ~{f["ceiling"]:.3f}'


def class_gains(model: str, rows: list[dict], class_names) -> str | None:
  """One line: the classes ranked by their mean validation accuracy's gain from the
  second-largest size to the largest; None with one size."""
  sizes = sorted({r['images per class'] for r in rows})
  if len(sizes) < 2:
    return None
  mean = lambda n, name: np.mean([r[f'val accuracy {name}'] for r in rows
                                  if r['images per class'] == n])
  gains = sorted(((mean(sizes[-1], c) - mean(sizes[-2], c), c) for c in class_names),
                 reverse=True)
  return (f'{model}: classes by gain from {sizes[-2]:.0f} to {sizes[-1]:.0f} images per class: '
          + ', '.join(f'{c} {100 * g:+.1f} pp' for g, c in gains))


def report(rows: list[dict], class_names, out: Path, data: str, target=None) -> dict:
  """{'rows', 'forecasts': {model: `forecast` with its 'backtest'}, 'verdicts', 'backtests',
  'gains': lines}, written to out/curve.csv, curve.md and curve.png."""
  by_model = {m: [r for r in rows if r['model'] == m]
              for m in dict.fromkeys(r['model'] for r in rows)}
  points = {m: ([r['images per class'] for r in at], [r['val accuracy'] for r in at])
            for m, at in by_model.items()}
  forecasts = {m: {**forecast(*points[m], target),
                   'backtest': backtest(*points[m], by_model[m][0]['val images'])}
               for m in by_model}
  verdicts = [verdict(m, forecasts[m], target) for m in by_model]
  backtests = [backtest_line(m, forecasts[m]['backtest'], len(set(points[m][0])))
               for m in by_model]
  gains = [g for m, at in by_model.items() if (g := class_gains(m, at, class_names))]
  out.mkdir(parents=True, exist_ok=True)
  with open(out / 'curve.csv', 'w', newline='') as f:
    writer = csv.DictWriter(f, list(dict.fromkeys(k for r in rows for k in r)))
    writer.writeheader()
    writer.writerows(rows)
  table, measured = [], {}
  for m, at in by_model.items():
    for n in sorted({r['images per class'] for r in at}):
      here = [r for r in at if r['images per class'] == n]
      stats = [np.array([r[k] for r in here]) for k in ('val accuracy', 'val balanced accuracy')]
      measured.setdefault(m, []).append((n, stats[0].mean(), stats[0].std()))
      low, high = pooled(stats[0], here[0]['val images'])
      table.append(f'| {m} | {n:.1f} | {here[0]["train images"]} | {stats[0].mean():.4f} ± '
                   f'{stats[0].std():.4f} | {low:.4f}-{high:.4f} | {stats[1].mean():.4f} ± '
                   f'{stats[1].std():.4f} | {len(here)} |')
  band_ = lambda e: f'{e[0]:.4f} ({e[1]:.4f}-{e[2]:.4f})'
  summary = [f'| {m} | {f["n"]:.1f} | {band_(f["e_N"])} | {band_(f["beta_N"])} |'
             for m, f in forecasts.items()]
  (out / 'curve.md').write_text('\n'.join([
      f'# Learning curve ({data})', '', '| model | images per class | train images | '
      'val accuracy | 95% interval | val balanced accuracy | seeds |',
      '|---|---|---|---|---|---|---|', *table, '',
      'val accuracy: mean ± std over the seeds. 95% interval: Wilson score interval of the '
      'validation images pooled over the seeds, round(mean val accuracy × val images × seeds) '
      'right of val images × seeds; the seeds score the same images, so their trials are not '
      'independent and the interval is, if anything, too narrow.', '',
      'Fit per model: val error ≈ a·n^(-b) + c (n: train images per class); bands are 90% '
      'of refits to bootstrap resamples of the seeds\' points.', '',
      *[f'- {v}' for v in verdicts], '', *[f'- {g}' for g in gains], '',
      'The fit at the largest size N, summarised as Hoiem et al. (ICML 2021) recommend rather '
      'than by a, b, c: e_N, the fitted val error at N, and β_N, the data reliance, '
      '-2N·de/dn = 2·a·b·N^(-b) at N: the error left to lose were the curve a straight line in '
      'n^(-1/2) on to infinitely many images (0 when more images of this kind change nothing). '
      'With their 90% bands:', '',
      '| model | N (images per class) | e_N | β_N |', '|---|---|---|---|', *summary, '',
      '![learning curve](curve.png)', '', '## Backtest', '',
      'How far an extrapolation was off on these images: a·n^(-b) + c fitted to every size '
      'but the largest (its band from the same bootstrap), its prediction at the largest size '
      'against the accuracy measured there (with its 95% interval); off by = predicted - '
      'measured. Positive: the fit promised more than the images gave, as the verdicts above '
      'may too. A fit that follows the points well can still misjudge how many images a '
      'target needs (Mahmood et al., CVPR 2022); they correct with a margin learned on past '
      'tasks, which one curve does not have, so no correction is applied: this error is the '
      'evidence to weigh the verdicts by.', '',
      *[f'- {b}' for b in backtests]]) + '\n')
  plots.learning_curves({m: (np.array(measured[m]).T, lambda x, p=forecasts[m]['params']:
                             1 - power_law(x, *p)) for m in by_model}, out / 'curve.png')
  return {'rows': rows, 'forecasts': forecasts, 'verdicts': verdicts, 'backtests': backtests,
          'gains': gains}


def curve(config, models: list[str], out: Path, sizes=None, seeds=3, target=None,
          mode='probe', log=print) -> dict:
  """`report` of every model's points at `sizes` (see `fractions`), `seeds` seeds each
  (config.seed, +1, ...). Every model's weights are checked before any work."""
  if mode not in ('probe', 'finetune'):
    raise ConfigError(f'curve mode {mode!r} is unknown: give --mode probe or --mode finetune')
  if target is not None and not 0 < target < 1:
    raise ConfigError(f'curve --target {target} is an accuracy: give a fraction, e.g. 0.9')
  if seeds < 1:
    raise ConfigError(f'curve --seeds {seeds} must be at least 1: give e.g. --seeds 3')
  configs = model_configs(config, models, log)
  prepared = prepare_with_val(config, 'curve scores every subset', log)
  split, class_names = prepared.split, prepared.source.class_names
  train_labels = np.asarray([label for _, label in split['train']])
  found, seed_list = fractions(sizes, train_labels), [config.seed + i for i in range(seeds)]
  rows = []
  for c in configs:
    if mode == 'probe':
      features, labels, _ = frozen_features(c, split, log)
      points = probe_points(features, labels, found, seed_list, class_names)
    else:
      points = finetune_points(c, split, found, seed_list, list(class_names), out, log)
    rows += [{'model': c.model.name, **p} for p in points]
  result = report(rows, class_names, out, f'{len(split["train"])} train / '
                  f'{len(split["val"])} val images, mode {mode}', target)
  write_leaks(out, prepared.leaks)
  return result
