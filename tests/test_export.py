"""./run.sh export: the classifier as files that run without this repository, parity proved
on the run's test images at export time; a failed parity leaves nothing that looks valid."""
import json
import subprocess
import sys

import numpy as np
import pytest

from helpers import make_folder
from research.cli.main import main
from research.experiment import export
from research.experiment.run import restore
from research.export import graph
from test_kill_resume import ROOT

TINY = ['configs/efficientnet_adam.py', '--config.model.name=simple_cnn',
        '--config.model.pretrained=False', '--config.freeze.before=', '--config.batch_size=4',
        '--config.num_epochs=1', '--config.data.image_size=32', '--config.gradcam.num_images=0',
        '--config.features.num_images=0']


@pytest.fixture(scope='module')
def trained_run(tmp_path_factory):
  root = tmp_path_factory.mktemp('export')
  folder = make_folder(root / 'images', per_class=12, classes=('bright', 'dark', 'mid'))
  assert main([*TINY, f'--config.data.path={folder}', f'--config.workdir={root / "run"}']) == 0
  return root / 'run'


def test_stablehlo_export_runs_with_jax_alone_and_matches(trained_run, capsys):
  assert main(['export', str(trained_run), '--format', 'stablehlo']) == 0
  out = trained_run / 'export'
  assert sorted(p.name for p in out.iterdir()) == ['export.md', 'model.json', 'model.stablehlo']
  model = json.loads((out / 'model.json').read_text())
  trained = restore(trained_run)
  assert model['class_names'] == list(trained.class_names) and model['task'] == 'softmax'
  assert model['input']['shape'] == ['batch', 32, 32, 3] and model['input']['dtype'] == 'uint8'
  assert model['test_metrics']['accuracy'] == json.loads(
      (trained_run / 'report.json').read_text())['accuracy']
  assert capsys.readouterr().out.splitlines()[1].startswith(
      'stablehlo: model.stablehlo (0.1 MiB), top-1 agreement 100.00% on 6 test images')

  # another process, jax alone: `research` cannot be imported there
  images = export.test_arrays(trained)
  np.save(out.parent / 'images.npy', images)
  script = ('import sys; sys.modules["research"] = None\n'
            'import jax, numpy as np\n'
            f'data = open({str(out / "model.stablehlo")!r}, "rb").read()\n'
            'fn = jax.export.deserialize(bytearray(data))\n'
            f'images = np.load({str(out.parent / "images.npy")!r})\n'
            'np.save(sys.argv[1], np.asarray(fn.call(images[:5])))\n')
  subprocess.run([sys.executable, '-c', script, str(out.parent / 'probs.npy')], check=True)
  _, probs, _ = trained.inference.predict(trained.split['test'][:5])
  np.testing.assert_allclose(np.load(out.parent / 'probs.npy'), probs, atol=1e-5)


def test_a_failed_parity_writes_nothing(trained_run, tmp_path, monkeypatch, capsys):
  real = export.formats()['stablehlo']
  off = export.Format(real.suffix, real.export, lambda data, x: real.run(data, x)[:, ::-1],
                      real.runtime)
  monkeypatch.setattr(export, 'formats', lambda: {'stablehlo': off})
  assert main(['export', str(trained_run), '--out', str(tmp_path / 'out')]) == 2
  err = capsys.readouterr().err
  assert err.startswith('error: stablehlo export does not compute what the JAX model does '
                        '(top-1 agreement ') and err.endswith(
                            f'nothing was written to {tmp_path / "out"}\n')
  assert not (tmp_path / 'out').exists()
  assert not list(tmp_path.glob('.export-*')) and not list(trained_run.glob('.export-*'))


def test_an_unknown_format_is_named(trained_run, capsys):
  assert main(['export', str(trained_run), '--format', 'pickle']) == 2
  assert capsys.readouterr().err.startswith('error: --format pickle: choose from stablehlo')


def test_parity_measures_top1_and_the_largest_difference():
  a = np.array([[0.9, 0.1], [0.4, 0.6]])
  assert graph.parity(a, a + [[0, 0], [0.2, -0.2]]) == {
      'images': 2, 'top1_agreement': 0.5, 'max_abs_diff': pytest.approx(0.2), 'bound': 1e-4}
  assert graph.passed(graph.parity(a, a + 5e-5)) and not graph.passed(graph.parity(a, a + 2e-4))


def test_the_stablehlo_example_classifies_as_predict_without_this_code(trained_run, tmp_path):
  """examples/classify_stablehlo.py in a process where `research` cannot be imported gives
  ./run.sh predict's classes and probabilities (within the float32 bound)."""
  assert main(['export', str(trained_run), '--format', 'stablehlo',
               '--out', str(tmp_path / 'export')]) == 0
  folder = trained_run.parent / 'images' / 'dark'
  assert main(['predict', str(trained_run), str(folder), '--out', str(tmp_path / 'p.csv')]) == 0
  blocked = ('import runpy, sys; sys.modules["research"] = None; sys.argv = sys.argv[1:]; '
             'runpy.run_path(sys.argv[0], run_name="__main__")')
  out = subprocess.run([sys.executable, '-c', blocked, str(ROOT / 'examples' /
                        'classify_stablehlo.py'), str(tmp_path / 'export'), str(folder)],
                       check=True, capture_output=True, text=True, cwd=tmp_path).stdout
  rows = lambda text: [line.split(',') for line in text.strip().splitlines()]
  theirs, ours = rows(out), rows((tmp_path / 'p.csv').read_text())
  assert theirs[0] == ours[0] and [r[:2] for r in theirs] == [r[:2] for r in ours]
  np.testing.assert_allclose(np.array([r[2:] for r in theirs[1:]], float),
                             np.array([r[2:] for r in ours[1:]], float), atol=1e-4)
