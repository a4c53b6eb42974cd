"""`./run.sh tune`: the search space checked before any trial, a tune killed with SIGKILL
mid-trial and resumed to exactly its trials, pruning at an epoch's end, the best trial
reproduced alone from its printed command, the test split scored for the best trial alone;
the tables written, without importance, when the complete trials tie or fANOVA fails; a
val_accuracy's Wilson interval; the 4-level ELPV config's search space fits the schema and
the model."""
import csv
import json
import os
import shlex
import subprocess
import sys
from types import SimpleNamespace

import jax
import jax.numpy as jnp
import numpy as np
import optuna
import pytest

from helpers import make_folder
from research.cli.main import main
from research.config import base_config
from research.experiment import tune
from research.models import create_model
from research.train.history import read
from research.train.freeze import TRAINABLE
from research.train.state import phases
from test_kill_resume import ROOT, kill_when

CONFIG = '''from research.config import base_config

def get_config():
  c = base_config()
  c.model.name, c.model.pretrained = 'simple_cnn', False
  c.batch_size, c.num_epochs = 4, 2
  c.data.path, c.data.image_size = {folder!r}, 32
  c.checkpoint.keep, c.checkpoint.best_metric = 1, 'val_loss'
  c.gradcam.num_images = c.features.num_images = 0
  return c

def get_search_space():
  return {space}
'''
SPACE = {'optimizer.learning_rate': ('loguniform', 1e-3, 3e-2), 'model.hidden': [(), (8,)]}


@pytest.fixture(scope='module')
def config_file(tmp_path_factory):
  """A config whose search space is SPACE, and a function writing one with another space."""
  root = tmp_path_factory.mktemp('tune')
  folder = make_folder(root / 'images', per_class=10)

  def write(space, name='tiny.py'):
    path = root / name
    path.write_text(CONFIG.format(folder=str(folder), space=space))
    return path

  write.tiny = write(SPACE)
  return write


def states(tune_dir) -> list[str]:
  with open(tune_dir / 'tune.csv') as f:
    return [row['state'] for row in csv.DictReader(f)]


@pytest.fixture(scope='module')
def killed_tune(config_file, tmp_path_factory):
  """A 3-trial tune SIGKILLed while its second trial trains, then resumed to its end:
  (tune directory, the resumed process's stdout)."""
  tune_dir = tmp_path_factory.mktemp('killed') / 'tune'
  cmd = [sys.executable, '-m', 'research.cli.main', 'tune']
  assert kill_when([*cmd, str(config_file.tiny), '--trials', '3', '--out', str(tune_dir)],
                   lambda: (tune_dir / 'trial_1' / 'config.json').exists())
  resumed = subprocess.run([*cmd, '--resume', str(tune_dir)], cwd=ROOT, capture_output=True,
                           text=True, env={**os.environ, 'PYTHONPATH': str(ROOT)}, check=False)
  assert resumed.returncode == 0, resumed.stderr
  return tune_dir, resumed.stdout


@pytest.mark.parametrize('space,message', [
    ({'optimizer.learning_rat': ('loguniform', 1e-3, 1e-2)},
     "get_search_space(): unknown config key 'optimizer.learning_rat'; nearest valid key: "
     "'optimizer.learning_rate'"),
    ({'num_epochs': ('loguniform', 1e-3, 1e-2)},
     "get_search_space() 'num_epochs': num_epochs=0.001: expected a int, like 2"),
    ({'optimizer.name': ['adam', 'rmsprop']},
     "get_search_space() 'optimizer.name': optimizer.name is 'rmsprop'; choose one of: adam, "
     "adamw, sgd"),
], ids=['key', 'type', 'choice'])
def test_a_bad_search_space_is_refused_in_one_line_before_any_trial(
    config_file, space, message, tmp_path, capsys):
  path = config_file(space, 'bad.py')
  out = tmp_path / 'tune'
  assert main(['tune', str(path), '--trials', '2', '--out', str(out)]) == 2
  err = capsys.readouterr().err
  assert err == f'error: {path}: {message}\n'
  assert not out.exists()  # no study, no trial directory


def test_a_tune_killed_mid_trial_resumes_to_exactly_its_trials(killed_tune):
  tune_dir, _ = killed_tune
  study = optuna.load_study(study_name='tune', storage=f'sqlite:///{tune_dir / tune.STUDY}')
  trials = study.get_trials()
  assert [t.state for t in trials] == [optuna.trial.TrialState.COMPLETE,
                                       optuna.trial.TrialState.FAIL,
                                       optuna.trial.TrialState.COMPLETE,
                                       optuna.trial.TrialState.COMPLETE]
  # the killed trial's parameters ran again first, continuing its run directory
  assert trials[2].params == trials[1].params and trials[2].user_attrs['retry_of'] == 1
  assert not (tune_dir / 'trial_1').exists()
  assert all(len(read(tune_dir / f'trial_{n}' / 'metrics.jsonl')) == 2 for n in (0, 2, 3))
  assert states(tune_dir) == ['complete', 'failed', 'complete', 'complete']
  assert 'run again as trial 2' in (tune_dir / 'tune.md').read_text()
  for name in ('tune.png', 'importance.png', 'best.json'):
    assert (tune_dir / name).exists()


def test_a_trial_the_pruner_stops_ends_after_that_epoch_as_pruned(config_file, tmp_path,
                                                                  monkeypatch):
  class PruneFromTrial1(optuna.pruners.BasePruner):
    def prune(self, study, trial):
      return trial.number >= 1

  monkeypatch.setattr(tune, 'pruner', PruneFromTrial1)
  tune_dir, result = tune.start(str(config_file.tiny), [], 2, str(tmp_path / 'tune'),
                                log=lambda _: None)
  assert states(tune_dir) == ['complete', 'pruned']  # 2 finished: no third trial
  assert [r['epoch'] for r in read(tune_dir / 'trial_0' / 'metrics.jsonl')] == [1, 2]
  pruned = read(tune_dir / 'trial_1' / 'metrics.jsonl')
  assert [r['epoch'] for r in pruned] == [1]  # of num_epochs=2
  study = optuna.load_study(study_name='tune', storage=f'sqlite:///{tune_dir / tune.STUDY}')
  assert study.trials[1].intermediate_values == {0: pruned[0]['val_loss']}
  assert result['best']['trial'] == 0
  # the callback alone: it reports the epoch and stops the run where the pruner says
  reports = []
  fake = type('Trial', (), {'report': lambda self, v, step: reports.append((v, step)),
                            'should_prune': lambda self: True})()
  with pytest.raises(optuna.TrialPruned):
    tune.pruning(fake, 'val_loss')({'epoch': 3, 'val_loss': 0.5})
  assert reports == [(0.5, 2)]


def test_the_best_trial_reproduces_alone_from_its_printed_command(killed_tune, tmp_path):
  tune_dir, stdout = killed_tune
  best = json.loads((tune_dir / 'best.json').read_text())
  assert f'alone:   {best["command"]}\n' in stdout
  args = shlex.split(best['command'])
  assert args[0] == './run.sh' and best['params'].keys() == tune.read_space(args[1]).keys()
  assert main([*args[1:], f'--config.workdir={tmp_path / "alone"}']) == 0
  history = read(tmp_path / 'alone' / 'metrics.jsonl')
  assert min(r['val_loss'] for r in history) == best['value']  # bit for bit
  report = json.loads((tmp_path / 'alone' / 'report.json').read_text())
  assert report['accuracy'] == best['test_accuracy']


def test_the_test_split_is_scored_once_for_the_best_trial_alone(killed_tune, capsys):
  tune_dir, stdout = killed_tune
  best = json.loads((tune_dir / 'best.json').read_text())
  study = optuna.load_study(study_name='tune', storage=f'sqlite:///{tune_dir / tune.STUDY}')
  assert best['trial'] == study.best_trial.number
  assert best['value'] == min(t.value for t in study.trials if t.state.name == 'COMPLETE')
  scored = sorted(p.parent.name for p in tune_dir.glob('trial_*/report.json'))
  assert scored == [f'trial_{best["trial"]}']
  report_file = tune_dir / scored[0] / 'report.json'
  report = json.loads(report_file.read_text())
  assert (best['test_accuracy'], best['test_balanced_accuracy']) == (
      report['accuracy'], report['balanced_accuracy'])
  low, high = best['test_accuracy_interval']
  assert [low, high] == report['intervals']['accuracy']
  assert (f'test:    accuracy {report["accuracy"]:.4f} (95% interval {low:.3f}–{high:.3f}), '
          f'balanced accuracy') in stdout
  # resuming a finished tune runs no trial and scores nothing again
  written = report_file.stat().st_mtime_ns
  assert main(['tune', '--resume', str(tune_dir)]) == 0
  assert report_file.stat().st_mtime_ns == written and len(study.get_trials()) == 4
  assert f'best:    trial {best["trial"]}' in capsys.readouterr().out


LR = 'optimizer.learning_rate'


def finished_tune(tune_dir, trials, report, val_images=24):
  """A finished tune as `write` finds it, without training: a study of complete trials
  ((learning rate, val_accuracy) each) and their run directories' metrics.jsonl, split.json
  (`val_images` validation images) and report.json (`report`); `write`'s arguments."""
  study = optuna.create_study(direction='maximize')
  distribution = optuna.distributions.FloatDistribution(1e-4, 1e-2, log=True)
  for number, (lr, value) in enumerate(trials):
    study.add_trial(optuna.trial.create_trial(params={LR: lr}, distributions={LR: distribution},
                                              value=value))
    run_dir = tune_dir / f'trial_{number}'
    run_dir.mkdir(parents=True)
    (run_dir / 'metrics.jsonl').write_text(json.dumps(
        {'epoch': 1, 'val_loss': 0.7, 'val_accuracy': value}) + '\n')
    (run_dir / 'split.json').write_text(json.dumps(
        {'class_names': ['a', 'b'], 'source': 'folder', 'train': [], 'test': [],
         'val': [[f'v{i}.png', i % 2] for i in range(val_images)]}))
    (run_dir / 'report.json').write_text(json.dumps(report))
  config = base_config()
  config.checkpoint.best_metric = 'val_accuracy'
  record = {'config': 'configs/tiny.py', 'overrides': [], 'trials': len(trials)}
  return (tune_dir, record, {LR: {'kind': 'loguniform', 'low': 1e-4, 'high': 1e-2}}, study,
          config)


def wilson_by_formula(p, n, z=1.959963984540054):
  """The Wilson score interval, from its closed form."""
  centre, half = p + z * z / (2 * n), z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
  return [(centre - half) / (1 + z * z / n), (centre + half) / (1 + z * z / n)]


def test_trials_that_tie_leave_the_tables_and_the_test_score_written_without_importance(
    tmp_path):
  logs = []
  report = {'epoch': 1, 'accuracy': 0.75, 'balanced_accuracy': 0.7, 'num_images': 20}
  args = finished_tune(tmp_path, [(1e-3, 0.5), (3e-3, 0.5)], report)  # (no 'intervals')
  best = tune.write(*args, final=True, log=logs.append)  # fANOVA would raise here
  said = ('no detectable difference between the complete trials: all 2 scored val_accuracy '
          '0.5000 on validation, so no parameter importance (no importance.png)')
  assert logs == [said]
  text = (tmp_path / 'tune.md').read_text()
  assert said[0].upper() + said[1:] in text
  assert not (tmp_path / 'importance.png').exists()
  assert json.loads((tmp_path / 'best.json').read_text()) == best
  assert best['trial'] == 0
  assert best['test_accuracy_interval'] == pytest.approx(wilson_by_formula(0.75, 20))
  low, high = best['test_accuracy_interval']
  assert f'accuracy **0.7500** (95% interval {low:.3f}–{high:.3f})' in text
  # 0.5 of 24 validation images: Wilson's interval in both tables
  interval = wilson_by_formula(0.5, 24)
  with open(tmp_path / 'tune.csv') as f:
    assert [json.loads(row['95% interval']) for row in csv.DictReader(f)] == [
        pytest.approx(interval)] * 2
  assert f'| 0.5 | {interval[0]:.3f}–{interval[1]:.3f} |' in text
  assert ("Trial 1 scores within the best's 95% interval on validation: this validation "
          'split does not tell the two apart.') in text


def test_importance_fanova_cannot_compute_is_one_logged_line_the_rest_written(tmp_path):
  logs = []
  report = {'epoch': 1, 'accuracy': 0.75, 'balanced_accuracy': 0.7, 'num_images': 20,
            'intervals': {'accuracy': [0.6, 0.9]}}
  # the same settings, different values (e.g. nondeterministic GPU training): no variance to
  # share out among the parameters
  args = finished_tune(tmp_path, [(1e-3, 0.5), (1e-3, 0.625)], report)
  best = tune.write(*args, final=True, log=logs.append)
  [said] = logs
  assert said.startswith('parameter importance could not be computed (fANOVA raised '
                         'RuntimeError') and said.endswith(': no importance.png')
  assert not (tmp_path / 'importance.png').exists()
  assert best['trial'] == 1 and best['test_accuracy_interval'] == [0.6, 0.9]  # the report's
  text = (tmp_path / 'tune.md').read_text()
  assert '**Best: trial 1**' in text and 'Parameter importance could not be computed' in text
  assert "Trial 0 scores within the best's 95% interval on validation" in text
  apart = [SimpleNamespace(number=0, value=0.9), SimpleNamespace(number=1, value=0.5)]
  assert tune.alike(0, (0.8, 1.0), apart) == (
      "No other complete trial scores within the best's 95% interval on validation.\n")


def test_the_elpv_search_space_fits_the_schema_and_every_freeze_choice_the_model():
  space = tune.read_space('configs/elpv_levels.py')
  config = tune.check_space('configs/elpv_levels.py', ['model.pretrained=False'], space)
  model = create_model(config.model, 4)
  params = jax.eval_shape(model.init, jax.random.key(0),
                          jnp.zeros((1, 64, 64, 3), jnp.uint8))['params']
  trainable = []
  for before in space['freeze.before']['choices']:
    trial = config.copy_and_resolve_references()
    trial.freeze.before, trial.data.image_size = before, 64
    [phase] = phases(model, trial, params)
    trainable.append(sum(label == TRAINABLE for label in phase.labels.values()))
  assert trainable == sorted(trainable, reverse=True) and trainable[-1] > 0  # deeper, fewer
