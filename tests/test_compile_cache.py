"""JAX's persistent compilation cache: a first run fills it, a second run of the same
configuration compiles nothing new (every step is loaded from it)."""
import os
import subprocess
import sys

from helpers import make_folder

ARGS = ['configs/efficientnet_adam.py', '--config.model.name=simple_cnn',
        '--config.model.pretrained=False', '--config.freeze.before=', '--config.batch_size=4',
        '--config.num_epochs=1', '--config.gradcam.num_images=0',
        '--config.features.num_images=0', '--config.data.image_size=32']


def test_a_second_run_loads_every_compiled_step_from_the_cache(tmp_path):
  folder = make_folder(tmp_path / 'images', per_class=6)
  env = {k: v for k, v in os.environ.items()
         if k not in ('JAX_COMPILATION_CACHE_DIR', 'RESEARCH_CACHE')}
  env['XDG_CACHE_HOME'] = str(tmp_path / 'xdg')
  # every compile kept: with the 0.2 s threshold, a step compiled in 0.19 s by the first run
  # and in 0.21 s by the second (a busy machine) would count as new
  env['JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS'] = '0'
  cache = tmp_path / 'xdg' / 'research' / 'jax'
  entries = []
  for run in ('first', 'second'):
    subprocess.run([sys.executable, '-m', 'research.cli.main', *ARGS,
                    f'--config.data.path={folder}', f'--config.workdir={tmp_path / run}'],
                   env=env, check=True, capture_output=True)
    entries.append(sorted(p.name for p in cache.iterdir()))
  assert any(name.startswith('jit_train_step-') for name in entries[0])
  assert entries[1] == entries[0]  # nothing compiled the second time
