"""Runs that survive a cluster, and a loop that never waits: SIGTERM mid-epoch checkpoints and
stops, and the resumed run is bit-identical; one writer per run directory, and a killed
writer leaves no stale lock; a damaged newest checkpoint falls back to the one before;
worker processes make the same batches; the step loop reads nothing back between log
steps."""
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax._src.array import ArrayImpl

from helpers import make_folder, train_state
from research import rundir
from research.cli.main import main
from research.config import load
from research.data import run_batches
from research.train.loop import PREEMPTED_EXIT, PreemptionNotice, Training, build
from research.train.step import zero_totals

ROOT = Path(__file__).resolve().parent.parent
# 16 train images / batch 4 = 4 steps an epoch, 3 epochs, checkpoints at epoch ends
ARGS = ['configs/efficientnet_adam.py', '--config.model.name=simple_cnn',
        '--config.model.pretrained=False', '--config.freeze.before=', '--config.batch_size=4',
        '--config.gradcam.num_images=0', '--config.features.num_images=0',
        '--config.data.image_size=32', '--config.data.augment.rotation=10.0',
        '--config.data.augment.hflip=True', '--config.num_epochs=3',
        '--config.checkpoint.keep=3']


@pytest.fixture(scope='module')
def images(tmp_path_factory):
  return make_folder(tmp_path_factory.mktemp('images'), per_class=12)


def args(images, run_dir, *extra):
  return [*ARGS, f'--config.data.path={images}', f'--config.workdir={run_dir}', *extra]


@pytest.fixture(scope='module')
def baseline(images, tmp_path_factory):
  run = tmp_path_factory.mktemp('baseline') / 'run'
  assert main(args(images, run)) == 0
  return run


def history(run_dir: Path) -> list[dict]:
  timing = ('seconds', 'train_images_per_s')
  return [{k: v for k, v in json.loads(line).items() if k not in timing}
          for line in (run_dir / 'metrics.jsonl').read_text().splitlines()]


def assert_same_training(a: Path, b: Path) -> None:
  x, y = train_state(a), train_state(b)
  for (path, u), (_, v) in zip(jax.tree.leaves_with_path(x), jax.tree.leaves_with_path(y)):
    assert np.array_equal(np.asarray(u), np.asarray(v)), jax.tree_util.keystr(path)
  assert history(a) == history(b)


def test_sigterm_mid_epoch_checkpoints_stops_and_resumes_bit_identically(images, baseline,
                                                                         tmp_path):
  run = tmp_path / 'run'
  command = [sys.executable, '-m', 'research.cli.main', *args(images, run),
             '--config.log_every_steps=1']
  env = {**os.environ, 'PYTHONPATH': str(ROOT), 'PYTHONUNBUFFERED': '1'}
  proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, text=True)
  for line in proc.stdout:  # a plain line per step: the log is no terminal
    if line.startswith('epoch 2 step 1/4'):
      proc.send_signal(signal.SIGTERM)
      break
  proc.stdout.read()
  assert proc.wait() == PREEMPTED_EXIT
  last = proc.stderr.read().strip().splitlines()[-1]
  assert last.startswith('preempted: SIGTERM: stopped after step ')
  assert last.endswith(f' --resume {run}') and '--config.log_every_steps=1' in last
  assert (run / 'checkpoints').exists() and not (run / 'report.json').exists()
  assert main(args(images, run, '--resume', str(run))) == 0
  assert_same_training(baseline, run)


def test_one_writer_per_run_directory_and_no_stale_lock(images, baseline, tmp_path, capsys):
  run = tmp_path / 'run'
  shutil.copytree(baseline, run)
  before = (run / 'metrics.jsonl').read_text()
  with rundir.lock(run):  # this process trains there
    assert main(args(images, run, '--config.num_epochs=4', '--resume', str(run))) == 2
  err = capsys.readouterr().err
  assert err == (f'error: {run} is in use by process {os.getpid()} on {os.uname().nodename}: '
                 f'wait for it to finish, or resume once it has stopped\n')
  assert (run / 'metrics.jsonl').read_text() == before
  holder = subprocess.Popen([sys.executable, '-c', 'import sys, time; from research import '
                             'rundir; held = rundir.lock(sys.argv[1]); held.__enter__(); '
                             'print(1, flush=True); time.sleep(60)', str(run)], cwd=ROOT,
                            stdout=subprocess.PIPE, env={**os.environ, 'PYTHONPATH': str(ROOT)})
  assert holder.stdout.readline().strip() == b'1'
  with pytest.raises(rundir.RunDirError):
    with rundir.lock(run):
      pass
  holder.kill()  # SIGKILL: no clean-up runs
  holder.wait()
  with rundir.lock(run):  # the kernel released it
    pass


def test_a_damaged_newest_checkpoint_falls_back_to_the_one_before(images, baseline, tmp_path,
                                                                   capsys):
  run = tmp_path / 'run'
  shutil.copytree(baseline, run)
  damaged = run / 'checkpoints' / '12'
  for path in (damaged / 'state').rglob('*'):
    if path.is_file():
      path.write_bytes(b'\0garbage' * 8)
  capsys.readouterr()
  assert main(args(images, run, '--resume', str(run))) == 0
  out = capsys.readouterr().out
  assert (f'resume:  checkpoint {damaged} cannot be read (' in out
          and 'set aside as 12.damaged, resuming from checkpoint 8\n' in out)
  assert (run / 'checkpoints' / '12.damaged').is_dir()
  assert_same_training(baseline, run)  # epoch 3 trained again, to the same weights


def test_worker_processes_make_the_same_batches_from_any_start(images):
  config = load('configs/efficientnet_adam.py', ['data.image_size=16', 'batch_size=4'])
  records = [(str(p), i) for i, c in enumerate(('bright', 'dark'))
             for p in sorted((images / c).iterdir())][:12]
  batches = lambda workers, start: [
      b['image'].tobytes() + b['label'].tobytes() for b in run_batches(
          records, 2, start, config.data, 16, 4, config.seed, workers=workers)]
  alone = batches(0, 0)
  assert len(alone) == 6 and batches(2, 0) == alone
  assert batches(2, 4) == alone[4:]  # a resume mid-epoch 2


def test_a_run_with_worker_processes_trains_the_same(images, baseline, tmp_path):
  run = tmp_path / 'run'
  assert main(args(images, run, '--config.data.workers=2')) == 0
  assert_same_training(baseline, run)


def test_the_step_loop_reads_nothing_back_between_log_steps(images, tmp_path, monkeypatch):
  """Every read of a device value goes through jax.Array's _value: none in an epoch without
  log steps or saves, one handful at a log step whatever the step count."""
  config = load('configs/efficientnet_adam.py', [a.removeprefix('--config.') for a in ARGS[1:]])
  records = [(str(p), i) for i, c in enumerate(('bright', 'dark'))
             for p in sorted((images / c).iterdir())]
  setup = build(config, 2, steps=6, log=lambda _: None)
  reads = []
  value = ArrayImpl._value

  def counted(self):
    reads.append(1)
    return value.fget(self)

  def epoch_reads(log_every: int) -> int:
    config.log_every_steps = log_every
    training = Training(config, tmp_path / 'run', setup, records, None, lambda _: None)
    training.set_phase(1)
    batches = training.batches(0)
    state, totals = jax.tree.map(jnp.copy, setup.state), zero_totals()  # steps donate it
    jax.block_until_ready((state, totals))
    reads.clear()
    with monkeypatch.context() as patch:
      patch.setattr(ArrayImpl, '_value', property(counted))
      training.train_epoch(state, batches, 1, 0, totals, PreemptionNotice())
    batches.close()
    training.checkpoints.close()
    return len(reads)

  assert epoch_reads(0) == 0
  assert 0 < epoch_reads(3) <= 8  # at step 3 only (the epoch's end is the caller's)


def test_the_resume_line_names_what_continues_the_stopped_work():
  from research.cli.main import parse, resume_command  # pylint: disable=import-outside-toplevel
  line = lambda argv, run_dir: resume_command(parse(argv), argv, Path(run_dir))
  assert line(['configs/a.py', '--config.num_epochs=3'], 'runs/a') == (
      './run.sh configs/a.py --config.num_epochs=3 --resume runs/a')
  assert line(['configs/a.py', '--resume', 'runs/a'], 'runs/a') == (
      './run.sh configs/a.py --resume runs/a')
  assert line(['sweep', 'configs/a.py'], 'checkpoints/a-sweep/lr=0.1') == (
      './run.sh sweep --resume checkpoints/a-sweep')
  assert line(['tune', '--resume', 'checkpoints/t'], 'checkpoints/t/trial_3') == (
      './run.sh tune --resume checkpoints/t')
  assert line(['curve', 'configs/a.py', '--mode', 'finetune'], 'out/points/m-seed0-0.1') == (
      './run.sh curve configs/a.py --mode finetune --out out')
