"""Gradual unfreezing: in each phase exactly the expected parameters move (torchvision's
requires_grad for ResNet), BatchNorm leaves inference mode where it unfreezes, newly
unfrozen parameters start with zero optimizer state (a run killed just after a phase change
resumes bit-identically: test_kill_resume.py)."""
import jax
import numpy as np
import pytest
import torch

import reference
from helpers import make_folder, traced_build
from research import config as config_lib
from research.models import MODELS
from research.train.freeze import FreezeError, Phase, flat
from research.train.loop import build, fit
from research.train.optim import learning_rate
from research.weights import port_state_dict

LR, FACTOR = 1e-3, 0.5


def resnet_config(tmp_path, epochs: int, weights: str = ''):
  """ResNet50 from `weights` (a .pth file), or a random init."""
  return config_lib.load('configs/people.py:resnet101', [
      'model.name=resnet50', f'model.pretrained={bool(weights)}', f'model.weights={weights}',
      'data.image_size=64', 'batch_size=2',
      f'num_epochs={epochs}', 'optimizer.step_epochs=0', f'optimizer.learning_rate={LR}',
      f"freeze.phases=((2, 'layer4.0.conv1', {FACTOR}),)", 'checkpoint.keep=5',
      f'workdir={tmp_path}'])


def torch_trainable_from(name: str, save_to) -> set:
  """Flax paths of what torchvision's ResNet50 trains with requires_grad from `name` on; the
  network's (random) weights saved to the file `save_to`."""
  net = reference.torchvision().models.resnet50()
  torch.save(net.state_dict(), save_to)
  names = [n for n, _ in net.named_parameters() if not n.startswith('fc.')]
  state = {n: p.detach().numpy() for n, p in net.named_parameters()}
  paths = {n: next(iter(port_state_dict({n: state[n]}, MODELS['resnet50'].weight_format.key_table)))
           for n in names}
  return {paths[n].removeprefix('params/') for n in names[names.index(f'{name}.weight'):]}


def moved(before, after) -> set:
  a, b = flat(before), flat(after)
  return {p for p in a if not np.array_equal(a[p], b[p])}


def test_each_phase_moves_what_torch_would_train(tmp_path):
  folder = make_folder(tmp_path / 'images', per_class=1)
  records = [(str(p), i) for i, c in enumerate(('bright', 'dark')) for p in (folder / c).iterdir()]
  head = {'head/logits/kernel', 'head/logits/bias'}
  weights = tmp_path / 'resnet50.pth'  # a head-only init: ResNet50's own takes 12 s to compile
  expected = torch_trainable_from('layer4.0.conv1', weights)

  config = resnet_config(tmp_path / 'run', 1, str(weights))
  built = build(config, 2, steps=1, log=lambda _: None)
  start = jax.device_get(built.state)
  phase1, _ = fit(config, tmp_path / 'run', built, records, False, log=lambda _: None)
  phase1 = jax.device_get(phase1)
  assert moved(start.params, phase1.params) == head  # phase 1: the new head only
  assert moved(start.batch_stats, phase1.batch_stats) == set()  # all BatchNorm in inference

  config = resnet_config(tmp_path / 'run', 2, str(weights))
  phase2, _ = fit(config, tmp_path / 'run', build(config, 2, steps=1, log=lambda _: None),
                  records, True, log=lambda _: None)
  phase2 = jax.device_get(phase2)
  assert moved(phase1.params, phase2.params) == expected | head
  stats = {p.rsplit('/', 1)[0] for p in moved(phase1.batch_stats, phase2.batch_stats)}
  assert stats and all(p.startswith('backbone/layer4_') for p in stats)  # these left inference

  # Fresh Adam state for what phase 2 unfroze: its first step is lr x factor per element
  # (bias-corrected m/sqrt(v) = g/|g|); a shared step count (2) would give 0.74 of that.
  kernel = 'backbone/layer4_1/conv2/conv/kernel'
  step = np.abs(flat(phase2.params)[kernel] - flat(phase1.params)[kernel]) / (LR * FACTOR)
  moved_elements = step[step > 0]  # the others had no gradient (dead ReLUs at random init)
  assert moved_elements.size > step.size // 4
  assert np.percentile(moved_elements, 5) > 0.99 and step.max() < 1 + 1e-5


def test_learning_rate_factor_holds_from_each_phase_start():
  opt = config_lib.base_config().optimizer
  opt.learning_rate, opt.step_epochs, opt.gamma = 1.0, 2, 0.5
  phases = (Phase(1, {}, 1.0), Phase(3, {}, 0.1))
  rate = learning_rate(opt, 10, 10, phases)
  assert [float(rate(s)) for s in (0, 19, 20, 39, 40)] == pytest.approx(
      [1.0, 1.0, 0.05, 0.05, 0.025])


def test_a_phase_that_freezes_again_is_refused(tmp_path):
  config = resnet_config(tmp_path, 2)
  config.freeze.before = 'layer4.0.conv1'
  config.freeze.phases = ((2, 'head', 1.0),)
  with pytest.raises(FreezeError, match='a phase may only unfreeze'):
    traced_build(config)  # build, traced: refused before any initialiser compiles

