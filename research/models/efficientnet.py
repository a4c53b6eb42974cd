"""EfficientNet-B0..B7 (Tan & Le), ported from `keras.applications.EfficientNetB*`.

The Keras model carries its preprocessing: Rescaling(1/255), a Normalization
layer whose mean/variance are in the weight file, and (for ImageNet weights) a
Rescaling by 1/sqrt(ImageNet std) that corrects those weights' variance, which
holds the std. So it takes raw 0-255 pixels (registry mean 0, std 1).
Stride-2 depthwise convs are ZeroPadding2D(correct_pad) + 'valid' in Keras,
which is TF 'SAME' for stride 2 at any size. Stochastic depth is Keras's
per-sample Dropout before each residual add.
"""
import math

import flax.linen as nn
import jax.numpy as jnp

from research.models.efficientnet_lite import STAGES, round_filters
from research.models.keras_layers import DepthwiseConv2D, Normalization, Tap, batch_norm, conv

IMAGENET_STDDEV_RGB = (0.229, 0.224, 0.225)
# name: (width coefficient, depth coefficient, input size)
VARIANTS = {
    'efficientnet_b0': (1.0, 1.0, 224),
    'efficientnet_b1': (1.0, 1.1, 240),
    'efficientnet_b2': (1.1, 1.2, 260),
    'efficientnet_b3': (1.2, 1.4, 300),
    'efficientnet_b4': (1.4, 1.8, 380),
    'efficientnet_b5': (1.6, 2.2, 456),
    'efficientnet_b6': (1.8, 2.6, 528),
    'efficientnet_b7': (2.0, 3.1, 600),
}


def block_specs(width: float, depth: float):
  """(keras name prefix, in, out, kernel, stride, expand) per block, as Keras builds them from
  the B0 stage table that Lite shares (every block with squeeze-excite, ratio 0.25)."""
  specs = []
  for i, (repeats, kernel, stride, expand, cin, cout) in enumerate(STAGES):
    cin, cout = round_filters(cin, width), round_filters(cout, width)
    for j in range(int(math.ceil(depth * repeats))):
      specs.append((f'block{i + 1}{chr(j + 97)}_', cin if j == 0 else cout, cout, kernel,
                    stride if j == 0 else 1, expand))
  return specs


class EfficientNet(nn.Module):
  """Takes 0-255 pixels; returns the final feature map (`top_activation`)."""
  width: float = 1.0
  depth: float = 1.0
  drop_connect_rate: float = 0.2
  imagenet_rescaling: bool = True  # Keras adds it only when built for ImageNet weights

  @nn.compact
  def __call__(self, x, train: bool = False):
    x = Normalization(name='normalization')(x / 255.0)
    if self.imagenet_rescaling:
      x = x / jnp.sqrt(jnp.asarray(IMAGENET_STDDEV_RGB))
    x = conv(round_filters(32, self.width), 3, 'stem_conv', stride=2)(x)
    x = nn.swish(batch_norm('stem_bn', train)(x))
    specs = block_specs(self.width, self.depth)
    for b, (name, cin, cout, kernel, stride, expand) in enumerate(specs):
      y = x
      filters = cin * expand
      if expand != 1:
        y = conv(filters, 1, f'{name}expand_conv')(y)
        y = nn.swish(batch_norm(f'{name}expand_bn', train)(y))
      y = DepthwiseConv2D(kernel, stride, name=f'{name}dwconv')(y)
      y = nn.swish(batch_norm(f'{name}bn', train)(y))
      se = y.mean(axis=(1, 2), keepdims=True)
      se = nn.swish(conv(max(1, int(cin * 0.25)), 1, f'{name}se_reduce', use_bias=True)(se))
      se = nn.sigmoid(conv(filters, 1, f'{name}se_expand', use_bias=True)(se))
      y = batch_norm(f'{name}project_bn', train)(conv(cout, 1, f'{name}project_conv')(y * se))
      if stride == 1 and cin == cout:
        rate = self.drop_connect_rate * b / len(specs)
        y = nn.Dropout(rate, broadcast_dims=(1, 2, 3), deterministic=not train)(y)
        y = y + x
      x = Tap(name=name.rstrip('_'))(y)
    x = conv(round_filters(1280, self.width), 1, 'top_conv')(x)
    return Tap(name='top_activation')(nn.swish(batch_norm('top_bn', train)(x)))
