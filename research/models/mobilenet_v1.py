"""MobileNet v1 (Howard et al.), ported from `keras.applications.MobileNet` (alpha 1.0).

Keras pads stride-2 depthwise convs with ZeroPadding2D((0, 1), (0, 1)) and a
'valid' conv, which is not TF 'SAME' on odd sizes: the padding is explicit here.
"""
import flax.linen as nn

from research.models.keras_layers import DepthwiseConv2D, Tap, batch_norm, conv

# (pointwise filters, stride) of depthwise-separable blocks 1..13.
BLOCKS = ((64, 1), (128, 2), (128, 1), (256, 2), (256, 1), (512, 2), (512, 1), (512, 1),
          (512, 1), (512, 1), (512, 1), (1024, 2), (1024, 1))


class MobileNetV1(nn.Module):
  """Returns the final 1024-channel feature map (`conv_pw_13_relu`)."""

  @nn.compact
  def __call__(self, x, train: bool = False):
    x = conv(32, 3, 'conv1', stride=2)(x)
    x = Tap(name='conv1_relu')(nn.relu6(batch_norm('conv1_bn', train)(x)))
    for i, (filters, stride) in enumerate(BLOCKS, start=1):
      padding = 'SAME' if stride == 1 else ((0, 1), (0, 1))
      x = DepthwiseConv2D(3, stride, padding, name=f'conv_dw_{i}')(x)
      x = nn.relu6(batch_norm(f'conv_dw_{i}_bn', train)(x))
      x = conv(filters, 1, f'conv_pw_{i}')(x)
      x = Tap(name=f'conv_pw_{i}_relu')(nn.relu6(batch_norm(f'conv_pw_{i}_bn', train)(x)))
    return x
