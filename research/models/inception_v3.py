"""Inception v3 (Szegedy et al.), ported from `keras.applications.InceptionV3`.

Keras builds every conv2d_bn without a name, so its layers are named by
Keras's per-class counters in a fresh session (`conv2d`, `conv2d_1`, ...,
`batch_normalization_93`); this port counts the same way. BatchNorm has no
scale. Average pools ('same', stride 1) exclude the padding, as TF's do.
"""
import itertools

import flax.linen as nn
import jax.numpy as jnp

from research.models import layers
from research.models.keras_layers import Tap, batch_norm, conv


def keras_name(base: str, i: int) -> str:
  return base if i == 0 else f'{base}_{i}'


class InceptionV3(nn.Module):
  """Takes inputs in [-1, 1]; returns the 2048-channel `mixed10` feature map."""

  @nn.compact
  def __call__(self, x, train: bool = False):
    counter = itertools.count()

    def cbr(x, filters, kh, kw, stride=1, padding='SAME'):
      i = next(counter)
      x = conv(filters, (kh, kw), keras_name('conv2d', i), stride, padding)(x)
      return nn.relu(batch_norm(keras_name('batch_normalization', i), train, scale=False)(x))

    def avg_pool(x):
      return nn.avg_pool(x, window_shape=(3, 3), padding='SAME', count_include_pad=False)

    def max_pool(x):
      return layers.max_pool(x, 3, 2)

    cat = lambda *xs: jnp.concatenate(xs, axis=-1)
    x = cbr(x, 32, 3, 3, stride=2, padding='VALID')
    x = cbr(x, 32, 3, 3, padding='VALID')
    x = max_pool(cbr(x, 64, 3, 3))
    x = cbr(x, 80, 1, 1, padding='VALID')
    x = max_pool(cbr(x, 192, 3, 3, padding='VALID'))

    for i, pool_filters in enumerate((32, 64, 64)):  # mixed0..2: 35 x 35
      b1 = cbr(x, 64, 1, 1)
      b5 = cbr(cbr(x, 48, 1, 1), 64, 5, 5)
      b3 = cbr(cbr(cbr(x, 64, 1, 1), 96, 3, 3), 96, 3, 3)
      bp = cbr(avg_pool(x), pool_filters, 1, 1)
      x = Tap(name=f'mixed{i}')(cat(b1, b5, b3, bp))

    b3 = cbr(x, 384, 3, 3, stride=2, padding='VALID')  # mixed3: 17 x 17
    b3d = cbr(cbr(cbr(x, 64, 1, 1), 96, 3, 3), 96, 3, 3, stride=2, padding='VALID')
    x = Tap(name='mixed3')(cat(b3, b3d, max_pool(x)))

    for i, width in enumerate((128, 160, 160, 192)):  # mixed4..7
      b1 = cbr(x, 192, 1, 1)
      b7 = cbr(cbr(cbr(x, width, 1, 1), width, 1, 7), 192, 7, 1)
      b7d = cbr(x, width, 1, 1)
      for filters, (kh, kw) in ((width, (7, 1)), (width, (1, 7)), (width, (7, 1)), (192, (1, 7))):
        b7d = cbr(b7d, filters, kh, kw)
      bp = cbr(avg_pool(x), 192, 1, 1)
      x = Tap(name=f'mixed{4 + i}')(cat(b1, b7, b7d, bp))

    b3 = cbr(cbr(x, 192, 1, 1), 320, 3, 3, stride=2, padding='VALID')  # mixed8: 8 x 8
    b7 = cbr(cbr(cbr(x, 192, 1, 1), 192, 1, 7), 192, 7, 1)
    b7 = cbr(b7, 192, 3, 3, stride=2, padding='VALID')
    x = Tap(name='mixed8')(cat(b3, b7, max_pool(x)))

    for i in range(2):  # mixed9, mixed10
      b1 = cbr(x, 320, 1, 1)
      b3 = cbr(x, 384, 1, 1)
      b3 = cat(cbr(b3, 384, 1, 3), cbr(b3, 384, 3, 1))
      b3d = cbr(cbr(x, 448, 1, 1), 384, 3, 3)
      b3d = cat(cbr(b3d, 384, 1, 3), cbr(b3d, 384, 3, 1))
      bp = cbr(avg_pool(x), 192, 1, 1)
      x = Tap(name=f'mixed{9 + i}')(cat(b1, b3, b3d, bp))
    return x
