"""Keras layers as Flax modules, for backbones ported from `keras.applications`.

A Keras-ported backbone names each module after the Keras layer it stands for
(`conv_dw_3_bn`, `block6a_se_reduce`, `conv2d_17`), so its parameters live at
'backbone/<keras layer name>/...'. The weight port and layer-index freezing
then only need Keras's own list of layer names (`research/weights/keras_layers`).
Keras defaults: BatchNorm eps 1e-3 and momentum 0.99 (Flax's momentum has the
same meaning as Keras's), padding 'same' is TensorFlow's (= Flax 'SAME').
"""
import functools

import flax.linen as nn
import jax.numpy as jnp

from research.models.layers import Conv, DepthwiseConv, Padding, conv2d, depthwise_conv, pads, tap


def conv(features: int, kernel, name: str, stride: int = 1, padding: Padding = 'SAME',
         use_bias: bool = False) -> Conv:
  return Conv(features, kernel, stride, padding, use_bias, name=name)


def batch_norm(name: str, train: bool, momentum: float = 0.99, scale: bool = True):
  """Keras BatchNormalization(epsilon=1e-3); returns the layer applied in `train` mode."""
  return lambda x: nn.BatchNorm(momentum=momentum, epsilon=1e-3, use_scale=scale, dtype=x.dtype,
                                name=name)(x, use_running_average=not train)


def zero_pad_same(x, kernel: int, stride: int = 2):
  """Keras `ZeroPadding2D(correct_pad(x, kernel))`: TF-'SAME' pixels, as explicit zeros."""
  return jnp.pad(x, ((0, 0), *(pads(n, kernel, stride, 'SAME') for n in x.shape[1:3]), (0, 0)))


# Keras DepthwiseConv2D (depth multiplier 1, no bias): a (k, k, 1, C) 'depthwise_kernel'.
DepthwiseConv2D = functools.partial(DepthwiseConv, param_name='depthwise_kernel')


class SeparableConv2D(nn.Module):
  """Keras SeparableConv2D (no bias): depthwise k x k, then pointwise 1 x 1."""
  features: int
  kernel: int
  stride: int = 1
  padding: Padding = 'SAME'

  @nn.compact
  def __call__(self, x):
    k, c = self.kernel, x.shape[-1]
    dw = self.param('depthwise_kernel', nn.initializers.lecun_normal(), (k, k, 1, c))
    pw = self.param('pointwise_kernel', nn.initializers.lecun_normal(), (1, 1, c, self.features))
    x = depthwise_conv(x, dw, self.stride, self.padding)
    return conv2d(x, pw, 1, 'VALID')


class Normalization(nn.Module):
  """Keras Normalization: (x - mean) / max(sqrt(variance), 1e-7) per channel.

  mean and variance come from the weight file and never train; they live in
  'batch_stats' (which the train step carries but nothing updates here).
  """

  @nn.compact
  def __call__(self, x):
    c = x.shape[-1]
    mean = self.variable('batch_stats', 'mean', jnp.zeros, (c,)).value
    var = self.variable('batch_stats', 'var', jnp.ones, (c,)).value
    return ((x - mean) / jnp.maximum(jnp.sqrt(var), 1e-7)).astype(x.dtype)


class Tap(nn.Module):
  """Names an activation (a block's output) for parity tests and Grad-CAM; see `tap`."""

  def __call__(self, x):
    return tap(self, x)
