"""Runs side by side: the write-ups' table (swept values, best train/val metrics, test
accuracy and balanced accuracy with the epoch scored, per-class accuracy, learning time,
images/s) as CSV and Markdown, and a PNG."""
import csv
import json
import statistics
from pathlib import Path

from research import config as config_lib
from research import rundir
from research.evaluate import plots
from research.train.history import read

TIMING = ('learning time (s)', 'train img/s')


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
  return {'run': run_dir.name, **{k: flat.get(k) for k in keys},
          'max train acc': best(max, 'train_accuracy'), 'min train loss': best(min, 'train_loss'),
          'max val acc': best(max, 'val_accuracy'), 'min val loss': best(min, 'val_loss'),
          'max val bal acc': best(max, 'val_balanced_accuracy'),
          'test epoch': f'{report["epoch"]} ({report.get("checkpoint", "last")})',
          'test acc': report['accuracy'], 'test bal acc': report.get('balanced_accuracy'),
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


def write(out_dir: Path, stem: str, run_dirs: list[Path]) -> list[dict]:
  """Writes out_dir/<stem>.csv, .md and .png for `run_dirs`; returns the rows."""
  configs = [rundir.load_config(r) for r in run_dirs]
  histories = [read(Path(r) / rundir.METRICS) for r in run_dirs]
  keys = differing(configs)
  rows = [summary(Path(r), c, h, keys) for r, c, h in zip(run_dirs, configs, histories)]
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
  (out_dir / f'{stem}.md').write_text(
      f'# {stem}: {len(rows)} runs\n\n' + '\n'.join(lines) + '\n\n'
      f'Accuracies are fractions; max/min are over epochs; learning time sums the epochs '
      f'(training and validation); train img/s is the median epoch after the first.\n\n'
      f'![{stem}]({stem}.png)\n')
  plots.comparison([row['run'] for row in rows], [row['test acc'] for row in rows], histories,
                   out_dir / f'{stem}.png')
  return rows
