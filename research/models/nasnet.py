"""NASNet-A Mobile (Zoph et al.), ported from `keras.applications.NASNetMobile`.

Layer names follow Keras's cells (`normal_conv_1_5`, `separable_conv_2_reduction_left1_stem_1`,
`adjust_bn_reduce_4`). Keras pads strided convs and pools with explicit zeros
(ZeroPadding2D(correct_pad)), so those max pools see zeros, not -inf; stride-1
average pools are 'same' and exclude the padding. BatchNorm momentum 0.9997.
"""
import flax.linen as nn
import jax
import jax.numpy as jnp

from research.models import layers
from research.models.keras_layers import SeparableConv2D, Tap, batch_norm, conv, zero_pad_same


class NASNetMobile(nn.Module):
  """Takes inputs in [-1, 1]; returns the final 1056-channel feature map (`activation_187`)."""
  penultimate_filters: int = 1056
  num_blocks: int = 4
  stem_filters: int = 32
  filter_multiplier: int = 2

  @nn.compact
  def __call__(self, x, train: bool = False):  # pylint: disable=too-many-statements
    bn = lambda name: batch_norm(name, train, momentum=0.9997)
    cat = lambda *xs: jnp.concatenate(xs, axis=-1)
    avg3 = lambda x: nn.avg_pool(x, window_shape=(3, 3), padding='SAME',
                                count_include_pad=False)

    def separable(x, filters, kernel, block_id, stride=1):
      x = nn.relu(x)
      padding = 'SAME'
      if stride == 2:
        x, padding = zero_pad_same(x, kernel), 'VALID'
      x = SeparableConv2D(filters, kernel, stride, padding, name=f'separable_conv_1_{block_id}')(x)
      x = nn.relu(bn(f'separable_conv_1_bn_{block_id}')(x))
      x = SeparableConv2D(filters, kernel, name=f'separable_conv_2_{block_id}')(x)
      return bn(f'separable_conv_2_bn_{block_id}')(x)

    def adjust(p, ip, filters, block_id):
      """Brings the previous cell's output `p` to `ip`'s size and `filters` channels."""
      if p is None:
        return ip
      if p.shape[2] != ip.shape[2]:
        p = nn.relu(p)
        # lax.slice, not numpy indexing: with a symbolic batch (export) indexing is a gather
        every_2nd = lambda x, start=0: jax.lax.slice(
            x, (0, start, start, 0), x.shape, (1, 2, 2, 1))
        p1 = conv(filters // 2, 1, f'adjust_conv_1_{block_id}')(every_2nd(p))
        padded = jnp.pad(p, ((0, 0), (0, 1), (0, 1), (0, 0)))  # pad, crop 1, then every 2nd
        p2 = conv(filters // 2, 1, f'adjust_conv_2_{block_id}')(every_2nd(padded, 1))
        return bn(f'adjust_bn_{block_id}')(cat(p1, p2))
      if p.shape[-1] != filters:
        p = conv(filters, 1, f'adjust_conv_projection_{block_id}')(nn.relu(p))
        return bn(f'adjust_bn_{block_id}')(p)
      return p

    def normal_cell(ip, p, filters, block_id):
      p = adjust(p, ip, filters, block_id)
      h = bn(f'normal_bn_1_{block_id}')(conv(filters, 1, f'normal_conv_1_{block_id}')(nn.relu(ip)))
      x1 = (separable(h, filters, 5, f'normal_left1_{block_id}')
            + separable(p, filters, 3, f'normal_right1_{block_id}'))
      x2 = (separable(p, filters, 5, f'normal_left2_{block_id}')
            + separable(p, filters, 3, f'normal_right2_{block_id}'))
      x3 = avg3(h) + p
      x4 = avg3(p) + avg3(p)
      x5 = separable(h, filters, 3, f'normal_left5_{block_id}') + h
      return Tap(name=f'normal_concat_{block_id}')(cat(p, x1, x2, x3, x4, x5)), ip

    def reduction_cell(ip, p, filters, block_id):
      p = adjust(p, ip, filters, block_id)
      h = nn.relu(ip)
      h = bn(f'reduction_bn_1_{block_id}')(conv(filters, 1, f'reduction_conv_1_{block_id}')(h))
      h3 = zero_pad_same(h, 3)
      x1 = (separable(h, filters, 5, f'reduction_left1_{block_id}', stride=2)
            + separable(p, filters, 7, f'reduction_right1_{block_id}', stride=2))
      x2 = (layers.max_pool(h3, 3, 2)
            + separable(p, filters, 7, f'reduction_right2_{block_id}', stride=2))
      x3 = (nn.avg_pool(h3, window_shape=(3, 3), strides=(2, 2))
            + separable(p, filters, 5, f'reduction_right3_{block_id}', stride=2))
      x4 = avg3(x1) + x2
      x5 = (separable(x1, filters, 3, f'reduction_left4_{block_id}')
            + layers.max_pool(h3, 3, 2))
      return Tap(name=f'reduction_concat_{block_id}')(cat(x2, x3, x4, x5)), ip

    n, m = self.num_blocks, self.filter_multiplier
    filters = self.penultimate_filters // 24
    x = conv(self.stem_filters, 3, 'stem_conv1', stride=2, padding='VALID')(x)
    x = bn('stem_bn1')(x)
    x, p = reduction_cell(x, None, filters // m ** 2, 'stem_1')
    x, p = reduction_cell(x, p, filters // m, 'stem_2')
    for stage in range(3):
      if stage:
        x, p = reduction_cell(x, p, filters * m ** stage, f'reduce_{stage * n}')
      for i in range(n):
        x, p = normal_cell(x, p, filters * m ** stage, f'{stage * n + i + (1 if stage else 0)}')
    return Tap(name='activation_187')(nn.relu(x))  # Keras's name for it in a fresh session
