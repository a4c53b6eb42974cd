"""Runs side by side: the write-ups' table (swept values, best train/val metrics, test
accuracy with its 95% interval and balanced accuracy with the epoch scored, per-class
accuracy, learning time, images/s) as CSV and Markdown, and a PNG; runs that differ only in
their training seed grouped (mean ± std over seeds, every seed's value); and every group
compared with a baseline on the same test images (research.evaluate.stats.compare: the
accuracy difference with a paired bootstrap interval, McNemar's exact p, a verdict, the
difference the test split could detect), also in <stem>_results.json."""
import csv
import json
import re
import statistics
from pathlib import Path

import numpy as np

from research import config as config_lib
from research import rundir
from research.evaluate import plots, stats
from research.evaluate.report import interval, load_predictions
from research.train.history import read

TIMING = ('learning time (s)', 'train img/s')
NOT_THE_EXPERIMENT = ('workdir', 'seed')  # runs differing only in these are one group


def differing(configs: list) -> list[str]:
  """Config keys whose values differ between runs (what was swept or changed)."""
  keys = sorted({k for c in configs[1:] for k in config_lib.differing_keys(configs[0], c)})
  return [k for k in keys if k != 'workdir']


def summary(run_dir: Path, config, history: list[dict], keys: list[str]) -> dict:
  """One row: the run's values of `keys`, then its metrics."""
  report_path = run_dir / 'report.json'
  if not history or not report_path.exists():
    raise rundir.RunDirError(f'{run_dir} has not finished (no metrics or report.json): finish '
                             f'it with --resume {run_dir}, or leave it out')
  report = json.loads(report_path.read_text())
  flat = config_lib.flat_values(config)
  best = lambda f, key: f(r[key] for r in history) if key in history[0] else None
  speeds = [r['train_images_per_s'] for r in history]
  accuracy_ci = report.get('intervals', {}).get('accuracy') or stats.wilson(
      round(report['accuracy'] * report['num_images']), report['num_images'])
  return {'run': run_dir.name, **{k: flat.get(k) for k in keys},
          'max train acc': best(max, 'train_accuracy'), 'min train loss': best(min, 'train_loss'),
          'max val acc': best(max, 'val_accuracy'), 'min val loss': best(min, 'val_loss'),
          'max val bal acc': best(max, 'val_balanced_accuracy'),
          'test epoch': f'{report["epoch"]} ({report.get("checkpoint", "last")})',
          'test acc': report['accuracy'], 'test acc 95%': interval(accuracy_ci),
          'test bal acc': report.get('balanced_accuracy'),
          **{f'test acc {c}': a for c, a in report['per_class_accuracy'].items()},
          'learning time (s)': sum(r['seconds'] for r in history),
          # the first epoch includes compilation
          'train img/s': statistics.median(speeds[1:] or speeds)}


def cell(column: str, value, keys) -> str:
  """Config values as written (5e-05), metrics to 4 places, times to 0.1."""
  if value is None:
    return '-'
  if column in keys or not isinstance(value, float):
    return f'{value:g}' if isinstance(value, float) else str(value)
  return f'{value:.1f}' if column in TIMING else f'{value:.4f}'


def groups_of(run_dirs: list[Path], configs: list) -> dict[str, list[int]]:
  """{name: indices of `run_dirs`}: runs whose configs differ only in the training seed (and
  directory) are one group, named after its first run (without a '-seed<N>' ending where the
  group has several)."""
  found = {}
  for i, config in enumerate(configs):
    flat = config_lib.flat_values(config)
    key = json.dumps({k: v for k, v in flat.items() if k not in NOT_THE_EXPERIMENT},
                     sort_keys=True, default=str)
    found.setdefault(key, []).append(i)
  name = lambda ix: Path(run_dirs[ix[0]]).name
  return {re.sub(r'-seed\d+$', '', name(ix)) if len(ix) > 1 else name(ix): ix
          for ix in found.values()}


def correctness(run_dirs: list[Path]) -> tuple[tuple | None, str]:
  """((paths, labels, (seeds, n) booleans: which test images each run classified right), in
  path order) or (None, why these runs cannot be paired)."""
  predictions = [load_predictions(r) for r in run_dirs]
  missing = next((r for r, p in zip(run_dirs, predictions) if p is None), None)
  if missing is not None:
    return None, (f'{Path(missing).name} has no per-image test predictions: ./run.sh eval '
                  f'{missing} writes them')
  rows = []
  for p in predictions:
    order = np.argsort(p['paths'], kind='stable')
    rows.append((p['paths'][order], p['labels'][order],
                 p['probs'][order].argmax(-1) == p['labels'][order]))
  if any(not same_images(r, rows[0]) for r in rows):
    return None, 'scored on different test images'
  return (rows[0][0], rows[0][1], np.stack([r[2] for r in rows])), ''


def same_images(a: tuple, b: tuple) -> bool:
  """Whether two (paths, labels, ...) are the same labelled test images."""
  return len(a[0]) == len(b[0]) and (a[0] == b[0]).all() and (a[1] == b[1]).all()


def paired(groups: dict[str, list[int]], run_dirs: list[Path], baseline: str) -> list[dict]:
  """Every other group against `baseline` on the same test images (stats.compare), or the
  reason there is no paired test."""
  base, why = correctness([run_dirs[i] for i in groups[baseline]])
  results = []
  for name, indices in groups.items():
    if name == baseline:
      continue
    mine, reason = correctness([run_dirs[i] for i in indices])
    result = {'run': name, 'baseline': baseline, 'seeds': len(indices),
              'baseline seeds': len(groups[baseline])}
    if base is None or mine is None:
      results.append({**result, 'paired': False, 'reason': why or reason})
    elif not same_images(mine, base):
      results.append({**result, 'paired': False, 'reason': 'scored on different test images'})
    else:
      results.append({**result, 'paired': True, 'images': len(base[0]),
                      **stats.compare(mine[2], base[2])})
  return results


def comparison_line(c: dict) -> str:
  """One line: a group against the baseline."""
  if not c['paired']:
    return f'{c["run"]} vs {c["baseline"]}: {c["reason"]}: no paired test'
  low, high = c['interval']
  detectable = ('no difference is detectable' if c['detectable'] is None
                else f'detectable at this size: {c["detectable"]:.3f}')
  return (f'{c["run"]} vs {c["baseline"]}: accuracy {c["difference"]:+.4f} '
          f'[{low:+.4f}, {high:+.4f}], McNemar p = {c["mcnemar"]["p"]:.3g}: **{c["verdict"]}**'
          f' on {c["images"]} test images ({detectable})')


def mean_std(values: list) -> str:
  values = [v for v in values if v is not None]
  if not values:
    return '-'
  return f'{np.mean(values):.4f} ± {np.std(values, ddof=1) if len(values) > 1 else 0:.4f}'


def group_table(groups: dict, rows: list[dict]) -> list[str]:
  """Per group: mean ± std over its seeds (sample std) and every seed's value."""
  metrics = ('test acc', 'test bal acc', 'max val acc')
  lines = ['| run | seeds | ' + ' | '.join(f'{m} (mean ± std)' for m in metrics)
           + ' | test acc per seed |', '|' + '---|' * (len(metrics) + 3)]
  for name, indices in groups.items():
    members = [rows[i] for i in indices]
    lines.append(f'| {name} | {len(members)} | '
                 + ' | '.join(mean_std([m[k] for m in members]) for k in metrics)
                 + ' | ' + ', '.join(f'{m["test acc"]:.4f}' for m in members) + ' |')
  return lines


def summary_lines(result: dict) -> list[str]:
  """What the console shows of a comparison: each group's test accuracy (mean ± std over
  seeds, or with its interval), then each paired comparison."""
  lines = []
  for name, indices in result['groups'].items():
    members = [result['rows'][i] for i in indices]
    if len(members) > 1:
      each = ', '.join(f'{m["test acc"]:.4f}' for m in members)
      lines.append(f'{name}: test accuracy {mean_std([m["test acc"] for m in members])} over '
                   f'{len(members)} seeds ({each})')
    else:
      lines.append(f'{name}: test accuracy {members[0]["test acc"]:.4f} '
                   f'[{members[0]["test acc 95%"]}]')
  return lines + [comparison_line(c).replace('**', '') for c in result['comparisons']]


HOW = ('Paired comparison: each run against the baseline on the same test images. The '
       'difference is of the mean test accuracy over seeds; its 95% interval is a percentile '
       f'bootstrap ({stats.RESAMPLES} resamples, seed {stats.SEED}) that draws the test images '
       'with replacement, the same for both runs, and with several seeds also each run\'s '
       'seeds. The verdict is "better"/"worse" when the interval excludes 0, else "no '
       'detectable difference". McNemar\'s exact test counts the images only one run gets '
       'right (with seeds: right in most of a run\'s seeds). "Detectable" is the smallest '
       'difference a paired test on these images detects with 80% power at alpha 0.05, at the '
       'observed disagreement rate (Connor 1987).')


def write(out_dir: Path, stem: str, run_dirs: list[Path], baseline: Path | None = None) -> dict:
  """Writes out_dir/<stem>.csv, .md, _results.json and .png for `run_dirs`, each group compared with
  the group of `baseline` (default: the first run's); returns {'rows', 'groups',
  'comparisons'}."""
  run_dirs = [Path(r) for r in run_dirs]
  configs = [rundir.load_config(r) for r in run_dirs]
  histories = [read(r / rundir.METRICS) for r in run_dirs]
  keys = differing(configs)
  rows = [summary(r, c, h, keys) for r, c, h in zip(run_dirs, configs, histories)]
  groups = groups_of(run_dirs, configs)
  base_index = 0
  if baseline is not None:
    found = [i for i, r in enumerate(run_dirs) if r.resolve() == Path(baseline).resolve()]
    if not found:
      raise config_lib.ConfigError(f'--baseline {baseline} is not one of the runs compared: '
                                   f'pass one of them')
    base_index = found[0]
  base_name = next(n for n, ix in groups.items() if base_index in ix)
  comparisons = paired(groups, run_dirs, base_name)
  columns = list(dict.fromkeys(k for row in rows for k in row))
  out_dir.mkdir(parents=True, exist_ok=True)
  with open(out_dir / f'{stem}.csv', 'w', newline='') as f:
    writer = csv.DictWriter(f, columns)
    writer.writeheader()
    writer.writerows({k: '' if row.get(k) is None else row.get(k) for k in columns}
                     for row in rows)
  lines = ['| ' + ' | '.join(columns) + ' |', '|' + '---|' * len(columns)]
  lines += ['| ' + ' | '.join(cell(k, row.get(k), keys) for k in columns) + ' |'
            for row in rows]
  seeded = any(len(ix) > 1 for ix in groups.values())
  md = [f'# {stem}: {len(rows)} runs', '']
  if seeded:
    md += ['## By seed group', '', *group_table(groups, rows), '']
  md += [f'## Against the baseline ({base_name})', '', HOW, '',
         *[f'- {comparison_line(c)}' for c in comparisons], '',
         '## Every run', '', *lines, '',
         'Accuracies are fractions; test acc 95% is its Wilson interval; max/min are over epochs; '
         'learning time sums the epochs (training and validation); train img/s is the median '
         'epoch after the first.', '', f'![{stem}]({stem}.png)']
  (out_dir / f'{stem}.md').write_text('\n'.join(md) + '\n')
  result = {'rows': rows, 'groups': groups, 'baseline': base_name, 'comparisons': comparisons}
  rundir.write_whole(out_dir / f'{stem}_results.json',
                     json.dumps(result, indent=1, default=str))
  plots.comparison([row['run'] for row in rows], [row['test acc'] for row in rows], histories,
                   out_dir / f'{stem}.png')
  return result
