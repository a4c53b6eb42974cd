"""`./run.sh --help` names every command; `./run.sh COMMAND --help` works for each, exit 0,
its usage line first and every argument it takes named."""
import re

import pytest

from research.cli.main import COMMANDS, main

ARGUMENTS = {
    'train': ['CONFIG.py[:VARIANT]', '--resume RUN_DIR', '--seeds N'],
    'sweep': ['CONFIG.py', '--resume SWEEP_DIR', '--seeds N'],
    'compare': ['RUN_DIR', '--baseline RUN_DIR', '--out DIR'],
    'eval': ['RUN_DIR', '--checkpoint best|last'],
    'gradcam': ['RUN_DIR', 'IMAGE', '--layer PATH', '--class INDEX', '--checkpoint best|last'],
    'features': ['RUN_DIR', 'IMAGE', '--checkpoint best|last'],
    'predict': ['RUN_DIR', 'IMAGE_OR_FOLDER', '--out CSV', '--checkpoint best|last'],
    'export': ['RUN_DIR', '--format FORMAT[,FORMAT]|all', '--out DIR', '--checkpoint best|last'],
    'probe': ['--models NAME,NAME,...', 'CONFIG.py', '--out DIR'],
    'curve': ['CONFIG.py', '--models NAME,NAME,...', '--sizes S,S,...', '--seeds SEEDS',
              '--target ACCURACY', '--mode probe|finetune', '--out DIR'],
    'tune': ['CONFIG.py[:VARIANT]', '--trials N', '--resume TUNE_DIR', '--out DIR'],
    'bench': ['--rows ROWS', '--steps STEPS', '--epochs EPOCHS', '--out OUT', '--sections S,S,...',
              '--timm-train PATH|URL', '--accelerator', '--smoke'],
}


def test_the_top_help_names_every_command(capsys):
  assert main(['--help']) == 0
  out = capsys.readouterr().out
  assert out.startswith('usage: ./run.sh COMMAND ...')
  assert set(ARGUMENTS) == set(COMMANDS)
  for name, (summary, *_) in COMMANDS.items():  # each with its summary's first word
    assert re.search(rf'^    {name} +{re.escape(summary.split()[0])} ', out, re.M), name
  assert out.rstrip().endswith('./run.sh test [PYTEST ARGS]  the test suite (run.sh runs pytest)')


@pytest.mark.parametrize('name', list(COMMANDS))
def test_every_command_has_help_naming_its_arguments(name, capsys):
  assert main([name, '--help']) == 0
  out = capsys.readouterr().out
  summary, usage, _, _, takes_overrides = COMMANDS[name]
  assert out.startswith(f'usage: ./run.sh {name} {usage}\n')
  assert ' '.join(summary.split()) in ' '.join(out.split())
  for argument in ARGUMENTS[name]:
    assert f'  {argument}' in out, argument  # listed with its own help line
  assert ('--config.KEY=VALUE sets any key of the config' in out) == takes_overrides
