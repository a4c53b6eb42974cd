"""MobileNetV2 (Sandler et al.), ported from torchvision's layout (`features.N`).

torchvision pads symmetrically (k//2) and uses BN eps 1e-5, momentum 0.1
(Flax momentum 0.9).
"""
import flax.linen as nn

from research.models.layers import ConvBN, InvertedResidual

# (expand_ratio, out_channels, repeats, first stride) per stage, torchvision's table.
STAGES = (
    (1, 16, 1, 1),
    (6, 24, 2, 2),
    (6, 32, 3, 2),
    (6, 64, 4, 2),
    (6, 96, 3, 1),
    (6, 160, 3, 2),
    (6, 320, 1, 1),
)
BN = dict(padding='symmetric', bn_eps=1e-5, bn_momentum=0.9)


class MobileNetV2(nn.Module):
  """Returns the final 1280-channel feature map (`features.18`)."""

  @nn.compact
  def __call__(self, x, train: bool = False):
    x = ConvBN(32, kernel=3, stride=2, name='features_0', **BN)(x, train)
    cin, index = 32, 1
    for expand, cout, repeats, stride in STAGES:
      for r in range(repeats):
        x = InvertedResidual(cin, cout, 3, stride if r == 0 else 1, expand,
                             name=f'features_{index}', **BN)(x, train)
        cin, index = cout, index + 1
    return ConvBN(1280, name=f'features_{index}', **BN)(x, train)
