"""A run killed with SIGKILL (mid-epoch, at an epoch end, during a checkpoint write) and
resumed ends bit-identical to the same run never interrupted; NaN losses stop or skip."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import jax
import numpy as np
import pytest

from helpers import train_state
from research import rundir
from research.cli.main import main
from research.experiment.run import restore
from research.train.freeze import flat

ROOT = Path(__file__).resolve().parent.parent
# 16 train images / batch 4 = 4 steps per epoch, 3 epochs, a checkpoint every step.
ARGS = ['configs/efficientnet_adam.py', '--config.model.name=simple_cnn',
        '--config.model.pretrained=False', '--config.freeze.before=', '--config.batch_size=4',
        '--config.gradcam.num_images=0', '--config.data.augment.rotation=10.0',
        '--config.data.augment.hflip=True', '--config.num_epochs=3',
        '--config.checkpoint.every_steps=1', '--config.checkpoint.keep=2',
        '--config.data.image_size=32']


def command(folder, run_dir, *extra):
  return [sys.executable, '-m', 'research.cli.main', *ARGS, f'--config.data.path={folder}',
          f'--config.workdir={run_dir}', *extra]


def kill_when(cmd, condition, timeout=300, cwd=ROOT) -> bool:
  """Runs `cmd` in `cwd`; SIGKILLs it as soon as `condition()` holds. False if it finished
  first."""
  env = {**os.environ, 'PYTHONPATH': str(ROOT)}
  proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.DEVNULL,
                          stderr=subprocess.PIPE)
  deadline = time.time() + timeout
  while proc.poll() is None and time.time() < deadline:
    if condition():
      os.kill(proc.pid, signal.SIGKILL)
      proc.wait()
      return True
    time.sleep(0.0005)
  assert proc.wait() == 0, proc.stderr.read().decode()
  return False


def steps_saved(run_dir: Path) -> list[int]:
  directory = run_dir / 'checkpoints'
  return sorted(int(p.name) for p in directory.iterdir() if p.name.isdigit()) if (
      directory.exists()) else []


def kill_at(cmd, when: str, step: int, env: dict | None = None) -> None:
  """Runs `cmd` (a research.cli.main command line) so that it dies by SIGKILL `when`
  ('during' or 'after') the checkpoint of `step` is written (see killed_in_save.py)."""
  proc = subprocess.run(
      [sys.executable, str(ROOT / 'tests' / 'killed_in_save.py'), *cmd[3:]], cwd=ROOT,
      env={**os.environ, **(env or {}), 'KILL_AT': f'{when}:{step}', 'PYTHONPATH': str(ROOT)},
      stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=False)
  assert proc.returncode == -signal.SIGKILL, proc.stderr.decode()


def history(run_dir: Path) -> list[dict]:
  timing = ('seconds', 'train_images_per_s')
  return [{k: v for k, v in json.loads(line).items() if k not in timing}
          for line in (run_dir / 'metrics.jsonl').read_text().splitlines()]


# Gradual unfreezing: the head alone, then conv_1 too from epoch 2, then everything at half
# the rate from epoch 3.
PHASES = ['--config.freeze.before=head',
          "--config.freeze.phases=((2, 'backbone/conv_1', 1.0), (3, 'backbone', 0.5))"]


def test_killed_at_several_points_and_resumed_equals_uninterrupted(folder, tmp_path):
  """Killed mid-epoch 1, during the write of checkpoint 6 (so resumed just after the first
  step of phase 2 was saved) and just after epoch 2 ended (resumed into phase 3)."""
  baseline, killed = tmp_path / 'baseline', tmp_path / 'killed'
  assert not kill_when(command(folder, baseline, *PHASES), lambda: False)

  resume = command(folder, killed, *PHASES, '--resume', str(killed))
  kill_at(command(folder, killed, *PHASES), 'after', 3)  # mid-epoch 1
  assert max(steps_saved(killed)) == 3
  kill_at(resume, 'during', 6)  # during the write of checkpoint 6
  assert max(steps_saved(killed)) == 5  # the first step of phase 2
  assert any(p.name.startswith('6.') and 'tmp' in p.name
             for p in (killed / 'checkpoints').iterdir())
  kill_at(resume, 'after', 8)  # just after epoch 2 ended
  assert max(steps_saved(killed)) == 8
  assert not kill_when(resume, lambda: False)

  a, b = train_state(baseline), train_state(killed)
  leaves_a, leaves_b = jax.tree.leaves_with_path(a), jax.tree.leaves_with_path(b)
  assert [p for p, _ in leaves_a] == [p for p, _ in leaves_b]
  for (path, x), (_, y) in zip(leaves_a, leaves_b):  # params, Adam moments, step
    assert np.array_equal(np.asarray(x), np.asarray(y)), jax.tree_util.keystr(path)
  assert int(a.step) == 12
  assert history(baseline) == history(killed)
  assert steps_saved(killed) == [11, 12]  # checkpoint.keep=2
  best_a, best_b = restore(baseline), restore(killed)  # best saves finish late in the kills
  assert (best_b.checkpoint, best_b.epoch) == (best_a.checkpoint, best_a.epoch)
  for path, value in flat(best_a.variables['params']).items():
    assert np.array_equal(np.asarray(value), np.asarray(flat(best_b.variables['params'])[path]))


def test_on_two_devices_a_run_repeats_and_a_killed_run_resumes_bit_identically(folder, tmp_path):
  """./run.sh's default setup, every core a CPU device and the batch split over them (batch
  8: two devices of 4 images): two uninterrupted runs end bit-identical, and a run killed
  mid-epoch 2 and resumed ends bit-identical to them."""
  two = {**os.environ, 'JAX_NUM_CPU_DEVICES': '2', 'PYTHONPATH': str(ROOT)}
  args = ['--config.batch_size=8', '--config.num_epochs=2']  # 2 steps an epoch
  runs = {name: tmp_path / name for name in ('first', 'again', 'killed')}
  for name in ('first', 'again'):
    out = subprocess.run(command(folder, runs[name], *args), cwd=ROOT, env=two, check=True,
                         capture_output=True, text=True).stdout
    assert '2 cpu device(s)' in out and 'steps/epoch of 8' in out
  kill_at(command(folder, runs['killed'], *args), 'after', 3, env={'JAX_NUM_CPU_DEVICES': '2'})
  assert max(steps_saved(runs['killed'])) == 3
  subprocess.run(command(folder, runs['killed'], *args, '--resume', str(runs['killed'])),
                 cwd=ROOT, env=two, check=True, capture_output=True)
  states = {name: train_state(run) for name, run in runs.items()}
  for other in ('again', 'killed'):
    for (path, x), (_, y) in zip(jax.tree.leaves_with_path(states['first']),
                                 jax.tree.leaves_with_path(states[other])):
      assert np.array_equal(np.asarray(x), np.asarray(y)), (other, jax.tree_util.keystr(path))
    assert history(runs['first']) == history(runs[other])
  assert int(states['first'].step) == 4


def test_a_file_killed_mid_write_keeps_what_it_held(tmp_path, monkeypatch):
  """config.json, split.json, metrics.jsonl, tune.json, point.json ... are written whole or
  not at all (a config.json that exists marks a run that can resume): a write stopped
  halfway, as a kill stops it, leaves the file as it was."""
  path = tmp_path / 'config.json'
  path.write_text('{"old": 1}')
  real = Path.write_text

  def stops_halfway(self, text, *args, **kwargs):
    real(self, text[:len(text) // 2], *args, **kwargs)
    raise KeyboardInterrupt

  monkeypatch.setattr(Path, 'write_text', stops_halfway)
  with pytest.raises(KeyboardInterrupt):
    rundir.write_whole(path, '{"new": 2, "longer": true}')
  monkeypatch.undo()
  assert path.read_text() == '{"old": 1}'
  assert [p.name for p in tmp_path.iterdir()] == ['config.json']
  rundir.write_whole(path, '{"new": 2}')
  assert path.read_text() == '{"new": 2}'


def test_a_nan_loss_stops_naming_the_step_and_the_kept_checkpoint(folder, tmp_path, capsys):
  run = tmp_path / 'run'
  code = main([*ARGS, f'--config.data.path={folder}', f'--config.workdir={run}',
               '--config.optimizer.learning_rate=1e30'])
  err = capsys.readouterr().err.strip().splitlines()[-1]
  assert code == 2
  kept = steps_saved(run)[-1]
  assert err.startswith('error: loss or gradient is ')
  assert f'at step {kept + 1} (last finite loss ' in err
  assert err.endswith(f'the last good checkpoint {run / "checkpoints" / str(kept)} is kept: '
                      f'lower --config.optimizer.learning_rate, or set '
                      f'--config.on_nonfinite=skip')


def test_skipping_non_finite_steps_keeps_the_state_finite(folder, tmp_path, capsys):
  """The steps after the first overflow are skipped; the diverged weights (finite, ~1e30)
  then give non-finite test predictions, which the report refuses in one line."""
  run = tmp_path / 'run'
  code = main([*ARGS, f'--config.data.path={folder}', f'--config.workdir={run}',
               '--config.optimizer.learning_rate=1e30', '--config.on_nonfinite=skip'])
  assert [r['skipped_steps'] for r in history(run)] == [3, 4, 4]
  state = train_state(run)
  assert int(state.step) == 1  # only the first update was applied
  assert all(np.isfinite(v).all() for v in flat(state.params).values())
  assert code == 2
  assert capsys.readouterr().err.strip().splitlines()[-1].endswith(
      f'test predictions are not finite: the weights of {run} diverged; lower '
      f'--config.optimizer.learning_rate')


@pytest.mark.slow
def test_killed_at_20_random_points_and_resumed_equals_uninterrupted(folder, tmp_path):
  """20 kills at random steps of 6 epochs x 4 steps: mid-epoch, during a save, at epoch ends."""
  args = ['--config.num_epochs=6', '--config.checkpoint.keep=3']
  baseline, killed = tmp_path / 'baseline', tmp_path / 'killed'
  assert not kill_when(command(folder, baseline, *args), lambda: False)
  rng = np.random.default_rng(0)
  points = sorted(rng.choice(np.arange(1, 24), 20, replace=False).tolist())
  first = True
  for step in points:
    when = str(rng.choice(['during', 'after']))
    kill_at(command(folder, killed, *args, *([] if first else ['--resume', str(killed)])),
            when, step)
    assert max(steps_saved(killed) or [0]) == (step if when == 'after' else step - 1)
    first = False
  assert not kill_when(command(folder, killed, *args, '--resume', str(killed)), lambda: False)
  a, b = train_state(baseline), train_state(killed)
  for (path, x), (_, y) in zip(jax.tree.leaves_with_path(a), jax.tree.leaves_with_path(b)):
    assert np.array_equal(np.asarray(x), np.asarray(y)), jax.tree_util.keystr(path)
  assert history(baseline) == history(killed)
