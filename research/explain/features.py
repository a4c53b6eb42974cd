"""Feature maps: every block's output for an image, as a grid of its first channels.

Blocks are the outermost tapped modules of the backbone (EfficientNet's MBConv
blocks, ResNet's bottlenecks, Inception's mixed layers...), read from the same
taps Grad-CAM differentiates against, in the order the model calls them.
"""
import functools
from pathlib import Path

import matplotlib

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # pylint: disable=wrong-import-position
import jax  # pylint: disable=wrong-import-position
import numpy as np  # pylint: disable=wrong-import-position
from flax import traverse_util  # pylint: disable=wrong-import-position

from research.models import call_order  # pylint: disable=wrong-import-position
from research.models.layers import TAP  # pylint: disable=wrong-import-position


@functools.lru_cache(maxsize=8)
def _rank(model, size: int) -> dict:
  """{module path: its place in the model's call order} (traced once per model and size)."""
  return {path: i for i, path in
          enumerate(call_order(model, jax.ShapeDtypeStruct((1, size, size, 3), np.uint8)))}


@functools.partial(jax.jit, static_argnums=0)
def taps_of(model, variables, images) -> dict:
  """Every tapped module's output (the 'intermediates' collection) for a batch, jitted: one
  compile instead of one per operation."""
  _, state = model.apply(variables, images, mutable=['intermediates'])
  return state['intermediates']


def block_activations(model, variables, image: np.ndarray) -> dict:
  """{block path: (h, w, channels) activations} for one uint8 HWC image, in call order."""
  taps = {k.removesuffix('/' + TAP): np.asarray(v[0]) for k, v in
          traverse_util.flatten_dict(taps_of(model, variables, image[None]), sep='/').items()}
  blocks = [k for k in taps if not any(k.startswith(o + '/') for o in taps)]
  rank = _rank(model, image.shape[0])
  return {k: taps[k] for k in sorted(blocks, key=rank.__getitem__)}


def save_grid(activation: np.ndarray, title: str, path: Path, channels: int = 16) -> None:
  """The first `channels` channels, each scaled to its own range."""
  shown = min(channels, activation.shape[-1])
  cols = int(np.ceil(np.sqrt(shown)))
  rows = int(np.ceil(shown / cols))
  fig, axes = plt.subplots(rows, cols, figsize=(1.6 * cols, 1.6 * rows + 0.5), squeeze=False)
  for i, ax in enumerate(axes.flat):
    ax.axis('off')
    if i < shown:
      ax.imshow(activation[..., i], cmap='viridis')
      ax.set_title(f'ch {i}', fontsize=7)
  fig.suptitle(title, fontsize=9)
  fig.tight_layout()
  path.parent.mkdir(parents=True, exist_ok=True)
  fig.savefig(path, dpi=80)
  plt.close(fig)
