"""Data parallel over 2 simulated CPU devices computes what 1 device does."""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).parent


def run(devices: int, out: Path) -> dict:
  env = {**os.environ, 'XLA_FLAGS': f'--xla_force_host_platform_device_count={devices}',
         'PYTHONPATH': str(HERE.parent)}
  subprocess.run([sys.executable, str(HERE / 'sharded_train.py'), str(out)], env=env, check=True)
  return dict(np.load(out))


def test_two_devices_match_one(tmp_path):
  one, two = run(1, tmp_path / 'one.npz'), run(2, tmp_path / 'two.npz')
  assert (int(one.pop('devices')), int(two.pop('devices'))) == (1, 2)
  assert one.keys() == two.keys()
  for key in one:
    np.testing.assert_allclose(one[key], two[key], atol=2e-5, rtol=1e-4, err_msg=key)
