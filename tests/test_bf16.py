"""bfloat16 compute (`model.dtype`): on the real ImageNet weights, the backbone's features
stay close to float32's; parameters and BatchNorm statistics stay float32, and a bf16
train step updates them in float32."""
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from skimage import data as photos

from research.config import base_config
from research.data import resize
from research.models import MODELS, Classifier, Head, Task, create_model
from research.models.layers import ConvBN, InvertedResidual
from research.models.mobilenet_v2 import BN
from research.train.state import create_train_state, init_variables
from research.train.step import make_train_step


def config_for(name: str, dtype: str):
  config = base_config()
  config.model.name, config.model.dtype = name, dtype
  return config


@pytest.mark.parametrize('name', [pytest.param('efficientnet_lite0', marks=pytest.mark.slow),
                                  'mobilenet_v2'])
def test_bfloat16_features_stay_close_to_float32_on_real_weights(name):
  images = np.stack([resize(photos.chelsea(), 224), resize(photos.coffee(), 224)])
  features = {}
  for dtype in ('float32', 'bfloat16'):
    config = config_for(name, dtype)
    model = create_model(config.model, 1)
    variables = init_variables(model, config, jax.random.key(0), log=lambda _: None)
    features[dtype] = np.asarray(jax.jit(lambda v, x, model=model: model.apply(
        v, x, method='features'))(variables, images))
  f32, bf16 = features['float32'], features['bfloat16']
  assert bf16.dtype == np.float32
  assert not np.array_equal(f32, bf16)  # computed in another precision
  cosine = (f32 * bf16).sum(-1) / np.linalg.norm(f32, axis=-1) / np.linalg.norm(bf16, axis=-1)
  assert cosine.min() > 0.995, cosine
  relative = np.linalg.norm(bf16 - f32, axis=-1) / np.linalg.norm(f32, axis=-1)
  assert relative.max() < 0.1, relative  # measured 0.03-0.06: bfloat16 keeps 8 bits


class MobileNetV2Layers(nn.Module):
  """MobileNetV2's layer kinds (ConvBN, an expanding InvertedResidual with its depthwise
  conv) in a backbone small enough that a full train step compiles in seconds."""

  @nn.compact
  def __call__(self, x, train: bool = False):
    x = ConvBN(16, kernel=3, stride=2, name='stem', **BN)(x, train)
    x = InvertedResidual(16, 24, 3, 2, 6, name='block', **BN)(x, train)
    return ConvBN(32, name='top', **BN)(x, train)


def test_a_bfloat16_train_step_keeps_float32_parameters_and_statistics():
  config = config_for('mobilenet_v2', 'bfloat16')
  config.model.pretrained, config.freeze.before, config.data.image_size = False, '', 64
  spec = MODELS['mobilenet_v2']
  model = Classifier(MobileNetV2Layers(), Head(2), spec.mean, spec.std, dtype='bfloat16')
  state, phases = create_train_state(model, config, 10, jax.random.key(0), log=lambda _: None)
  step = jax.jit(make_train_step(phases[0].labels, Task(2)))
  batch = {'image': np.random.default_rng(0).integers(0, 255, (4, 64, 64, 3), np.uint8),
           'label': np.array([0, 1, 0, 1], np.int32)}
  new, metrics = step(state, batch, jax.random.key(1))
  assert np.isfinite(float(metrics['loss']))
  for tree in (new.params, new.batch_stats):
    assert {leaf.dtype for leaf in jax.tree.leaves(tree)} == {jnp.dtype('float32')}
  moved = jax.tree.map(lambda a, b: bool((a != b).any()), state.params, new.params)
  assert all(jax.tree.leaves(moved))  # every parameter got a gradient through the casts
  stats = jax.tree.map(lambda a, b: bool((a != b).any()), state.batch_stats, new.batch_stats)
  assert all(jax.tree.leaves(stats))


def test_auto_computes_in_bfloat16_on_an_accelerator_and_float32_on_the_cpu(monkeypatch):
  from research.models import compute_dtype  # pylint: disable=import-outside-toplevel
  config = base_config()
  assert config.model.dtype == 'auto'
  assert create_model(config.model, 1).dtype == 'float32'  # this machine: a CPU
  for backend in ('gpu', 'tpu'):
    monkeypatch.setattr(jax, 'default_backend', lambda backend=backend: backend)
    assert create_model(config.model, 1).dtype == 'bfloat16'
  assert compute_dtype('float32', 'gpu') == 'float32' and compute_dtype('auto', 'cpu') == 'float32'
