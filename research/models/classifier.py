"""Backbone + new head: the model every experiment trains."""
from typing import Sequence

import flax.linen as nn
import jax.numpy as jnp


def pool(x, pooling: str):
  """'avg': global average pooling (what the ImageNet classifiers use); 'flatten': the
  Keras-style ``F-D(1024)-...`` heads. Float32 whatever the backbone computed in."""
  x = x.astype(jnp.float32)
  return x.mean(axis=(1, 2)) if pooling == 'avg' else x.reshape(x.shape[0], -1)


class Head(nn.Module):
  """`[Dropout -> Dense(n) -> ReLU] * k`, then Dropout -> Dense(num_outputs), on pooled
  features."""
  num_outputs: int
  hidden: Sequence[int] = ()
  dropout: float = 0.0
  pooling: str = 'avg'

  @nn.compact
  def __call__(self, x, train: bool = False):
    for i, width in enumerate(self.hidden):
      x = nn.Dropout(self.dropout, deterministic=not train)(x)
      x = nn.relu(nn.Dense(width, name=f'hidden_{i}')(x))
    x = nn.Dropout(self.dropout, deterministic=not train)(x)
    return nn.Dense(self.num_outputs, name='logits')(x)


class Classifier(nn.Module):
  """Takes uint8 images (N, H, W, 3); normalises them the way the backbone was trained.
  With `dtype='bfloat16'` every backbone layer computes in bfloat16 (its float32
  parameters cast on use) and the head in float32.

  `features` (the backbone in inference mode, pooled) and `classify` (the head) split
  the model where a frozen backbone's outputs can be computed once and cached.
  """
  backbone: nn.Module
  head: Head
  mean: Sequence[float]
  std: Sequence[float]
  dtype: str = 'float32'  # the backbone's compute dtype; parameters and statistics stay float32

  def backbone_map(self, images, train: bool = False):
    x = (images.astype(jnp.float32) - jnp.asarray(self.mean)) / jnp.asarray(self.std)
    return self.backbone(x.astype(self.dtype), train)

  def __call__(self, images, train: bool = False):
    return self.classify(pool(self.backbone_map(images, train), self.head.pooling), train)

  def features(self, images):
    return pool(self.backbone_map(images, False), self.head.pooling)

  def classify(self, features, train: bool = False):
    return self.head(features, train)
