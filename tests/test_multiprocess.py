"""Two CPU processes on localhost under jax.distributed -- a small copy of two hosts: the
same global batches as one process, the test report gathered (each image once) and written
once, process 1 quiet, and a kill of both mid-epoch resumed."""
import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from helpers import make_folder
from research.cli.main import main
from research.experiment.run import restore
from research.train.freeze import flat

ROOT = Path(__file__).resolve().parent.parent
SMALL = ['--config.model.name=simple_cnn', '--config.model.pretrained=False',
         '--config.freeze.before=', '--config.batch_size=4', '--config.num_epochs=2',
         '--config.data.image_size=32', '--config.gradcam.num_images=1',
         '--config.features.num_images=1', '--config.data.augment.rotation=10.0',
         '--config.data.augment.hflip=True', '--config.optimizer.name=sgd',
         '--config.optimizer.learning_rate=0.01']


@pytest.fixture(scope='module')
def folder(tmp_path_factory):
  return make_folder(tmp_path_factory.mktemp('images'), per_class=11)


def free_port() -> int:
  with socket.socket() as s:
    s.bind(('127.0.0.1', 0))
    return s.getsockname()[1]


def launch(args, port, script='research/cli/main.py', extra_env=None):
  """Both processes of a run; (Popen, Popen)."""
  procs = []
  for index in range(2):
    env = {**os.environ, 'PYTHONPATH': str(ROOT), 'JAX_COORDINATOR_ADDRESS': f'127.0.0.1:{port}',
           'JAX_NUM_PROCESSES': '2', 'JAX_PROCESS_ID': str(index),
           'RESEARCH_DISTRIBUTED_TIMEOUT': '60', **(extra_env or {})}
    procs.append(subprocess.Popen([sys.executable, script, *args], cwd=ROOT, env=env,
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE))
  return procs


def finish(procs, timeout=400):
  outs = [p.communicate(timeout=timeout) for p in procs]
  return [p.returncode for p in procs], [(o.decode(), e.decode()) for o, e in outs]


def command(folder, run_dir, *extra):
  return ['configs/efficientnet_adam.py', *SMALL, f'--config.data.path={folder}',
          f'--config.workdir={run_dir}', *extra]


def params(run_dir):
  return flat(restore(run_dir, 'last').variables['params'])


def assert_same_training(a, b):
  for path, value in params(a).items():
    np.testing.assert_allclose(params(b)[path], value, rtol=1e-5, atol=1e-6, err_msg=path)
  ra, rb = (json.loads((d / 'report.json').read_text()) for d in (a, b))
  assert (rb['num_images'], rb['epoch'], rb['accuracy']) == (ra['num_images'], ra['epoch'],
                                                            ra['accuracy'])
  assert rb['loss'] == pytest.approx(ra['loss'], rel=1e-5)


def test_two_processes_train_as_one_and_write_once(folder, tmp_path):
  single, multi = tmp_path / 'single', tmp_path / 'multi'
  assert main(command(folder, single)) == 0
  codes, outputs = finish(launch(command(folder, multi), free_port()))
  assert codes == [0, 0], outputs
  assert_same_training(single, multi)
  assert len((multi / 'metrics.jsonl').read_text().splitlines()) == 2  # written once
  assert outputs[1][0] == ''  # process 1 prints nothing
  assert 'test:    accuracy' in outputs[0][0]
  assert sorted(p.name for p in (multi / 'gradcam').iterdir()) == sorted(
      p.name for p in (single / 'gradcam').iterdir())


@pytest.mark.slow  # 1 min; kills and resumes of one process are in CI (test_kill_resume.py)
def test_both_killed_mid_epoch_and_resumed(folder, tmp_path):
  """Process 0 dies right after checkpoint 4 (epoch 2's first step: 3 steps per epoch; epoch
  1's best save finishes late), process 1 is killed with it; both resume and end as an
  uninterrupted single process, the best epoch's weights kept."""
  single, killed = tmp_path / 'single', tmp_path / 'killed'
  every = '--config.checkpoint.every_steps=1'
  assert main(command(folder, single, every)) == 0
  procs = launch(command(folder, killed, every), free_port(), 'tests/killed_in_save.py',
                 {'KILL_AT': 'after:4'})
  procs[0].wait(timeout=400)
  procs[1].send_signal(signal.SIGKILL)
  codes, _ = finish(procs)
  assert codes[0] == -signal.SIGKILL
  assert (killed / 'checkpoints' / '4').exists() and not (killed / 'report.json').exists()
  codes, outputs = finish(launch(command(folder, killed, every, '--resume', str(killed)),
                                 free_port()))
  assert codes == [0, 0], outputs
  assert 'resumed: from checkpoint 4' in outputs[0][0]
  assert_same_training(single, killed)


def test_an_unreachable_coordinator_is_one_line(folder, tmp_path):
  env = {**os.environ, 'PYTHONPATH': str(ROOT), 'JAX_COORDINATOR_ADDRESS': '127.0.0.1:9',
         'JAX_NUM_PROCESSES': '2', 'JAX_PROCESS_ID': '1', 'RESEARCH_DISTRIBUTED_TIMEOUT': '5'}
  proc = subprocess.run([sys.executable, 'research/cli/main.py', *command(folder, tmp_path / 'r')],
                        cwd=ROOT, env=env, capture_output=True, timeout=120, check=False)
  assert proc.returncode == 2
  assert proc.stderr.decode().strip().splitlines()[-1].startswith(
      'error: process 1 of 2 could not join the run at 127.0.0.1:9 within 5 s')
