"""Backbone + new head: the model every experiment trains."""
from typing import Sequence

import flax.linen as nn
import jax.numpy as jnp


class Head(nn.Module):
  """Pooling, then `[Dropout -> Dense(n) -> ReLU] * k`, then Dropout -> Dense(num_outputs).

  `pooling='flatten'` gives the Keras-style ``F-D(1024)-...`` heads; 'avg' is
  global average pooling (what the ImageNet classifiers use).
  """
  num_outputs: int
  hidden: Sequence[int] = ()
  dropout: float = 0.0
  pooling: str = 'avg'

  @nn.compact
  def __call__(self, x, train: bool = False):
    x = x.mean(axis=(1, 2)) if self.pooling == 'avg' else x.reshape(x.shape[0], -1)
    for i, width in enumerate(self.hidden):
      x = nn.Dropout(self.dropout, deterministic=not train)(x)
      x = nn.relu(nn.Dense(width, name=f'hidden_{i}')(x))
    x = nn.Dropout(self.dropout, deterministic=not train)(x)
    return nn.Dense(self.num_outputs, name='logits')(x)


class Classifier(nn.Module):
  """Takes uint8 images (N, H, W, 3); normalises them the way the backbone was trained."""
  backbone: nn.Module
  head: Head
  mean: Sequence[float]
  std: Sequence[float]

  def __call__(self, images, train: bool = False):
    x = (images.astype(jnp.float32) - jnp.asarray(self.mean)) / jnp.asarray(self.std)
    return self.head(self.backbone(x, train), train)
