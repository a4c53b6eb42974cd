"""The Python API and the notebook: research.fit / load_run / Run on a tiny config, and
examples/transfer_learning.ipynb executed by a real kernel (nbclient) on it."""
import json
from pathlib import Path

import nbformat
import numpy as np
import pytest
from nbclient import NotebookClient

import research
from helpers import make_folder
from research.errors import UserError
from test_kill_resume import ROOT

TINY = '''from research.config import base_config

def get_config():
  c = base_config()
  c.model.name, c.model.pretrained = 'simple_cnn', False
  c.batch_size, c.num_epochs, c.data.image_size = 4, 1, 32
  c.gradcam.num_images, c.features.num_images = 1, 0
  c.data.path = {folder!r}
  return c
'''


@pytest.fixture(scope='module')
def tiny(tmp_path_factory):
  root = tmp_path_factory.mktemp('api')
  folder = make_folder(root / 'images', per_class=10)
  (root / 'tiny.py').write_text(TINY.format(folder=str(folder)))
  return root / 'tiny.py'


def test_fit_look_predict_explain_load_and_resume(tiny, tmp_path):
  lines = []
  run = research.fit(str(tiny), workdir=str(tmp_path / 'run'), optimizer__learning_rate=3e-3,
                     log=lines.append)
  assert run.dir == tmp_path / 'run' and lines[0] == f'run dir: {tmp_path / "run"}'
  assert run.config.optimizer.learning_rate == 3e-3
  assert run.report == json.loads((tmp_path / 'run' / 'report.json').read_text())
  assert [p.name for p in run.show()] == ['curves.png', 'roc.png', 'confusion.png',
                                          'reliability.png']
  images = [p for p, _ in run.split['test']]
  probabilities = run.predict(images)
  saved = np.load(tmp_path / 'run' / 'test_predictions.npz')
  np.testing.assert_allclose(probabilities, saved['probs'], atol=1e-6)  # as the report's
  assert [p.name for p in run.gradcam(images[0])] == [f'{Path(images[0]).stem}.png']
  with pytest.raises(UserError, match="no figure 'roc_curve': choose from curves, roc, "):
    run.show('roc_curve')

  again = research.load_run(tmp_path / 'run')
  assert again.report == run.report and len(again.history) == 1
  longer = research.fit(str(tiny), resume=tmp_path / 'run', num_epochs=2, log=lines.append)
  assert len(longer.history) == 2 and longer.config.optimizer.learning_rate == 3e-3
  with pytest.raises(UserError, match='optimizer.name differ'):
    research.fit(str(tiny), resume=tmp_path / 'run', optimizer__name='sgd')
  with pytest.raises(UserError, match='is not a run directory'):
    research.load_run(tmp_path / 'nothing')


def test_the_notebook_runs_on_a_tiny_config(tiny, tmp_path):
  notebook = nbformat.read(ROOT / 'examples' / 'transfer_learning.ipynb', as_version=4)
  [parameters] = [c for c in notebook.cells if 'parameters' in c.metadata.get('tags', [])]
  parameters.source = f'CONFIG = {str(tiny)!r}\nKEYS = {{}}'
  NotebookClient(notebook, timeout=600, kernel_name='python3',
                 resources={'metadata': {'path': str(tmp_path)}}).execute()
  outputs = [o for c in notebook.cells if c.cell_type == 'code' for o in c.outputs]
  assert not [o for o in outputs if o.output_type == 'error']
  text = ''.join(o.get('text', '') for o in outputs)
  assert 'test accuracy ' in text and 'smallest detectable difference' in text
  assert '| onnx | `model.onnx` |' in text and '| 100.00% |' in text  # exported, parity shown
  assert sum('image/png' in o.get('data', {}) for o in outputs) == 5  # 4 figures, Grad-CAM
  assert len(list((tmp_path / 'checkpoints').iterdir())) == 1
