""""Which backbone?" before training any: each backbone's frozen features of the train and
val images (computed once, unaugmented), a logistic-regression probe (scikit-learn) on
them, and the backbones ranked by validation accuracy, with the time each took.

A linear probe measures how separable a backbone's ImageNet features make the classes;
it ranks backbones for feature extraction (a frozen backbone + head), and is a guide,
not a verdict, for fine-tuning.
"""
import csv
import time
from pathlib import Path

import jax
import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import balanced_accuracy_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from research.config import ConfigError
from research import parallel
from research.experiment.prepare import Prepared, prepare, write_leaks
from research.inference import inference_of
from research.models import Task, create_model, get_spec
from research.train.state import init_variables, pretrained_file

COLUMNS = ('rank', 'model', 'weights', 'val accuracy', 'val balanced accuracy', 'train accuracy',
           'features', 'feature time (s)', 'probe time (s)', 'images/s')


def make_probe():
  """The probe, unfitted: standardised features, then logistic regression."""
  return make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))


def frozen_features(config, split: dict, log) -> tuple[dict, dict, float]:
  """({'train': (N, F), 'val': ...} frozen unaugmented features of `config.model.name`, the
  same of labels (N,), the seconds the features took)."""
  model = create_model(config.model, 1)
  variables = init_variables(model, config, jax.random.key(config.seed), log)
  mesh = parallel.make_mesh(config.batch_size)
  inference = inference_of(config, model, Task(2), parallel.replicate(variables, mesh), mesh)
  began = time.time()
  features = {s: inference.features(split[s], [None], None, config.feature_cache.memory_gb,
                                    f'{config.model.name} {s}')[0]
              for s in ('train', 'val')}
  labels = {s: np.asarray([label for _, label in split[s]]) for s in ('train', 'val')}
  return features, labels, time.time() - began


def probe_one(config, split: dict, log) -> dict:
  """The probe row of `config.model.name`."""
  features, labels, feature_seconds = frozen_features(config, split, log)
  began = time.time()
  classifier = make_probe()
  classifier.fit(features['train'], labels['train'])
  predicted = classifier.predict(features['val'])
  images = len(split['train']) + len(split['val'])
  return {'model': config.model.name,
          'weights': 'ImageNet' if config.model.pretrained else 'random init',
          'val accuracy': float((predicted == labels['val']).mean()),
          'val balanced accuracy': float(balanced_accuracy_score(labels['val'], predicted)),
          'train accuracy': float(classifier.score(features['train'], labels['train'])),
          'features': features['train'].shape[1], 'feature time (s)': feature_seconds,
          'probe time (s)': time.time() - began, 'images/s': images / feature_seconds}


def model_configs(config, models: list[str], log) -> list:
  """`config` once per model, every model's weights checked (and fetched) before any work;
  a model without pretrained weights gets random init (a baseline)."""
  for name in models:
    get_spec(name)
  configs = []
  for name in models:
    c = config.copy_and_resolve_references()
    c.model.name = name
    c.model.pretrained = c.model.pretrained and get_spec(name).weights is not None
    pretrained_file(c, log)
    configs.append(c)
  return configs


def prepare_with_val(config, command: str, log) -> Prepared:
  """The prepared data; a ConfigError naming `command` (what it does on the validation
  split) when that split is empty."""
  prepared = prepare(config, log)
  if not prepared.split['val']:
    raise ConfigError(f'{command} on the validation split, which is empty: give data.split a '
                      f'validation share, e.g. --config.data.split=0.7,0.15,0.15')
  return prepared


def probe(config, models: list[str], out: Path, log=print) -> list[dict]:
  """Ranked rows for `models`, written to out/probe.md and out/probe.csv. Every model's
  weights are checked before any work."""
  configs = model_configs(config, models, log)
  prepared = prepare_with_val(config, 'probe ranks backbones', log)
  split = prepared.split
  rows = [probe_one(c, split, log) for c in configs]
  rows.sort(key=lambda r: -r['val accuracy'])
  for rank, row in enumerate(rows, 1):
    row['rank'] = rank
  write(out, rows, f'{len(split["train"])} train / {len(split["val"])} val images')
  write_leaks(out, prepared.leaks)
  return rows


def write(out: Path, rows: list[dict], data: str) -> None:
  out.mkdir(parents=True, exist_ok=True)
  with open(out / 'probe.csv', 'w', newline='') as f:
    writer = csv.DictWriter(f, COLUMNS)
    writer.writeheader()
    writer.writerows(rows)
  cell = lambda v: f'{v:.4f}' if isinstance(v, float) and v <= 1 else (
      f'{v:.1f}' if isinstance(v, float) else str(v))
  lines = [f'# Linear probe: frozen ImageNet features + logistic regression ({data})', '',
           '| ' + ' | '.join(COLUMNS) + ' |', '|' + '---|' * len(COLUMNS)]
  lines += ['| ' + ' | '.join(cell(r[k]) for k in COLUMNS) + ' |' for r in rows]
  (out / 'probe.md').write_text('\n'.join(lines) + '\n')
