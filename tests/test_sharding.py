"""Data parallel over 2 simulated CPU devices computes what 1 device does."""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

import sharded_train

HERE = Path(__file__).parent


def run(devices: int, out: Path) -> dict:
  env = {**os.environ, 'JAX_NUM_CPU_DEVICES': str(devices), 'PYTHONPATH': str(HERE.parent)}
  subprocess.run([sys.executable, str(HERE / 'sharded_train.py'), str(out)], env=env, check=True)
  return dict(np.load(out))


def test_two_devices_match_one(tmp_path):
  one, two = sharded_train.train(), run(2, tmp_path / 'two.npz')  # this process: 1 device
  assert (int(one.pop('devices')), int(two.pop('devices'))) == (1, 2)
  assert one.keys() == two.keys()
  for key in one:
    np.testing.assert_allclose(one[key], two[key], atol=2e-5, rtol=1e-4, err_msg=key)


def test_every_core_is_a_device_as_many_as_divide_the_batch(tmp_path):
  """Without JAX_NUM_CPU_DEVICES, ./run.sh makes each core a device and a run takes as many
  as divide its batch into parts of at least MIN_PER_DEVICE images."""
  from research.parallel import MIN_PER_DEVICE  # pylint: disable=import-outside-toplevel
  env = {k: v for k, v in os.environ.items() if k != 'JAX_NUM_CPU_DEVICES'}
  script = ('import sys; from research import parallel; parallel.use_cpu_cores(); import jax; '
            'print(len(jax.devices()), *(parallel.make_mesh(b).size for b in (1, 7, 8, 20, 24)))')
  out = subprocess.run([sys.executable, '-c', script], env={**env, 'PYTHONPATH': str(HERE.parent)},
                       capture_output=True, text=True, check=True).stdout.split()
  cores = os.cpu_count()
  expect = lambda b: max(k for k in range(1, cores + 1)
                         if b % k == 0 and (k == 1 or b // k >= MIN_PER_DEVICE))
  assert [int(x) for x in out] == [cores, *(expect(b) for b in (1, 7, 8, 20, 24))]
  with_env = subprocess.run([sys.executable, '-c', script], capture_output=True, text=True,
                            env={**env, 'JAX_NUM_CPU_DEVICES': '1', 'PYTHONPATH': str(HERE.parent)},
                            check=True).stdout.split()
  assert with_env == ['1', '1', '1', '1', '1', '1']  # JAX's own setting decides
