"""A sweep: every point of a config file's `get_sweep()`, one ordinary run directory each,
one after another under one sweep directory, then the comparison table.

`get_sweep()` is plain Python next to `get_config`: a list of points, each a dict
of dotted config keys and values, with an optional 'name' and 'variant' (the
`get_config` argument), e.g.

    def get_sweep():
      return [{}] + [{'model.hidden': (w,) * 3} for w in (2048, 4096)]

Overrides given on the command line hold for every point (and win over it). With
`seeds` > 1 every point trains that many times, with training seeds seed, seed + 1, ...
(the config's `seed`: head initialisation, dropout, augmentation, batch order), on the same
split (`data.split_seed`), as run directories <point>-seed<N>; the table groups them (mean
± std, every seed's value) and compares each point with the first on the same test images.
Killed anywhere, `resume` keeps the finished points, resumes the interrupted one
from its last checkpoint and runs the rest.
"""
import json
import re
import time
from pathlib import Path

from research import config as config_lib
from research import rundir
from research.experiment import compare
from research.experiment.run import run
from research.train.state import pretrained_file

SWEEP = 'sweep.json'


def point_name(point: dict) -> str:
  """'base', or the variant and the values, e.g. 'hidden=2048x3' or 'learning_rate=5e-05'."""
  def text(value):
    if isinstance(value, tuple) and value and len(set(value)) == 1:
      return f'{text(value[0])}x{len(value)}'
    if isinstance(value, tuple):
      return '-'.join(map(text, value)) or 'none'
    return f'{value:g}' if isinstance(value, float) else str(value)
  parts = [point['variant']] if point.get('variant') else []
  parts += [f'{key.rsplit(".", 1)[-1]}={text(value)}' for key, value in point['values'].items()]
  return re.sub(r'[^A-Za-z0-9._=+-]', '_', '_'.join(parts)) or 'base'


def read_points(spec: str) -> list[dict]:
  """The config file's sweep as [{'name', 'variant', 'values'}]."""
  path, _, variant = spec.partition(':')
  module = config_lib.load_module(path)
  if not hasattr(module, 'get_sweep'):
    raise config_lib.ConfigError(f'{path} defines no sweep (get_sweep()): run it alone with '
                                 f'./run.sh {spec}')
  points = []
  for raw in module.get_sweep():
    values = {k: v for k, v in raw.items() if k not in ('name', 'variant')}
    point = {'variant': raw.get('variant', variant), 'values': values}
    points.append({'name': raw.get('name') or point_name(point), **point})
  names = [p['name'] for p in points]
  repeated = next((n for n in names if names.count(n) > 1), None)
  if repeated:
    raise config_lib.ConfigError(f'{path}: two sweep points are named {repeated!r}: give each '
                                 f'a distinct "name"')
  return points


def point_config(path: str, point: dict, overrides: list[str], run_dir: Path):
  """The point's config: get_config(variant), its values, then the command line's overrides."""
  spec = f'{path}:{point["variant"]}' if point['variant'] else path
  config = config_lib.load(spec, overrides, point['values'])
  config.workdir = str(run_dir)
  return config


def single_point(spec: str) -> list[dict]:
  """One config (and variant) as a sweep of one point: its seeds are the sweep."""
  variant = spec.partition(':')[2]
  return [{'name': variant or 'base', 'variant': variant, 'values': {}}]


def start(spec: str, overrides: list[str], seeds: int = 1, single: bool = False) -> Path:
  """A new sweep directory for the config file's sweep (or for the config alone, `single`),
  each point with `seeds` training seeds; runs it."""
  if seeds < 1:
    raise config_lib.ConfigError(f'--seeds {seeds} must be at least 1: give e.g. --seeds 3')
  path = spec.partition(':')[0]
  points = single_point(spec) if single else read_points(spec)
  kind = 'seeds' if single else 'sweep'
  sweep_dir = Path(f'checkpoints/{Path(path).stem}-{kind}-{time.strftime("%Y%m%d-%H%M%S")}')
  for point in points:  # every point's config and weight file are checked before any runs
    pretrained_file(point_config(path, point, overrides, sweep_dir / point['name']))
  sweep_dir.mkdir(parents=True)
  rundir.write_whole(sweep_dir / SWEEP, json.dumps(
      {'config': path, 'overrides': overrides, 'points': points, 'seeds': seeds}, indent=1))
  return run_points(sweep_dir)


def resume(sweep_dir: Path) -> Path:
  if not (sweep_dir / SWEEP).exists():
    raise rundir.RunDirError(f'{sweep_dir} is not a sweep directory (no {SWEEP}): pass a '
                             f'folder made by ./run.sh sweep CONFIG.py')
  return run_points(sweep_dir)


def run_points(sweep_dir: Path, log=print) -> Path:
  record = json.loads((sweep_dir / SWEEP).read_text())
  seeds = record.get('seeds', 1)
  runs = [(point, s) for point in record['points'] for s in range(seeds)]
  run_dirs = []
  for i, (point, s) in enumerate(runs, 1):
    point['values'] = {k: config_lib.as_tuple(v) for k, v in point['values'].items()}
    name = point['name'] if seeds == 1 else f'{point["name"]}-seed{s}'
    run_dir = sweep_dir / name
    run_dirs.append(run_dir)
    if (run_dir / 'report.json').exists():
      log(f'run {i}/{len(runs)}: {name} finished before')
      continue
    config = point_config(record['config'], point, record['overrides'], run_dir)
    config.seed += s
    resuming = (run_dir / rundir.CONFIG).exists()
    log(f'run {i}/{len(runs)}: {name}' + (' (resumed)' if resuming else ''))
    report = run(config, run_dir, resume=resuming, log=log)
    low, high = report['intervals']['accuracy']
    log(f'run {i}/{len(runs)}: {name}: test accuracy {report["accuracy"]:.4f} '
        f'[{low:.4f}, {high:.4f}]')
  result = compare.write(sweep_dir, 'sweep', run_dirs)
  for line in compare.summary_lines(result):
    log(line)
  return sweep_dir
