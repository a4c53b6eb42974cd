"""ResNet-50/101/152 (He et al.), ported from torchvision's layout (`layer4.0.conv1`).

torchvision's v1.5 bottleneck: the stride sits on the 3x3 conv; BN eps 1e-5,
momentum 0.1 (Flax 0.9); the stem max-pool pads one pixel on every side.
"""
import flax.linen as nn

from research.models.layers import ConvBN, max_pool, tap

DEPTHS = {'resnet50': (3, 4, 6, 3), 'resnet101': (3, 4, 23, 3), 'resnet152': (3, 8, 36, 3)}
TORCH = dict(padding='symmetric', bn_eps=1e-5, bn_momentum=0.9)


class Bottleneck(nn.Module):
  width: int
  stride: int = 1
  downsample: bool = False

  @nn.compact
  def __call__(self, x, train: bool = False):
    y = ConvBN(self.width, act=nn.relu, name='conv1', **TORCH)(x, train)
    y = ConvBN(self.width, kernel=3, stride=self.stride, act=nn.relu, name='conv2', **TORCH)(y, train)
    y = ConvBN(self.width * 4, act=None, name='conv3', **TORCH)(y, train)
    if self.downsample:
      x = ConvBN(self.width * 4, stride=self.stride, act=None, name='downsample', **TORCH)(x, train)
    return tap(self, nn.relu(y + x))


class ResNet(nn.Module):
  """Returns the final 2048-channel feature map (`layer4`)."""
  depths: tuple[int, int, int, int]

  @nn.compact
  def __call__(self, x, train: bool = False):
    x = ConvBN(64, kernel=7, stride=2, act=nn.relu, name='stem', **TORCH)(x, train)
    x = max_pool(x, 3, 2, padding=1)
    for stage, depth in enumerate(self.depths):
      for i in range(depth):
        stride = 2 if stage > 0 and i == 0 else 1
        x = Bottleneck(64 * 2**stage, stride, downsample=i == 0,
                       name=f'layer{stage + 1}_{i}')(x, train)
    return x
