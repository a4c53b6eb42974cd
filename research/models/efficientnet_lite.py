"""EfficientNet-Lite (Tan & Le; TF-Lite variant), ported from lukemelas' PyTorch layout.

Lite differs from EfficientNet-B*: ReLU6 instead of swish, no squeeze-excite,
stem (32) and head (1280) not scaled, first/last stage repeats not scaled.
Padding is TensorFlow 'SAME' (the weights were trained in TF), BN eps 1e-3.
"""
import math

import flax.linen as nn

from research.models.layers import ConvBN, InvertedResidual

# (repeats, kernel, stride, expand_ratio, in_filters, out_filters) per stage.
STAGES = (
    (1, 3, 1, 1, 32, 16),
    (2, 3, 2, 6, 16, 24),
    (2, 5, 2, 6, 24, 40),
    (3, 3, 2, 6, 40, 80),
    (3, 5, 1, 6, 80, 112),
    (4, 5, 2, 6, 112, 192),
    (1, 3, 1, 6, 192, 320),
)
# name: (width multiplier, depth multiplier, input size)
VARIANTS = {
    'efficientnet_lite0': (1.0, 1.0, 224),
    'efficientnet_lite1': (1.0, 1.1, 240),
    'efficientnet_lite2': (1.1, 1.2, 260),
}


def round_filters(filters: int, width: float, divisor: int = 8) -> int:
  scaled = filters * width
  rounded = max(divisor, int(scaled + divisor / 2) // divisor * divisor)
  return int(rounded + divisor if rounded < 0.9 * scaled else rounded)


def block_specs(width: float, depth: float):
  """One (in, out, kernel, stride, expand) tuple per block, as the reference builds them."""
  specs = []
  for i, (repeats, kernel, stride, expand, cin, cout) in enumerate(STAGES):
    fixed = i in (0, len(STAGES) - 1)
    repeats = repeats if fixed else int(math.ceil(depth * repeats))
    cin = 32 if i == 0 else round_filters(cin, width)
    cout = round_filters(cout, width)
    for r in range(repeats):
      specs.append((cin if r == 0 else cout, cout, kernel, stride if r == 0 else 1, expand))
  return specs


class EfficientNetLite(nn.Module):
  """Returns the final 1280-channel feature map (before pooling)."""
  width: float = 1.0
  depth: float = 1.0

  @nn.compact
  def __call__(self, x, train: bool = False):
    x = ConvBN(32, kernel=3, stride=2, name='stem')(x, train)
    for i, (cin, cout, kernel, stride, expand) in enumerate(block_specs(self.width, self.depth)):
      x = InvertedResidual(cin, cout, kernel, stride, expand, name=f'blocks_{i}')(x, train)
    return ConvBN(1280, name='head')(x, train)
