"""GoogLeNet / Inception v1 (Szegedy et al.), ported from torchvision's layout.

torchvision's quirks are kept: the "5x5" branch uses a 3x3 conv (pytorch/vision
#906), max-pools round up (ceil_mode), BN eps 1e-3. Its pretrained weights expect
inputs in [-1, 1] (torchvision's `transform_input`), which the registry's
mean/std of 127.5 gives directly.
"""
import flax.linen as nn
import jax.numpy as jnp

from research.models.layers import ConvBN, max_pool, tap

TORCH = dict(padding='symmetric', bn_eps=1e-3, bn_momentum=0.9, act=nn.relu)
# name: (1x1, 3x3 reduce, 3x3, "5x5" reduce, "5x5", pool projection)
INCEPTIONS = {
    'inception3a': (64, 96, 128, 16, 32, 32),
    'inception3b': (128, 128, 192, 32, 96, 64),
    'inception4a': (192, 96, 208, 16, 48, 64),
    'inception4b': (160, 112, 224, 24, 64, 64),
    'inception4c': (128, 128, 256, 24, 64, 64),
    'inception4d': (112, 144, 288, 32, 64, 64),
    'inception4e': (256, 160, 320, 32, 128, 128),
    'inception5a': (256, 160, 320, 32, 128, 128),
    'inception5b': (384, 192, 384, 48, 128, 128),
}
POOL_AFTER = {'inception3b': (3, 2), 'inception4e': (2, 2)}  # (kernel, stride), ceil_mode


class Inception(nn.Module):
  widths: tuple[int, int, int, int, int, int]

  @nn.compact
  def __call__(self, x, train: bool = False):
    c1, c3r, c3, c5r, c5, cp = self.widths
    b1 = ConvBN(c1, name='branch1', **TORCH)(x, train)
    b2 = ConvBN(c3r, name='branch2_0', **TORCH)(x, train)
    b2 = ConvBN(c3, kernel=3, name='branch2_1', **TORCH)(b2, train)
    b3 = ConvBN(c5r, name='branch3_0', **TORCH)(x, train)
    b3 = ConvBN(c5, kernel=3, name='branch3_1', **TORCH)(b3, train)
    b4 = max_pool(x, 3, 1, padding=1, ceil_mode=True)
    b4 = ConvBN(cp, name='branch4_1', **TORCH)(b4, train)
    return tap(self, jnp.concatenate([b1, b2, b3, b4], axis=-1))


class GoogLeNet(nn.Module):
  """Returns the final 1024-channel feature map (`inception5b`)."""

  @nn.compact
  def __call__(self, x, train: bool = False):
    x = ConvBN(64, kernel=7, stride=2, name='conv1', **TORCH)(x, train)
    x = max_pool(x, 3, 2, ceil_mode=True)
    x = ConvBN(64, name='conv2', **TORCH)(x, train)
    x = ConvBN(192, kernel=3, name='conv3', **TORCH)(x, train)
    x = max_pool(x, 3, 2, ceil_mode=True)
    for name, widths in INCEPTIONS.items():
      x = Inception(widths, name=name)(x, train)
      if name in POOL_AFTER:
        x = max_pool(x, *POOL_AFTER[name], ceil_mode=True)
    return x
