"""Porting a Keras legacy `.h5` weight file (what keras.applications downloads).

Keras loads these files by position: the k-th layer with weights in the file
goes to the k-th layer with weights in `model.layers` (names are not used, and
auto-generated ones like `conv2d_17` differ between Keras versions). This port
does the same, with Keras's own layer list (`research/weights/keras_layers`)
giving the positions and the Flax module names. A file with the ImageNet
classifier on top has one more layer, which goes to `head/logits`.
"""
import functools
from pathlib import Path

import h5py
import numpy as np

from research.weights.port import PortError

# Keras weight name -> (Flax collection, Flax leaf name)
LEAVES = {
    'kernel': ('params', 'kernel'),
    'bias': ('params', 'bias'),
    'gamma': ('params', 'scale'),
    'beta': ('params', 'bias'),
    'moving_mean': ('batch_stats', 'mean'),
    'moving_variance': ('batch_stats', 'var'),
    'depthwise_kernel': ('params', 'depthwise_kernel'),  # (k, k, C, 1) -> (k, k, 1, C)
    'pointwise_kernel': ('params', 'pointwise_kernel'),
    'mean': ('batch_stats', 'mean'),  # Normalization
    'variance': ('batch_stats', 'var'),
}
IGNORED = ('count',)  # Normalization's sample count
LAYER_TABLES = Path(__file__).parent / 'keras_layers'


@functools.cache
def keras_layers(model: str) -> tuple[str, ...]:
  """Keras's `[layer.name for layer in model.layers]` for the model without its top,
  as recorded from keras.applications (checked against Keras by the tests)."""
  return tuple((LAYER_TABLES / f'{model}.txt').read_text().split())


def read_keras_file(path) -> list[tuple[str, dict[str, np.ndarray]]]:
  """(layer name, {weight name: array}) of every layer with weights, in file order."""
  with h5py.File(path, 'r') as f:
    group = f['model_weights'] if 'model_weights' in f else f  # a whole-model save
    layers = []
    for name in group.attrs['layer_names']:
      name = name.decode() if isinstance(name, bytes) else name
      weight_names = [w.decode() if isinstance(w, bytes) else w
                      for w in group[name].attrs['weight_names']]
      if weight_names:
        layers.append((name, {w.rsplit('/', 1)[-1].removesuffix(':0'): np.asarray(group[name][w])
                              for w in weight_names}))
  return layers


def convert(leaf: str, value: np.ndarray, top: bool) -> tuple[str, str, np.ndarray]:
  if leaf not in LEAVES:
    raise PortError(f'weight file has a {leaf!r} weight, which no ported Keras layer has: '
                    f'the file is for another architecture')
  collection, name = LEAVES[leaf]
  if leaf == 'depthwise_kernel':
    value = value.transpose(0, 1, 3, 2)
  if top and leaf == 'kernel':  # a 1x1 conv classifier (MobileNet's conv_preds) is a Dense
    value = value.reshape(-1, value.shape[-1])
  return collection, name, value


def port_keras_layers(layers, layer_table, variable_paths: set[str]) -> dict[str, np.ndarray]:
  """Flax {'params/backbone/<layer>/kernel': array, ...} for `layers` (see `read_keras_file`);
  `variable_paths` are the model's ('params/backbone/conv1/kernel', ...)."""
  weighted = {p.split('/')[2] for p in variable_paths if p.split('/')[1] == 'backbone'}
  targets = [f'backbone/{name}' for name in layer_table if name in weighted]
  if len(layers) > len(targets) + 1:
    raise PortError(f'weight file has {len(layers)} layers with weights, the model '
                    f'{len(targets)} (+1 classifier): the file is for another architecture')
  ported = {}
  for i, (source, weights) in enumerate(layers):
    target = targets[i] if i < len(targets) else 'head/logits'
    for leaf, value in weights.items():
      if leaf in IGNORED:
        continue
      if leaf == 'kernel' and f'params/{target}/depthwise_kernel' in variable_paths:
        leaf = 'depthwise_kernel'  # Keras 3 names a DepthwiseConv2D's kernel 'kernel'
      collection, name, array = convert(leaf, value, top=i == len(targets))
      ported[f'{collection}/{target}/{name}'] = array
  return ported
