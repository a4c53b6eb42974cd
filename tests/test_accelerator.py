"""The accelerator check (`./run.sh bench --accelerator`) runs end to end on tiny settings
here (everything but the device), replacing its own section of BENCHMARKS.md only."""
from research.bench.accelerator import SECTION
from research.cli.main import main


def test_the_accelerator_check_runs_and_writes_its_section(tmp_path, capsys):
  out = tmp_path / 'BENCHMARKS.md'
  out.write_text(f'# Benchmarks\n\n## Train step\n\nkept\n\n{SECTION}\n\nold\n\n## After\n\nkept too\n')
  assert main(['bench', '--smoke', '--out', str(out)]) == 0
  text = out.read_text()
  assert text.startswith('# Benchmarks\n\n## Train step\n\nkept\n\n## Accelerator\n')
  assert text.endswith('\n## After\n\nkept too\n') and 'old' not in text
  assert '| simple_cnn | 4 |' in text and 'Input pipeline at 32 px with ' in text
  assert 'The main command (smoke): ' in text and ', test accuracy ' in text
  assert main(['bench', '--accelerator', '--out', str(out)]) == 2  # no GPU here: one line
  assert capsys.readouterr().err.startswith('error: no accelerator: jax sees [')
