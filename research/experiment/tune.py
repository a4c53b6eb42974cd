"""A tune: hyper-parameters chosen by Optuna on the validation split, one ordinary run
directory per trial, the test split scored once, for the best trial alone.

A config file's search space is plain Python next to `get_config` (and `get_sweep`):

    def get_search_space():
      return {
          'optimizer.learning_rate': ('loguniform', 1e-4, 3e-3),  # log-uniform float
          'loss.label_smoothing': ('uniform', 0.0, 0.2),           # uniform float
          'num_epochs': ('int', 2, 4),                             # integer, both ends included
          'freeze.before': ['backbone/blocks_12', 'head'],         # a list: one of these
          'model.hidden': [(), (256,), (512, 512)],                # tuples are values too
      }

Keys are dotted config keys (research/config.py); every key and every value the space
can give (each choice, each end of a range) is checked against the schema before any
trial runs. Overrides on the command line hold for every trial and may not name a
searched key.

Each trial is `<tune_dir>/trial_<number>`, an ordinary run directory (eval, compare,
gradcam take it), trained with `run(report=False)`: the test split is not touched,
Grad-CAM and feature maps are off, and `feature_cache.dir` is `<tune_dir>/features`, so
trials that change only the head read the backbone's features the first one computed
(a backbone frozen for the whole run, with augmentation off or `feature_cache.views` > 0).
A trial's value is its best epoch's validation metric (`checkpoint.best_metric`; a loss
is minimised, an accuracy maximised). The sampler is TPE (seeded by `seed` and the
trial's number, so a resumed tune draws as an uninterrupted one); the median pruner
stops a trial at an epoch's end whose metric is worse than the median of the earlier
trials' at that epoch, once 3 trials have finished, never at the first epoch (steps count
from 0 at epoch 1, n_warmup_steps=1).

The study lives in `<tune_dir>/study.db` (SQLite) and `tune.json` holds the config,
overrides, search space and number of trials, so `./run.sh tune --resume DIR` needs
nothing else. Killed anywhere, `--resume` marks the trials the dead process left running
as failed, runs their parameters again first (continuing a killed trial's checkpoint,
in the new trial's directory) and goes on until the number of complete and pruned trials
reaches `--trials` (which `--resume DIR --trials N` may raise). Several processes, on one
machine or several sharing the directory's file system, work on one study: start the
first with `./run.sh tune CONFIG.py --trials N`, the others with `./run.sh tune --resume
DIR`. Each process holds a lock in `<tune_dir>/workers/` while it lives; a running trial
whose process's lock is free was killed.

When every trial has finished, the best trial's best checkpoint is scored on the test
split (its report.json and report.md) by the process that finishes last; `tune.csv`,
`tune.md` (every trial: state, parameters, validation metric, epochs, seconds),
`tune.png` and `best.json` (its parameters, value, run directory, test accuracy with its
Wilson 95% interval and the command that trains it alone) are written, then
`importance.png` (fANOVA), where it can be computed: not with fewer than 2 complete trials,
nor when they all scored the same (usual on a small validation split); any other failure
of fANOVA is logged in one line and leaves the rest written. With `val_accuracy` as the
metric, each trial's value has its Wilson 95% interval over the trial's validation images,
and tune.md names the trials within the best's: the validation split does not tell them
apart.
"""
import contextlib
import csv
import fcntl
import json
import os
import shlex
import shutil
import time
import uuid
from pathlib import Path

import optuna
from optuna.trial import TrialState

from research import config as config_lib
from research import rundir
from research.data import load_split
from research.evaluate import evaluate, plots, stats
from research.experiment.run import restore, run
from research.train.checkpoint import best_epoch
from research.train.history import read
from research.train.loop import Preempted, TrainingError
from research.train.state import pretrained_file

TUNE, STUDY, WORKERS, LOCK = 'tune.json', 'study.db', 'workers', '.tune.lock'
IMPORTANCE = 'importance.png'
INTERVAL = '95% interval'  # the tables' column: Wilson's, of a val_accuracy
KINDS = ('loguniform', 'uniform', 'int')
STARTUP_TRIALS = 5  # TPE draws at random until this many trials have finished
FINISHED = (TrialState.COMPLETE, TrialState.PRUNED)
STATES = {TrialState.COMPLETE: 'complete', TrialState.PRUNED: 'pruned', TrialState.FAIL: 'failed',
          TrialState.RUNNING: 'running', TrialState.WAITING: 'waiting'}

optuna.logging.set_verbosity(optuna.logging.WARNING)  # the tune says what happens, once


def label(choice):
  """A choice as Optuna stores it: itself if a plain value, else its repr ('(256,)')."""
  return choice if choice is None or isinstance(choice, (bool, int, float, str)) else repr(choice)


def read_space(path: str) -> dict:
  """The config file's `get_search_space()` as {key: {'kind', 'low', 'high'} or
  {'choices': [...]}} (what tune.json holds), its form checked."""
  module = config_lib.load_module(path)
  if not hasattr(module, 'get_search_space'):
    raise config_lib.ConfigError(f'{path} defines no search space: add get_search_space() '
                                 f'(see research/experiment/tune.py)')
  raw = module.get_search_space()
  if not isinstance(raw, dict) or not raw:
    raise config_lib.ConfigError(f'{path}: get_search_space() must return a non-empty dict of '
                                 f'dotted config keys, e.g. {{"optimizer.learning_rate": '
                                 f'("loguniform", 1e-4, 1e-2)}}')
  space = {}
  for key, spec in raw.items():
    where = f'{path}: get_search_space() {key!r}'
    if isinstance(spec, list):
      labels = [label(c) for c in spec]
      if not spec or len(set(map(repr, labels))) < len(labels):
        raise config_lib.ConfigError(f'{where}: give one or more distinct choices')
      space[key] = {'choices': spec}
      continue
    if not (isinstance(spec, tuple) and len(spec) == 3 and spec[0] in KINDS):
      raise config_lib.ConfigError(f"{where}: {spec!r} is neither a list of choices nor "
                                   f"(kind, low, high) with kind one of: {', '.join(KINDS)}")
    kind, low, high = spec
    number = int if kind == 'int' else (int, float)
    if not all(isinstance(x, number) and not isinstance(x, bool) for x in (low, high)) or not (
        low < high) or (kind == 'loguniform' and low <= 0):
      raise config_lib.ConfigError(
          f'{where}: {spec!r} needs low < high' + (', both whole numbers' if kind == 'int' else '')
          + (', low > 0' if kind == 'loguniform' else ''))
    space[key] = {'kind': kind, 'low': low, 'high': high}
  return space


def stored_space(space: dict) -> dict:
  """A space read back from tune.json: JSON's lists among the choices as tuples."""
  return {k: {'choices': [config_lib.as_tuple(c) for c in d['choices']]} if 'choices' in d
          else d for k, d in space.items()}


def check_space(spec: str, overrides: list[str], space: dict):
  """The config with no search key overridden and every value the space can give fitting
  the schema (checked on copies); returns the config (the tune's base)."""
  path = spec.partition(':')[0]
  overridden = {o.partition('=')[0] for o in overrides}
  for key in space:
    try:
      config_lib.check_key(key)
    except config_lib.ConfigError as e:
      raise config_lib.ConfigError(f'{path}: get_search_space(): {e}') from None
    if key in overridden:
      raise config_lib.ConfigError(f'--config.{key} fixes a key {path} searches: drop the '
                                   f'override, or the key from get_search_space()')
  config = config_lib.load(spec, overrides)
  for key, dimension in space.items():
    for value in dimension.get('choices') or (dimension['low'], dimension['high']):
      trial = config.copy_and_resolve_references()
      try:
        config_lib.set_value(trial, key, value)
        config_lib.validate(trial)
      except config_lib.ConfigError as e:
        raise config_lib.ConfigError(f'{path}: get_search_space() {key!r}: {e}') from None
  return config


def default_dir(spec: str) -> Path:
  path, _, variant = spec.partition(':')
  return Path(f'checkpoints/{Path(path).stem}{"-" + variant if variant else ""}-tune-'
              f'{time.strftime("%Y%m%d-%H%M%S")}')


def start(spec: str, overrides: list[str], trials: int, out: str | None = None,
          log=print) -> tuple[Path, dict]:
  """A new tune directory (`out`, or checkpoints/<config>-tune-<time>) for the config's
  search space, checked before anything is written; runs it. Returns (the directory,
  `optimize`'s result)."""
  if trials < 1:
    raise config_lib.ConfigError(f'--trials {trials}: give 1 or more')
  space = read_space(spec.partition(':')[0])
  pretrained_file(check_space(spec, overrides, space), log)
  tune_dir = Path(out) if out else default_dir(spec)
  if (tune_dir / TUNE).exists():
    raise config_lib.ConfigError(f'{tune_dir} already holds a tune: continue it with ./run.sh '
                                 f'tune --resume {tune_dir}, or choose another --out')
  tune_dir.mkdir(parents=True, exist_ok=True)
  rundir.write_whole(tune_dir / TUNE, json.dumps(
      {'config': spec, 'overrides': overrides, 'trials': trials, 'space': space}, indent=1))
  return tune_dir, optimize(tune_dir, log)


def resume(tune_dir: Path, trials: int | None = None, log=print) -> dict:
  """Continues (or joins) the tune in `tune_dir`, to `trials` if given; returns `optimize`'s
  result."""
  if not (tune_dir / TUNE).exists():
    raise rundir.RunDirError(f'{tune_dir} is not a tune directory (no {TUNE}): pass a folder '
                             f'made by ./run.sh tune CONFIG.py')
  if trials is not None:
    if trials < 1:
      raise config_lib.ConfigError(f'--trials {trials}: give 1 or more')
    with serialized(tune_dir):
      record = json.loads((tune_dir / TUNE).read_text())
      rundir.write_whole(tune_dir / TUNE, json.dumps({**record, 'trials': trials}, indent=1))
  return optimize(tune_dir, log)


@contextlib.contextmanager
def serialized(tune_dir: Path):
  """One process at a time (of all sharing the tune): choosing a trial, writing the tables,
  scoring the best."""
  with open(tune_dir / LOCK, 'a') as f:
    fcntl.flock(f, fcntl.LOCK_EX)
    try:
      yield
    finally:
      fcntl.flock(f, fcntl.LOCK_UN)


@contextlib.contextmanager
def worker(tune_dir: Path):
  """This process's name among the tune's workers, its lock held while it lives."""
  name = f'{os.uname().nodename}-{os.getpid()}-{uuid.uuid4().hex[:6]}'
  try:
    with rundir.lock(tune_dir / WORKERS / name):
      yield name
  finally:
    shutil.rmtree(tune_dir / WORKERS / name, ignore_errors=True)


def alive(tune_dir: Path, name: str | None) -> bool:
  """Whether the worker `name` still holds its lock."""
  if not name:
    return False
  try:
    with rundir.lock(tune_dir / WORKERS / name):
      return False
  except rundir.RunDirError:
    return True


def direction(metric: str) -> str:
  return 'minimize' if metric.endswith('loss') else 'maximize'  # as best_epoch counts


def open_study(tune_dir: Path, metric: str) -> optuna.Study:
  storage = optuna.storages.RDBStorage(f'sqlite:///{(tune_dir / STUDY).absolute()}',
                                       engine_kwargs={'connect_args': {'timeout': 600}})
  return optuna.create_study(storage=storage, study_name='tune', direction=direction(metric),
                             pruner=pruner(), load_if_exists=True)


def pruner() -> optuna.pruners.BasePruner:
  return optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=1)


def recover(study: optuna.Study, tune_dir: Path, log) -> None:
  """Trials left running by a dead process: failed, and their parameters queued again."""
  for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
    name = t.user_attrs.get('worker')
    if alive(tune_dir, name):
      continue
    if name:
      shutil.rmtree(tune_dir / WORKERS / name, ignore_errors=True)
    study.tell(t.number, state=TrialState.FAIL)
    study.enqueue_trial(t.params, user_attrs={'retry_of': t.number})
    log(f'trial {t.number}: its process died; its parameters run again next')


def suggest(trial: optuna.Trial, space: dict) -> dict:
  """{key: config value} drawn for `trial`."""
  values = {}
  for key, d in space.items():
    if 'choices' in d:
      labels = {repr(label(c)): c for c in d['choices']}
      values[key] = labels[repr(trial.suggest_categorical(key, [label(c) for c in d['choices']]))]
    elif d['kind'] == 'int':
      values[key] = trial.suggest_int(key, d['low'], d['high'])
    else:
      values[key] = trial.suggest_float(key, d['low'], d['high'], log=d['kind'] == 'loguniform')
  return values


def trial_config(record: dict, values: dict, run_dir: Path, tune_dir: Path):
  """A trial's config: the tune's config file with `values`, then its overrides."""
  config = config_lib.load(record['config'], record['overrides'], values)
  config.workdir = str(run_dir)
  config.feature_cache.dir = str(tune_dir / 'features')
  config.gradcam.num_images = config.features.num_images = 0
  return config


def adopt(trial: optuna.Trial, tune_dir: Path, run_dir: Path, config) -> bool:
  """Whether the trial continues the run directory of the killed trial it retries (moved to
  `run_dir`; only if that run has the same config)."""
  old = trial.user_attrs.get('retry_of')
  source = tune_dir / f'trial_{old}'
  if old is None or not (source / rundir.CONFIG).exists():
    return False
  if [k for k in config_lib.differing_keys(rundir.load_config(source), config) if k != 'workdir']:
    return False
  source.rename(run_dir)
  rundir.save_config(run_dir, config)
  return True


def pruning(trial, metric: str):
  """`run`'s on_epoch: reports each epoch's validation `metric` to `trial` (step = epoch - 1)
  and stops the run with optuna.TrialPruned where the pruner says so."""
  def on_epoch(record: dict) -> None:
    if metric not in record:
      return  # no validation split: the trial fails at its end, saying so
    trial.report(record[metric], record['epoch'] - 1)
    if trial.should_prune():
      raise optuna.TrialPruned(f'{metric} {record[metric]:.4f} at epoch {record["epoch"]}')
  return on_epoch


def run_trial(study: optuna.Study, trial: optuna.Trial, values: dict, record: dict,
              tune_dir: Path, metric: str, log) -> None:
  """Trains the trial's run directory and tells the study how it ended."""
  run_dir = tune_dir / f'trial_{trial.number}'
  config = trial_config(record, values, run_dir, tune_dir)
  say = lambda line: log(f'trial {trial.number}: {line}')
  resuming = adopt(trial, tune_dir, run_dir, config)
  say(', '.join(f'{k}={v!r}' for k, v in values.items())
      + (f' (continuing trial {trial.user_attrs["retry_of"]})' if resuming else ''))
  for r in read(run_dir / rundir.METRICS) if resuming else ():
    trial.report(r[metric], r['epoch'] - 1)
  try:
    records = run(config, run_dir, resuming, say, pruning(trial, metric), report=False)['records']
  except optuna.TrialPruned as e:
    study.tell(trial, state=TrialState.PRUNED)
    say(f'pruned: {e}, worse than the median of the earlier trials')
    return
  except TrainingError as e:  # diverged: the search goes on
    trial.set_user_attr('error', str(e))
    study.tell(trial, state=TrialState.FAIL)
    say(f'failed: {e}')
    return
  except Preempted:
    raise  # left running: a resume runs it again from its checkpoint
  except Exception as e:
    trial.set_user_attr('error', f'{type(e).__name__}: {e}')
    study.tell(trial, state=TrialState.FAIL)
    raise
  best = best_epoch(records, metric)
  if best is None:
    study.tell(trial, state=TrialState.FAIL)
    raise config_lib.ConfigError(f'{run_dir} has no validation split to tune on: give '
                                 f'data.split a validation share, e.g. (0.7, 0.15, 0.15)')
  value = next(r[metric] for r in records if r['epoch'] == best)
  study.tell(trial, value)
  say(f'{metric} {value:.4f} (epoch {best})')


def optimize(tune_dir: Path, log=print) -> dict:
  """Runs trials until the complete and pruned ones number the tune's `trials` (with other
  processes, if any); the last to finish scores the best trial on the test split. Returns
  {'finished': trials complete or pruned, 'running': trials other processes still run,
  'best': best.json's content (None while trials run, or if none completed)}."""
  record = json.loads((tune_dir / TUNE).read_text())
  space = stored_space(record['space'])
  base = config_lib.load(record['config'], record['overrides'])
  metric = base.checkpoint.best_metric
  study = open_study(tune_dir, metric)
  with worker(tune_dir) as me:
    while True:
      with serialized(tune_dir):
        recover(study, tune_dir, log)
        trials = study.get_trials(deepcopy=False)
        done = sum(t.state in FINISHED for t in trials)
        running = sum(t.state == TrialState.RUNNING for t in trials)
        failed = sum('error' in t.user_attrs and t.state == TrialState.FAIL for t in trials)
        if failed >= record['trials']:  # (killed trials run again: they do not count)
          raise config_lib.ConfigError(
              f'{failed} trials of {tune_dir} failed (see tune.md): narrow the search space, '
              f'e.g. a lower optimizer.learning_rate range')
        if done + running >= record['trials']:
          best = write(tune_dir, record, space, study, base, final=running == 0, log=log)
          return {'finished': done, 'running': running, 'best': best}
        study.sampler = optuna.samplers.TPESampler(
            seed=base.seed + len(trials), n_startup_trials=STARTUP_TRIALS, constant_liar=True)
        trial = study.ask()
        trial.set_user_attr('worker', me)
        values = suggest(trial, space)
      log(f'trial {trial.number}: {done} of {record["trials"]} finished before it')
      run_trial(study, trial, values, record, tune_dir, metric, log)
      with serialized(tune_dir):
        write(tune_dir, record, space, study, base, final=False, log=log)


def values_of(params: dict, space: dict) -> dict:
  """The config values of a trial's Optuna parameters."""
  return {k: next(c for c in d['choices'] if repr(label(c)) == repr(params[k]))
          if 'choices' in d else params[k] for k, d in space.items() if k in params}


def command(record: dict, values: dict) -> str:
  """The command line that trains a trial alone (`./run.sh CONFIG.py --config.k=v ...`)."""
  text = lambda v: repr(v) if isinstance(v, (float, tuple)) else str(v)
  args = ['./run.sh', record['config'], *(f'--config.{o}' for o in record['overrides']),
          *(f'--config.{k}={text(v)}' for k, v in values.items())]
  return ' '.join(map(shlex.quote, args))


def validation_images(run_dir: Path) -> int | None:
  """How many images a trial validated on (its split.json; None before it has one)."""
  path = run_dir / rundir.SPLIT
  return len(load_split(path)[1]['val']) if path.exists() else None


def wilson(accuracy: float | None, n: int | None) -> tuple | None:
  """The Wilson 95% interval of an accuracy over n images (None without both)."""
  if accuracy is None or not n:
    return None
  return stats.wilson(round(accuracy * n), n)


def span(pair) -> str:
  low, high = pair
  return f'{low:.3f}–{high:.3f}'


def rows(tune_dir: Path, space: dict, study: optuna.Study, metric: str) -> list[dict]:
  """One row per trial: number, state, parameters, validation metric (its best epoch's; a
  val_accuracy with its Wilson 95% interval), epochs run, seconds, and why it failed or
  which trial ran it again."""
  every = study.get_trials(deepcopy=False)
  retried = {t.user_attrs['retry_of']: t for t in every if 'retry_of' in t.user_attrs}
  table = []
  for t in (t for t in every if t.state != TrialState.WAITING):
    history = read(tune_dir / f'trial_{t.number}' / rundir.METRICS)
    best = best_epoch(history, metric)
    value = next((r[metric] for r in history if r['epoch'] == best), None)
    note = t.user_attrs.get('error', '')
    if t.number in retried:
      again = retried[t.number]
      note = (f'killed; queued to run again as trial {again.number} (a later --resume)'
              if again.state == TrialState.WAITING else
              f'killed; run again as trial {again.number}')
    table.append({'trial': t.number, 'state': STATES[t.state],
                  **{k: t.params.get(k) for k in space},
                  metric: value, **({INTERVAL: wilson(value, validation_images(
                      tune_dir / f'trial_{t.number}'))} if metric == 'val_accuracy' else {}),
                  'best epoch': best, 'epochs': len(history) or None,
                  'seconds': t.duration.total_seconds() if t.duration else None, 'note': note})
  return table


def test_interval(report: dict) -> list:
  """A report's accuracy interval ([low, high], Wilson 95%); computed for a report written
  before reports held intervals."""
  given = report.get('intervals', {}).get('accuracy')
  return list(given or stats.wilson(round(report['accuracy'] * report['num_images']),
                                    report['num_images']))


def score_best(tune_dir: Path, study: optuna.Study, record: dict, space: dict,
               metric: str) -> dict:
  """best.json: the best trial scored on the test split (once: an existing report is kept),
  its test accuracy with its Wilson 95% interval."""
  best = study.best_trial
  run_dir = tune_dir / f'trial_{best.number}'
  report_path = run_dir / 'report.json'
  report = (json.loads(report_path.read_text()) if report_path.exists()
            else evaluate(restore(run_dir)))
  values = values_of(best.params, space)
  result = {'trial': best.number, 'run_dir': str(run_dir), 'metric': metric,
            'value': best.value, 'epoch': report['epoch'],
            'params': {k: list(v) if isinstance(v, tuple) else v for k, v in values.items()},
            'test_accuracy': report['accuracy'],
            'test_accuracy_interval': test_interval(report),
            'test_balanced_accuracy': report['balanced_accuracy'],
            'command': command(record, values)}
  rundir.write_whole(tune_dir / 'best.json', json.dumps(result, indent=1))
  return result


def cell(column: str, value) -> str:
  """Seconds to 0.1, intervals to 3 decimals, other numbers to 4 significant digits."""
  if value is None:
    return '-'
  if column == INTERVAL:
    return span(value)
  if isinstance(value, float):
    return f'{value:.1f}' if column == 'seconds' else f'{value:.4g}'
  return str(value)


def alike(best: int, interval, complete: list) -> str:
  """tune.md's sentence naming the complete trials whose value lies in the best's interval."""
  low, high = interval
  within = [t.number for t in complete if t.number != best and low <= t.value <= high]
  if not within:
    return "No other complete trial scores within the best's 95% interval on validation.\n"
  several = len(within) > 1
  return (f"Trial{'s' * several} {', '.join(map(str, within))} score{'s' * (not several)} "
          f"within the best's 95% interval on validation: this validation split does not "
          f"tell {'them' if several else 'the two'} apart.\n")


def importance(tune_dir: Path, study: optuna.Study, complete: list, metric: str, seed: int,
               log) -> str:
  """importance.png (fANOVA over the complete trials) and tune.md's paragraph on it; where it
  cannot be computed (fewer than 2 complete trials, all of the same value, fANOVA failing)
  the paragraph, and one logged line, say why, and there is no importance.png."""
  (tune_dir / IMPORTANCE).unlink(missing_ok=True)  # a finished tune's, written again here
  if len(complete) < 2:
    why = (f'parameter importance needs 2 or more complete trials ({len(complete)} here): '
           f'no {IMPORTANCE}')
  elif len({t.value for t in complete}) == 1:  # fANOVA would find zero variance
    why = (f'no detectable difference between the complete trials: all {len(complete)} '
           f'scored {metric} {complete[0].value:.4f} on validation, so no parameter importance '
           f'(no {IMPORTANCE})')
  else:
    try:
      importances = optuna.importance.get_param_importances(
          study, evaluator=optuna.importance.FanovaImportanceEvaluator(seed=seed))
    except (RuntimeError, ValueError) as e:
      why = (f'parameter importance could not be computed (fANOVA raised '
             f'{type(e).__name__}: {e}): no {IMPORTANCE}')
    else:
      plots.importance(importances, tune_dir / IMPORTANCE)
      return ('Parameter importance (fANOVA over the complete trials): '
              + ', '.join(f'{k} {v:.2f}' for k, v in importances.items())
              + f'\n\n![importance]({IMPORTANCE})\n')
  log(why)
  return f'{why[0].upper()}{why[1:]}.\n'


def write(tune_dir: Path, record: dict, space: dict, study: optuna.Study, config, final: bool,
          log=print) -> dict | None:
  """tune.csv, tune.md, tune.png; when `final`, the best trial's test score (best.json), then,
  the rest written, importance.png. Returns best.json's content (None unless final with a
  complete trial)."""
  metric = config.checkpoint.best_metric
  table = rows(tune_dir, space, study, metric)
  columns = list(table[0]) if table else ['trial', 'state']
  with open(tune_dir / 'tune.csv', 'w', newline='') as f:
    writer = csv.DictWriter(f, columns)
    writer.writeheader()
    writer.writerows({k: '' if v is None else json.dumps(list(v)) if k == INTERVAL else v
                      for k, v in row.items()} for row in table)
  plots.tuning([r['trial'] for r in table], [r[metric] for r in table],
               [r['state'] for r in table], metric, direction(metric) == 'maximize',
               tune_dir / 'tune.png')
  complete = [t for t in study.get_trials(deepcopy=False) if t.state == TrialState.COMPLETE]
  done = sum(r['state'] in ('complete', 'pruned') for r in table)
  lines = [f'# tune: {record["config"]}, {done} of {record["trials"]} trials finished\n',
           f'Chosen on validation {metric} ({direction(metric)}d): TPE sampler, median pruner '
           f'(research/experiment/tune.py); each trial is the run directory trial_<number>.\n']
  if INTERVAL in columns:
    images = sorted({n for r in table if (n := validation_images(
        tune_dir / f'trial_{r["trial"]}')) is not None})
    if images:
      lines.append(f"The {INTERVAL} of a trial's {metric} is Wilson's, over its "
                   f"{' or '.join(map(str, images))} validation images.\n")
  best = None
  if final and complete:
    best = score_best(tune_dir, study, record, space, metric)
    around = next(r for r in table if r['trial'] == best['trial']).get(INTERVAL)
    lines.append(f'**Best: trial {best["trial"]}**, {metric} {best["value"]:.4f}'
                 + (f' ({INTERVAL} {span(around)})' if around else '')
                 + f'; on the test split (scored for this trial alone, weights of epoch '
                 f'{best["epoch"]}): accuracy **{best["test_accuracy"]:.4f}** (95% interval '
                 f'{span(best["test_accuracy_interval"])}), balanced accuracy '
                 f'{best["test_balanced_accuracy"]:.4f}.\n')
    if around:
      lines.append(alike(best['trial'], around, complete))
    lines += ['Trained alone:\n', f'    {best["command"]}\n']
  elif final:
    lines.append('No trial completed (all pruned or failed): nothing was scored on the test '
                 'split.\n')
  lines += ['| ' + ' | '.join(columns) + ' |', '|' + '---|' * len(columns)]
  lines += ['| ' + ' | '.join(cell(k, row[k]) for k in columns) + ' |' for row in table]
  lines.append('\n![tune](tune.png)\n')
  (tune_dir / 'tune.md').write_text('\n'.join(lines))
  if final:  # last: whatever fANOVA meets, the tables and best.json are written
    with open(tune_dir / 'tune.md', 'a') as f:
      f.write('\n' + importance(tune_dir, study, complete, metric, config.seed, log))
  return best
