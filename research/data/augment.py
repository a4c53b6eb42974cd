"""Keras ImageDataGenerator-style augmentation: one random affine warp plus a flip.

rotation: degrees, uniform in [-r, r]; shear: degrees (Keras' unit), uniform in
[-s, s]; zoom: x and y scales independently uniform in [1-z, 1+z]; hflip: 50%.
Pixels pulled from outside the image repeat the edge (Keras' fill_mode='nearest').
"""
import numpy as np
from scipy import ndimage


def random_affine_matrix(rng: np.random.Generator, rotation: float, shear: float,
                         zoom: float) -> np.ndarray:
  """2x2 map from output (row, col) to input (row, col), as Keras composes it."""
  theta = np.deg2rad(rng.uniform(-rotation, rotation))
  phi = np.deg2rad(rng.uniform(-shear, shear))
  zx, zy = rng.uniform(1 - zoom, 1 + zoom, size=2)
  rotate = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
  shear_m = np.array([[1, -np.sin(phi)], [0, np.cos(phi)]])
  return rotate @ shear_m @ np.diag([zx, zy])


def augments(cfg) -> bool:
  """Whether `cfg` changes images at all."""
  return bool(cfg.rotation or cfg.shear or cfg.zoom or cfg.hflip)


def augment(image: np.ndarray, rng: np.random.Generator, cfg) -> np.ndarray:
  """`image` uint8 (H, W, C); `cfg` has rotation, shear, zoom, hflip."""
  matrix = random_affine_matrix(rng, cfg.rotation, cfg.shear, cfg.zoom)
  flip = cfg.hflip and rng.uniform() < 0.5
  if not np.allclose(matrix, np.eye(2)):
    center = (np.array(image.shape[:2]) - 1) / 2
    full = np.eye(3)
    full[:2, :2] = matrix
    offset = np.append(center - matrix @ center, 0)
    image = ndimage.affine_transform(image.astype(np.float32), full, offset, order=1,
                                     mode='nearest')
    image = np.clip(np.rint(image), 0, 255).astype(np.uint8)
  return image[:, ::-1] if flip else image
