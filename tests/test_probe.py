"""`./run.sh probe`: frozen features once per backbone, a logistic-regression probe each,
ranked by validation accuracy; equal to the probe computed by hand."""
import csv

import jax
import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from helpers import make_folder
from research.cli.main import main
from research.config import base_config
from research.data import load_image
from research.experiment.prepare import prepare
from research.models import create_model
from research.train.state import init_variables

SIZE = ['--config.data.image_size=64', '--config.batch_size=8']


def test_probe_ranks_backbones_by_a_logistic_regression_on_their_features(tmp_path, capsys):
  folder = make_folder(tmp_path / 'images', per_class=20)
  assert main(['probe', '--models', 'simple_cnn,mobilenet_v2', f'--config.data.path={folder}',
               *SIZE, '--out', str(tmp_path / 'probe')]) == 0
  out = capsys.readouterr().out
  assert out.splitlines()[-1] == f'probe:   {tmp_path}/probe/probe.md (probe.csv)'
  rows = list(csv.DictReader(open(tmp_path / 'probe' / 'probe.csv')))
  assert sorted(r['model'] for r in rows) == ['mobilenet_v2', 'simple_cnn']
  assert [float(r['val accuracy']) for r in rows] == sorted(
      (float(r['val accuracy']) for r in rows), reverse=True)
  assert {r['model']: r['weights'] for r in rows} == {'mobilenet_v2': 'ImageNet',
                                                       'simple_cnn': 'random init'}
  # mobilenet_v2's row, by hand: ImageNet features of the same split, the same probe
  config = base_config()
  config.model.name, config.data.path, config.data.image_size = 'mobilenet_v2', str(folder), 64
  split = prepare(config, lambda _: None).split
  model = create_model(config.model, 1)
  variables = init_variables(model, config, jax.random.key(0), log=lambda _: None)
  apply = jax.jit(lambda v, x: model.apply(v, x, method='features'))
  features = {s: np.asarray(apply(variables, np.stack([load_image(p, 64) for p, _ in split[s]])))
              for s in ('train', 'val')}
  labels = {s: [label for _, label in split[s]] for s in ('train', 'val')}
  probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
  expected = probe.fit(features['train'], labels['train']).score(features['val'], labels['val'])
  row = next(r for r in rows if r['model'] == 'mobilenet_v2')
  assert float(row['val accuracy']) == expected
  assert int(row['features']) == 1280


def test_probe_without_models_says_how(capsys):
  assert main(['probe']) == 2
  assert capsys.readouterr().err == (
      'error: usage: ./run.sh probe --models NAME,NAME,... [CONFIG.py] [--config.KEY=VALUE ...] '
      '[--out DIR]\n')
