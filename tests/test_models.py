"""Model assembly from config: heads, binary vs multi-class outputs, the registry."""
import jax
import jax.numpy as jnp
import pytest

from research.config import ConfigError, base_config
from research.models import MODELS, create_model, get_spec
from research.train.optim import learning_rate


def head_shapes(**model):
  config = base_config()
  config.model.update(model)
  classifier = create_model(config.model, 3)
  shapes = jax.eval_shape(classifier.init, jax.random.key(0), jnp.zeros((1, 64, 64, 3), jnp.uint8))
  return jax.tree.map(lambda s: s.shape, shapes['params']['head'])


def test_food_head_flatten_then_three_dense_1024():
  shapes = head_shapes(name='simple_cnn', pooling='flatten', hidden=(1024, 1024, 1024))
  assert shapes['hidden_0']['kernel'] == (16 * 16 * 64, 1024)
  assert shapes['hidden_2']['kernel'] == (1024, 1024)
  assert shapes['logits']['kernel'] == (1024, 3)


def test_global_average_pooling_head():
  assert head_shapes(name='mobilenet_v2')['logits']['kernel'] == (1280, 3)


def test_unknown_model_lists_the_registry():
  with pytest.raises(ConfigError, match='unknown model .resnet18.: choose one of ' +
                     ', '.join(MODELS)):
    get_spec('resnet18')


def test_step_lr_multiplies_by_gamma_every_step_epochs():
  config = base_config().optimizer
  config.update(dict(learning_rate=1e-4, step_epochs=5, gamma=0.1))
  schedule = learning_rate(config, steps_per_epoch=10, num_epochs=20)
  assert [float(schedule(s)) for s in (0, 49, 50, 99, 100)] == pytest.approx(
      [1e-4, 1e-4, 1e-5, 1e-5, 1e-6])


@pytest.mark.parametrize('name', list(MODELS))
def test_default_gradcam_layer_is_a_tapped_feature_map(name):
  from research.explain.gradcam import tap_shapes  # pylint: disable=import-outside-toplevel
  config = base_config()
  config.model.name = name
  spec = get_spec(name)
  images = jnp.zeros((1, spec.input_size, spec.input_size, 3), jnp.uint8)
  shape = tap_shapes(create_model(config.model, 2), images)[spec.gradcam_layer].shape
  assert len(shape) == 4 and shape[1] > 1  # a spatial map, before pooling
