"""Decoding images, and finding the ones that cannot be decoded before training starts."""
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from PIL import Image, ImageOps
from tqdm import tqdm

from research.data.sources import DataError


def load_image(path: str, size: int) -> np.ndarray:
  """uint8 (size, size, 3): EXIF orientation applied, greyscale/alpha/palette made RGB."""
  with Image.open(path) as image:
    image = ImageOps.exif_transpose(image).convert('RGB')
    return np.asarray(image.resize((size, size), Image.BILINEAR))


def unreadable(path: str) -> str | None:
  """The reason `path` cannot be decoded, or None if it can."""
  try:
    with Image.open(path) as image:
      image.load()
  except Exception as e:  # pylint: disable=broad-except  (PIL raises many kinds)
    return f'{type(e).__name__}: {e}'
  return None


def find_bad_images(paths, policy: str, threads: int = 8) -> dict[str, str]:
  """Decodes every image once; returns {path: reason} for those that fail.

  policy 'error' raises on the first bad one; 'skip' lets the caller drop them.
  """
  with ThreadPoolExecutor(threads) as pool:
    reasons = list(tqdm(pool.map(unreadable, paths), total=len(paths), desc='checking images',
                        unit='img', leave=False))
  bad = {p: r for p, r in zip(paths, reasons) if r is not None}
  if bad and policy == 'error':
    path, reason = next(iter(bad.items()))
    raise DataError(f'cannot read image {path} ({reason}): fix or delete it, or set '
                    f'--config.data.on_bad_image=skip')
  return bad
