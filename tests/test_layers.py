"""The convolution formulations chosen per backend compute the same function, forward and
backward: on CPU a depthwise conv is shifted multiply-adds with a hand-written backward
pass and a 1x1 conv a matrix product; elsewhere XLA's (grouped) convolution."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from research.models import layers
from research.models.layers import _depthwise, grouped_conv, pads, pointwise_conv


def both_gradients(fn, x, w):
  loss = lambda x, w: (fn(x, w) * jnp.cos(fn(x, w))).sum()  # a non-trivial output gradient
  return jax.jit(fn)(x, w), jax.jit(jax.grad(loss, argnums=(0, 1)))(x, w)


def close(a, b):
  """Equal up to float32 rounding of sums taken in another order."""
  np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5 * np.abs(b).max())


@pytest.mark.parametrize('size,kernel,stride,mode', [
    (9, 3, 1, 'SAME'), (9, 3, 2, 'SAME'), (10, 3, 2, 'SAME'), (11, 5, 2, 'SAME'),
    (10, 5, 1, 'symmetric'), (10, 3, 2, 'symmetric'), (10, 3, 2, 'VALID')])
def test_depthwise_by_hand_equals_the_grouped_convolution(size, kernel, stride, mode):
  rng = np.random.default_rng(0)
  x = jnp.asarray(rng.normal(size=(2, size, size + 1, 6)), jnp.float32)
  w = jnp.asarray(rng.normal(size=(kernel, kernel, 1, 6)), jnp.float32)
  padding = tuple(pads(n, kernel, stride, mode) for n in x.shape[1:3])
  ours = both_gradients(lambda x, w: _depthwise(x, w, stride, padding), x, w)
  xla = both_gradients(lambda x, w: grouped_conv(x, w, stride, padding), x, w)
  for a, b in zip(jax.tree.leaves(ours), jax.tree.leaves(xla)):
    close(a, b)


@pytest.mark.parametrize('stride', [1, 2])
def test_pointwise_as_a_matrix_product_equals_the_convolution(stride):
  rng = np.random.default_rng(0)
  x = jnp.asarray(rng.normal(size=(2, 9, 8, 5)), jnp.float32)
  w = jnp.asarray(rng.normal(size=(1, 1, 5, 7)), jnp.float32)
  conv = lambda x, w: jax.lax.conv_general_dilated(x, w, (stride, stride), 'SAME',
                                                   dimension_numbers=('NHWC', 'HWIO', 'NHWC'))
  ours = both_gradients(lambda x, w: pointwise_conv(x, w, stride), x, w)
  for a, b in zip(jax.tree.leaves(ours), jax.tree.leaves(both_gradients(conv, x, w))):
    close(a, b)


@pytest.mark.parametrize('kernel,stride,padding,ceil_mode', [
    (3, 2, 1, False), (3, 2, 0, False), (3, 1, 1, True), (3, 2, 0, True), (2, 2, 0, False)])
def test_max_pool_backward_by_hand_equals_xla(kernel, stride, padding, ceil_mode):
  """Ties included (a ReLU's zeros, repeated values): the gradient goes to the window's first
  maximum, as XLA's select-and-scatter sends it."""
  rng = np.random.default_rng(0)
  x = jnp.asarray(np.maximum(rng.integers(-3, 3, size=(2, 11, 10, 4)), 0), jnp.float32)
  dy = lambda y: jnp.asarray(rng.normal(size=y.shape), jnp.float32)
  pool = lambda x: layers.max_pool(x, kernel, stride, padding, ceil_mode)
  y = pool(x)
  g = dy(y)
  ours = jax.vjp(pool, x)[1](g)[0]
  with layers.portable_formulations():
    assert not layers.cpu_formulations()
    np.testing.assert_array_equal(pool(x), y)
    xla = jax.vjp(pool, x)[1](g)[0]
  np.testing.assert_array_equal(ours != 0, xla != 0)  # the same inputs get the gradient
  np.testing.assert_allclose(ours, xla, rtol=1e-6, atol=1e-6 * np.abs(xla).max())  # summed in
  # another order where windows overlap
