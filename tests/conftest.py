"""Shared fixtures: the ported ImageNet classifiers, real photos, a small image folder.

Tests run on one CPU device (JAX_NUM_CPU_DEVICES=1, inherited by the processes they start)
unless a test asks for more: their bit-identical comparisons are between runs of one
device count. test_sharding checks that more devices compute the same. Convolutions are
XLA's own, as `./run.sh` computes them (research.parallel.use_eigen_convolutions)."""
import functools
import os

os.environ.setdefault('JAX_NUM_CPU_DEVICES', '1')

from research import parallel  # pylint: disable=wrong-import-position

# The convolutions `./run.sh` computes with, in this process and every process a test
# starts: a run here and its resumed or repeated run there must round alike.
parallel.use_eigen_convolutions()

import jax  # pylint: disable=wrong-import-position
import jax.numpy as jnp
import numpy as np
import pytest
import skimage.data
from flax import traverse_util
from PIL import Image

from helpers import make_folder
from research.models import MODELS, Classifier, Head
from research.models.layers import TAP
from research.weights import load_pretrained, read_torch_file, resolve


def imagenet_classifier(name: str) -> tuple[Classifier, dict]:
  """(`name`'s backbone with a 1000-way head, zero variables to port weights into)."""
  spec = MODELS[name]
  model = Classifier(spec.backbone(), Head(1000), spec.mean, spec.std)
  shapes = jax.eval_shape(model.init, jax.random.key(0), jnp.zeros((1, 32, 32, 3), jnp.uint8))
  return model, {k: jax.tree.map(lambda s: np.zeros(s.shape, s.dtype), shapes[k])
                 for k in ('params', 'batch_stats')}


@functools.cache
def imagenet_model(name: str):
  """(Classifier with the pretrained 1000-way head, variables, source state_dict)."""
  model, variables = imagenet_classifier(name)
  variables = load_pretrained(variables, MODELS[name])
  return model, variables, read_torch_file(resolve(MODELS[name].weights))


def photo(name: str, size: int) -> np.ndarray:
  """A real photo bundled with scikit-image, resized to `size`, uint8 HWC."""
  image = getattr(skimage.data, name)()
  return np.asarray(Image.fromarray(image).resize((size, size), Image.BILINEAR))


def flat_intermediates(state) -> dict:
  flat = traverse_util.flatten_dict(state['intermediates'], sep='/')
  return {k.removesuffix('/' + TAP): v for k, v in flat.items()}


@pytest.fixture
def photos():
  return lambda size: np.stack([photo('chelsea', size), photo('coffee', size)])


@pytest.fixture(scope='module')
def folder(tmp_path_factory):
  """24 noisy images, 12 'bright' and 12 'dark' (learnable), once per test module."""
  return make_folder(tmp_path_factory.mktemp('images'), per_class=12)
