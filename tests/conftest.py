"""Shared fixtures: the ported ImageNet classifiers and real photos."""
import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import skimage.data
from flax import traverse_util
from PIL import Image

from research.models import MODELS, Classifier, Head
from research.models.layers import TAP
from research.weights import load_pretrained, read_torch_file, resolve


@functools.cache
def imagenet_model(name: str):
  """(Classifier with the pretrained 1000-way head, variables, source state_dict)."""
  spec = MODELS[name]
  model = Classifier(spec.backbone(), Head(1000), spec.mean, spec.std)
  shapes = jax.eval_shape(model.init, jax.random.key(0),
                          jnp.zeros((1, spec.input_size, spec.input_size, 3), jnp.uint8))
  variables = {k: jax.tree.map(lambda s: np.zeros(s.shape, s.dtype), shapes[k])
               for k in ('params', 'batch_stats')}
  variables = load_pretrained(variables, spec)
  return model, variables, read_torch_file(resolve(spec.weights))


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
