"""ResNet-50/101/152 and GoogLeNet equal torchvision's, from a state_dict .pth file,
block by block.

No ImageNet file of these can be had here: the reference's own initialisation is
saved with torch.save and goes through the same reader and key table as a
downloaded file.
"""
import jax
import numpy as np
import pytest
import torch

import reference
from conftest import flat_intermediates, imagenet_classifier
from research.config import base_config
from research.models import MODELS, create_model
from research.models.registry import IMAGENET_MEAN, IMAGENET_STD
from research.train.freeze import TRAINABLE
from research.train.state import create_train_state
from research.weights import load_into, port_state_dict, read_torch_file


def ported(net, name, tmp_path):
  path = tmp_path / f'{name}.pth'
  torch.save(net.state_dict(), path)
  model, variables = imagenet_classifier(name)
  return model, load_into(variables, port_state_dict(read_torch_file(path),
                                                     MODELS[name].key_table))


def assert_matches(model, variables, net, blocks, images, ref_mean, ref_std):
  logits, inter = model.apply(variables, images, mutable=['intermediates'])
  ref_logits, ref_blocks = reference.run_with_hooks(
      net, blocks, reference.normalised_nchw(images, ref_mean, ref_std))
  ours = flat_intermediates(inter)
  scale = max(1.0, np.abs(ref_logits).max())
  assert np.abs(np.asarray(logits) - ref_logits).max() <= 1e-4 * scale
  for key, ref in ref_blocks.items():
    assert np.abs(np.asarray(ours[key]) - ref).max() <= 1e-4 * max(1.0, np.abs(ref).max()), key


@pytest.mark.parametrize('name', ['resnet50', 'resnet101', 'resnet152'])
def test_resnet_matches_torchvision_block_by_block(name, photos, tmp_path):
  net = reference.resnet_initialised(name)
  model, variables = ported(net, name, tmp_path)
  assert sum(x.size for x in jax.tree.leaves(variables['params'])) == sum(
      p.numel() for p in net.parameters())
  blocks = {f'backbone/layer{s}_{i}': block for s in range(1, 5)
            for i, block in enumerate(getattr(net, f'layer{s}'))}
  spec = MODELS[name]
  assert_matches(model, variables, net, blocks, photos(128), spec.mean, spec.std)


@pytest.mark.parametrize('size', [224, 129])  # 129: odd sizes exercise ceil_mode pooling
def test_googlenet_matches_torchvision_block_by_block(size, photos, tmp_path):
  """The reference as torchvision loads pretrained weights (aux classifiers in the file,
  transform_input on, ImageNet-normalised input); the aux weights are dropped."""
  torch.manual_seed(0)
  net = reference.randomise_batchnorm(reference.torchvision().models.googlenet(
      aux_logits=True, transform_input=True, init_weights=True))
  model, variables = ported(net, 'googlenet', tmp_path)
  assert sum(x.size for x in jax.tree.leaves(variables['params'])) == sum(
      p.numel() for n, p in net.named_parameters() if not n.startswith('aux'))
  blocks = {f'backbone/{n}': m for n, m in net.named_children() if n.startswith('inception')}
  assert_matches(model, variables, net, blocks, photos(size), IMAGENET_MEAN, IMAGENET_STD)


def test_freezing_from_a_torch_name_freezes_what_torch_would():
  """`freeze.before=layer4.0.conv1` trains exactly the parameters torchvision lists from
  layer4.0.conv1.weight on (and the new head)."""
  net = reference.torchvision().models.resnet50()
  names = [n for n, _ in net.named_parameters()]
  state = {n: p.detach().numpy() for n, p in net.named_parameters()}
  to_flax = {n: next(iter(port_state_dict({n: state[n]}, MODELS['resnet50'].key_table)))
             for n in names}
  expected = {to_flax[n].removeprefix('params/') for n in names[names.index('layer4.0.conv1.weight'):]
              if not n.startswith('fc.')} | {'head/logits/kernel', 'head/logits/bias'}

  config = base_config()
  config.model.name, config.model.pretrained = 'resnet50', False
  config.freeze.before = 'layer4.0.conv1'
  _, phases = create_train_state(create_model(config.model, 1), config, 10, jax.random.key(0))
  labels = phases[0].labels
  assert {p for p, l in labels.items() if l == TRAINABLE} == expected
