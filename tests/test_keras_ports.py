"""The Keras ports (MobileNet, EfficientNet-B0..B7, InceptionV3, NASNetMobile) have Keras's
layers and parameter counts, and Keras layer indices freeze what Keras would (their
parity, block by block from a legacy .h5 file: test_parity.py)."""
import functools

import jax
import pytest

import keras_reference
from conftest import imagenet_classifier
from helpers import traced_build
from research.config import base_config
from research.models import MODELS
from research.train.freeze import TRAINABLE
from research.weights.keras import LEAVES


def slow(*case):
  """A case run under `slow` only: building the Keras model takes 25-35 s on a 2-core CPU (in
  CI: MobileNetV1, and NASNetMobile for the restaurant write-up's layer 752)."""
  return pytest.param(*case, marks=pytest.mark.slow)


@functools.cache
def keras_model(name: str):
  """Keras's model without its top, built once per test session (NASNet takes ~20 s)."""
  return keras_reference.build(name, include_top=False)


@pytest.mark.parametrize('name', [
    'mobilenet_v1', 'nasnet_mobile', *map(slow, ['efficientnet_b0', 'inception_v3']),
    *[slow(f'efficientnet_b{i}') for i in range(1, 8)]])
def test_recorded_layer_list_equals_keras(name):
  """The layer list a Keras port is loaded and frozen by is Keras's own `model.layers`."""
  ref = keras_model(name)
  layers = MODELS[name].weight_format.layers
  assert tuple(layer.name for layer in ref.layers[:len(layers)]) == layers


@pytest.mark.parametrize('name', ['mobilenet_v1', 'nasnet_mobile',
                                  *map(slow, ['efficientnet_b0', 'inception_v3'])])
def test_parameter_count_equals_keras(name):
  model, variables = imagenet_classifier(name)
  ours = sum(x.size for x in jax.tree.leaves(variables))
  ours -= sum(x.size for x in jax.tree.leaves(variables['params']['head']))
  ref = keras_model(name)
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
                                        slow('efficientnet_b0', 0), slow('efficientnet_b0', 238)])
def test_freezing_from_a_keras_layer_index_freezes_what_keras_would(name, index):
  """`freeze.before='752'` trains what Keras trains after
  `for layer in model.layers[:752]: layer.trainable = False` (and the new head)."""
  ref = keras_model(name)
  for layer in ref.layers[:index]:
    layer.trainable = False
  expected = keras_trainable_as_flax(ref) | {'head/logits/kernel', 'head/logits/bias'}
  for layer in ref.layers:  # the shared model as built
    layer.trainable = True

  config = base_config()
  config.model.name, config.model.pretrained = name, False
  config.freeze.before, config.data.image_size = str(index), 64  # labels: any size
  _, setup = traced_build(config)
  labels = setup.phases[0].labels
  assert {p for p, l in labels.items() if l == TRAINABLE} == expected
