"""The 20-classes-of-people baseline: 2 x (conv 3x3 + ReLU + max-pool 2x2), no pretraining."""
import flax.linen as nn

from research.models import layers
from research.models.layers import tap


class SimpleCNN(nn.Module):
  features: tuple[int, ...] = (32, 64)

  @nn.compact
  def __call__(self, x, train: bool = False):
    del train  # no batch norm or dropout in the backbone
    for i, n in enumerate(self.features):
      x = nn.relu(nn.Conv(n, (3, 3), padding='SAME', dtype=x.dtype, name=f'conv_{i}')(x))
      x = layers.max_pool(x, 2, 2)
    return tap(self, x)
