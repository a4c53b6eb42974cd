"""Grad-CAM heatmaps over their images, as PNG."""
from pathlib import Path

import matplotlib

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # pylint: disable=wrong-import-position
import numpy as np  # pylint: disable=wrong-import-position
from PIL import Image  # pylint: disable=wrong-import-position


def upsample(cam: np.ndarray, size: tuple[int, int]) -> np.ndarray:
  return np.asarray(Image.fromarray(cam.astype(np.float32)).resize(size, Image.BILINEAR))


def save_overlay(image: np.ndarray, cam: np.ndarray, title: str, path: Path) -> None:
  """Side by side: the image, and the image under the heatmap."""
  heat = upsample(cam, image.shape[1::-1])
  fig, axes = plt.subplots(1, 2, figsize=(6.4, 3.6))
  axes[0].imshow(image)
  axes[1].imshow(image)
  axes[1].imshow(heat, cmap='jet', alpha=0.45, vmin=0, vmax=1)
  for ax in axes:
    ax.axis('off')
  fig.suptitle(title, fontsize=9)
  fig.tight_layout()
  path.parent.mkdir(parents=True, exist_ok=True)
  fig.savefig(path, dpi=100)
  plt.close(fig)
