"""Building blocks shared by the ported backbones.

Every `ConvBN` and `InvertedResidual` taps its output (see `tap`), so any of
them can be read back (block-by-block parity tests) or differentiated against
(Grad-CAM) by its module path, e.g. ``backbone/blocks_15`` or ``backbone/head``.
"""
from typing import Any, Callable

import flax.linen as nn
import jax.numpy as jnp

TAP = 'out'


def tap(module: nn.Module, x: jnp.ndarray) -> jnp.ndarray:
  """Makes `x` readable ('intermediates') and differentiable ('perturbations').

  Both are no-ops unless the caller asks for those collections.
  """
  x = module.perturb(TAP, x)
  module.sow('intermediates', TAP, x, init_fn=lambda: None, reduce_fn=lambda _, v: v)
  return x


def same_or_symmetric(kernel: int, padding: str) -> Any:
  """'SAME' is TensorFlow's (extra pixel bottom/right); 'symmetric' is torch's k//2."""
  if padding == 'SAME':
    return 'SAME'
  return ((kernel // 2, kernel // 2), (kernel // 2, kernel // 2))


class ConvBN(nn.Module):
  """Conv (no bias) -> BatchNorm -> optional activation."""
  features: int
  kernel: int = 1
  stride: int = 1
  groups: int = 1
  padding: str = 'SAME'
  act: Callable | None = nn.relu6
  bn_eps: float = 1e-3
  bn_momentum: float = 0.99

  @nn.compact
  def __call__(self, x, train: bool = False):
    x = nn.Conv(self.features, (self.kernel, self.kernel), (self.stride, self.stride),
                padding=same_or_symmetric(self.kernel, self.padding),
                feature_group_count=self.groups, use_bias=False, name='conv')(x)
    x = nn.BatchNorm(momentum=self.bn_momentum, epsilon=self.bn_eps, name='bn')(
        x, use_running_average=not train)
    if self.act is not None:
      x = self.act(x)
    return tap(self, x)


class InvertedResidual(nn.Module):
  """MobileNetV2 block = EfficientNet's MBConv without squeeze-excite.

  expand 1x1 (skipped when expand_ratio == 1) -> depthwise kxk -> project 1x1,
  with a residual connection when the shape is unchanged.
  """
  in_features: int
  out_features: int
  kernel: int
  stride: int
  expand_ratio: int
  padding: str = 'SAME'
  bn_eps: float = 1e-3
  bn_momentum: float = 0.99

  @nn.compact
  def __call__(self, x, train: bool = False):
    conv = lambda **kw: ConvBN(padding=self.padding, bn_eps=self.bn_eps,
                               bn_momentum=self.bn_momentum, **kw)
    hidden = self.in_features * self.expand_ratio
    y = x
    if self.expand_ratio != 1:
      y = conv(features=hidden, name='expand')(y, train)
    y = conv(features=hidden, kernel=self.kernel, stride=self.stride, groups=hidden,
             name='depthwise')(y, train)
    y = conv(features=self.out_features, act=None, name='project')(y, train)
    if self.stride == 1 and self.in_features == self.out_features:
      y = y + x
    return tap(self, y)

