"""The benchmark's references do the same work as this project: per row, the same number of
trainable parameters, and no gradient reaches a frozen one."""
import re

import numpy as np
import pytest
import torch

from research.bench import rounds, torch_models
from research.bench.measure import jax_trainable
from research.bench.rows import ROWS
from research.cli import bench

SIZE = 96  # the counts do not depend on the input size; InceptionV3 needs 75 px at least
TORCH_ROWS = [r for r in ROWS if not r.reference.startswith('Keras')]
KERAS_ROWS = [r for r in ROWS if r.reference.startswith('Keras')]


@pytest.mark.parametrize('row', TORCH_ROWS, ids=lambda r: r.label)
def test_torch_reference_trains_what_the_project_trains(row):
  net = torch_models.reference(row.model, SIZE, row.torch_freeze)
  assert torch_models.trainable_parameters(net) == jax_trainable(row, SIZE)
  torch.nn.functional.binary_cross_entropy_with_logits(
      net(torch.rand(2, 3, SIZE, SIZE))[:, 0], torch.tensor([0.0, 1.0])).backward()
  got_gradient = {n for n, p in net.named_parameters() if p.grad is not None}
  assert got_gradient == {n for n, p in net.named_parameters() if p.requires_grad}


@pytest.mark.slow  # building Keras's NASNetMobile takes ~20-50 s
@pytest.mark.parametrize('row', KERAS_ROWS, ids=lambda r: r.label)
def test_keras_reference_trains_what_the_project_trains(row):
  net = torch_models.keras_reference(row.model, SIZE, row.torch_freeze)
  assert torch_models.trainable_parameters(net) == jax_trainable(row, SIZE)


def test_a_module_with_children_is_frozen_too():
  """efficientnet_lite_pytorch's convolutions own a weight and a `static_padding` child:
  freezing only leaf modules left them training (the reference's old bug)."""
  net = torch_models.reference('efficientnet_lite0', SIZE, '_blocks.12')
  stem = dict(net.named_modules())['_conv_stem']
  assert list(stem.children()) and not stem.weight.requires_grad
  assert not stem.training and dict(net.named_modules())['_blocks.0'].training is False
  assert dict(net.named_modules())['_blocks.12'].training


def test_the_end_to_end_reference_trains_the_same_parameters_on_the_runs_split(folder, tmp_path):
  """research.bench.torch_epoch, the PyTorch user's script, on a run directory's split."""
  import json  # pylint: disable=import-outside-toplevel
  import subprocess  # pylint: disable=import-outside-toplevel
  import sys  # pylint: disable=import-outside-toplevel

  from research.data import load_source, make_split, save_split, split_records  # pylint: disable=import-outside-toplevel
  from research.config import base_config  # pylint: disable=import-outside-toplevel
  config = base_config()
  config.data.path = str(folder)
  source = load_source(config.data)
  save_split(tmp_path / 'split.json', source,
             split_records(source, make_split(source, (0.5, 0.25, 0.25), 0)))
  out = subprocess.run([sys.executable, '-m', 'research.bench.torch_epoch', str(tmp_path),
                        '--epochs', '1', '--batch', '4', '--workers', '0'],
                       capture_output=True, text=True, check=True).stdout
  result = json.loads(out.strip().splitlines()[-1])
  assert result['trainable'] == jax_trainable(ROWS[0], SIZE)  # the main config's freezing
  assert len(result['epoch_s']) == 1 and result['train_images'] == 12
  assert 0 <= result['test_accuracy'] <= 1


def test_a_ratio_from_rounds_has_its_bootstrap_interval_and_verdict():
  ours, reference = [2.0, 2.2, 1.8, 2.1, 1.9], [1.0] * 5
  result = rounds.ratio(ours, reference)
  assert result['ratio'] == 2.0 and result['verdict'] == 'faster' and result['rounds'] == 5
  # the interval: medians of rounds drawn with replacement, 5th and 95th percentiles
  draws = np.random.default_rng(0).integers(0, 5, (1000, 5))
  medians = np.median(np.array(ours)[draws], axis=1)
  assert result['interval'] == tuple(np.percentile(medians, [5, 95]))
  assert rounds.ratio([1.1, 0.9, 1.0, 1.2, 0.8], reference)['verdict'] == 'within noise'
  assert rounds.ratio([0.5, 0.6, 0.55, 0.52, 0.58], reference)['verdict'] == 'slower'
  assert rounds.cell(result) == f'2.00× [{result["interval"][0]:.2f}, ' \
                                f'{result["interval"][1]:.2f}] faster'


def test_the_inference_section_measures_four_runtimes_against_pytorch():
  lines = bench.inference(2, model='mobilenet_v2', size=32)
  assert lines[0] == ('| runtime | batch 1: img/s, median [min–max] | batch 1: vs PyTorch eager '
                      '| batch 32: img/s, median [min–max] | batch 32: vs PyTorch eager |')
  runtimes = [line.split(' | ')[0].lstrip('| ') for line in lines[2:]]
  assert runtimes == ['PyTorch eager', 'this project (JAX)', 'ONNX float32 (onnxruntime)',
                      'ONNX int8 (onnxruntime)']
  assert all(re.search(r'\d\.\d\d× \[\d+\.\d\d, \d+\.\d\d\] (faster|slower|within noise)', line)
             for line in lines[3:])


def test_side_by_side_alternates_the_sides_round_by_round(monkeypatch):
  calls = []

  def fake(side, row, *extra, env=None):
    calls.append((side, row))
    speed = {'torch': 10.0, 'jax': 15.0 + len(calls) % 3}[side]
    return {'images_per_s': speed, 'trainable': 100}
  monkeypatch.setattr(bench, 'measure', fake)
  lines = bench.side_by_side([0, 3], steps=1, rounds=3)
  assert calls == [('torch', 0), ('jax', 0), ('torch', 3), ('jax', 3)] * 3
  jax_row0 = [15.0 + n % 3 for n in (2, 6, 10)]  # calls numbered from 1: jax of row 0
  expected = rounds.ratio(jax_row0, [10.0] * 3)
  assert lines[2] == (f'| {ROWS[0].label} | PyTorch eager | 100 / 100 | 10.0 [10.0–10.0] | '
                      f'{np.median(jax_row0):.1f} [{min(jax_row0):.1f}–{max(jax_row0):.1f}] | '
                      f'{rounds.cell(expected)} |')
  monkeypatch.setattr(bench, 'measure', lambda side, row, *extra, env=None: {
      'images_per_s': 1.0, 'trainable': {'torch': 1, 'jax': 2}[side]})
  with pytest.raises(RuntimeError, match='row 0: the reference trains 1 parameters, this '
                                         'project 2: not the same work'):
    bench.side_by_side([0], steps=1, rounds=1)
