"""MobileNet, EfficientNet-B0..B7, InceptionV3 and NASNetMobile equal keras.applications,
from a legacy .h5 file (the format Keras downloads), block by block; Keras layer indices
freeze what Keras would.

The Keras references are built and loaded as for ImageNet weights, from a file written
from Keras's own (randomised) init: see keras_reference.py.
"""
import jax
import numpy as np
import pytest

import keras_reference
from conftest import flat_intermediates, imagenet_classifier
from research.config import base_config
from research.models import MODELS, create_model
from research.train.freeze import TRAINABLE
from research.train.state import create_train_state
from research.weights import load_file
from research.weights.keras import LEAVES, keras_layers

SLOW = pytest.mark.slow


def keras_block(model, tap: str) -> str:
  """The Keras layer whose output a tap is: EfficientNet taps a block by its prefix."""
  names = {layer.name for layer in model.layers}
  for name in (tap, f'{tap}_add', f'{tap}_project_bn'):
    if name in names:
      return name
  raise KeyError(tap)


@pytest.mark.parametrize('name,include_top,size', [
    ('mobilenet_v1', True, 224),
    ('mobilenet_v1', False, 129),  # odd size: Keras's explicit (0, 1) padding is not 'SAME'
    ('efficientnet_b0', True, 224),
    ('inception_v3', True, 299),
    ('nasnet_mobile', True, 224),
    *[pytest.param(f'efficientnet_b{i}', True, None, marks=SLOW) for i in range(1, 8)],
])
def test_matches_keras_block_by_block(name, include_top, size, photos, tmp_path):
  spec = MODELS[name]
  size = size or spec.input_size
  shape = None if include_top else size
  path = keras_reference.randomised_file(name, tmp_path / f'{name}.h5', include_top=include_top,
                                         input_size=shape)
  ref = keras_reference.build(name, path, include_top=include_top, input_size=shape)
  assert tuple(layer.name for layer in ref.layers[:len(keras_layers(name))]) == keras_layers(name)

  model, variables = imagenet_classifier(name)
  variables = load_file(variables, spec, path, dont_load=() if include_top else ('head/.*',))
  images = photos(size)
  x = (images.astype(np.float32) - np.float32(spec.mean)) / np.float32(spec.std)
  if include_top:
    logits, inter = model.apply(variables, images, mutable=['intermediates'])
  else:  # the feature map
    logits, inter = model.apply(variables, x, mutable=['intermediates'],
                                method=lambda m, x: m.backbone(x))
  ours = flat_intermediates(inter)
  taps = {tap: keras_block(ref, tap.removeprefix('backbone/')) for tap in ours}
  ref_logits, ref_blocks = keras_reference.outputs(ref, list(taps.values()), x)

  assert np.abs(np.asarray(logits) - ref_logits).max() <= 1e-4 * max(1, np.abs(ref_logits).max())
  for tap, layer in taps.items():
    ref = ref_blocks[layer]
    assert np.abs(np.asarray(ours[tap]) - ref).max() <= 1e-4 * max(1, np.abs(ref).max()), tap


@pytest.mark.parametrize('name', ['mobilenet_v1', 'efficientnet_b0', 'inception_v3',
                                  'nasnet_mobile'])
def test_parameter_count_equals_keras(name):
  model, variables = imagenet_classifier(name)
  ours = sum(x.size for x in jax.tree.leaves(variables))
  ours -= sum(x.size for x in jax.tree.leaves(variables['params']['head']))
  ref = keras_reference.build(name, include_top=False)
  sample_count = sum(1 for w in ref.weights if w.path.endswith('/count'))  # Normalization's
  assert ours == ref.count_params() - sample_count
  if name == 'nasnet_mobile':
    assert ref.count_params() == 4_269_716 and len(ref.layers) == 769


def keras_trainable_as_flax(model) -> set[str]:
  """Flax parameter paths of a Keras model's trainable weights."""
  paths = set()
  for w in model.trainable_weights:
    *_, layer, leaf = w.path.split('/')  # NASNet's paths carry name scopes
    collection, flax_leaf = LEAVES[leaf]
    assert collection == 'params'
    depthwise = leaf == 'kernel' and type(model.get_layer(layer)).__name__ == 'DepthwiseConv2D'
    paths.add(f'backbone/{layer}/{"depthwise_kernel" if depthwise else flax_leaf}')
  return paths


@pytest.mark.parametrize('name,index', [('nasnet_mobile', 752), ('mobilenet_v1', 73),
                                        ('efficientnet_b0', 0), ('efficientnet_b0', 238)])
def test_freezing_from_a_keras_layer_index_freezes_what_keras_would(name, index):
  """`freeze.before='752'` trains what Keras trains after
  `for layer in model.layers[:752]: layer.trainable = False` (and the new head)."""
  ref = keras_reference.build(name, include_top=False)
  for layer in ref.layers[:index]:
    layer.trainable = False
  expected = keras_trainable_as_flax(ref) | {'head/logits/kernel', 'head/logits/bias'}

  config = base_config()
  config.model.name, config.model.pretrained = name, False
  config.freeze.before = str(index)
  _, phases = create_train_state(create_model(config.model, 1), config, 10, jax.random.key(0))
  labels = phases[0].labels
  assert {p for p, l in labels.items() if l == TRAINABLE} == expected
