"""Decoding images, and finding the ones that cannot be decoded before training starts.

Whatever the file holds, it is decoded to 8-bit RGB the same way in the check
and in training, so an image that passes the check cannot fail later: EXIF
orientation applied; greyscale, palette and CMYK converted; 16-bit scaled down;
transparent pixels composited onto white. Images declaring more than
`MAX_PIXELS` are refused before any pixel is decoded (bounded memory). What the check
finds for a file is kept (ScanCache): a later run on the same files decodes none of them
again.
"""
import functools
import io
import os
import sqlite3
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps
from tqdm import tqdm

from research import cache as cache_lib
from research.data.leakage import fingerprint
from research.data import tfds_source
from research.data.types import DataError

MAX_PIXELS = 50_000_000  # ~150 MB as RGB; a 20,000 x 20,000 image declares 400 M
SCAN_CACHE = 'scans-1.sqlite'  # ScanCache's file: a new name whenever decode or fingerprint change


class ImageTooLarge(ValueError):
  """The image declares more pixels than MAX_PIXELS."""


def to_rgb(image: Image.Image) -> Image.Image:
  if image.mode.startswith('I;16') or image.mode in ('I', 'F'):  # 16/32-bit greyscale
    pixels = np.asarray(image, dtype=np.float64)
    top = 65535.0 if image.mode.startswith('I;16') else max(pixels.max(), 1.0)
    image = Image.fromarray(np.clip(pixels / top * 255.0, 0, 255).astype(np.uint8), 'L')
  if image.mode in ('RGBA', 'LA', 'PA') or 'transparency' in image.info:
    rgba = image.convert('RGBA')
    image = Image.new('RGBA', rgba.size, (255, 255, 255, 255))
    image.alpha_composite(rgba)
  return image.convert('RGB')


def read_file(path: str) -> bytes:
  with open(path, 'rb') as f:
    return f.read()


# How an image path is read, by its scheme ('tfds:<dataset dir>#<split>/<index>'); a path
# without one of these is a file.
READERS = {tfds_source.PREFIX: tfds_source.read}


def read_bytes(path: str) -> bytes:
  """The encoded image behind `path` (see READERS)."""
  reader = next((r for prefix, r in READERS.items() if path.startswith(prefix)), read_file)
  return reader(path)


def decode(data: bytes) -> Image.Image:
  """An encoded image as 8-bit RGB, upright."""
  with Image.open(io.BytesIO(data)) as image:
    if image.width * image.height > MAX_PIXELS:
      raise ImageTooLarge(f'{image.width}x{image.height} pixels, more than {MAX_PIXELS:,}')
    image = ImageOps.exif_transpose(image)
    return to_rgb(image)


def resize(image, size: int) -> np.ndarray:
  """An RGB PIL image (as `decode` gives) or a uint8 HWC array as uint8 (size, size, 3), as
  training sees it."""
  if not isinstance(image, Image.Image):  # only arrays need converting: decode gives RGB
    image = Image.fromarray(np.asarray(image, np.uint8)).convert('RGB')
  return np.asarray(image.resize((size, size), Image.BILINEAR))


def load_image(path: str, size: int) -> np.ndarray:
  """uint8 (size, size, 3), decoded by `decode`."""
  return resize(decode(read_bytes(path)), size)


def inspect_image(path: str, with_fingerprint: bool = True) -> tuple[str | None, tuple | None]:
  """(why `path` cannot be decoded, None) or (None, its leakage fingerprint if asked)."""
  try:
    data = read_bytes(path)
    image = decode(data)
    return None, fingerprint(data, image) if with_fingerprint else None
  except Exception as e:  # pylint: disable=broad-except  (PIL raises many kinds)
    return f'{type(e).__name__}: {e}', None


def inspect_all(paths, with_fingerprint: bool, threads: int = 8) -> list[tuple]:
  """`inspect_image` of every path, in threads (decoding releases the GIL)."""
  inspect = functools.partial(inspect_image, with_fingerprint=with_fingerprint)
  with ThreadPoolExecutor(threads) as pool:
    return list(tqdm(pool.map(inspect, paths), total=len(paths), desc='checking images',
                     unit='img', leave=False, disable=None))


def unreadable(paths) -> dict[str, str]:
  """{path: reason} for the images `decode` refuses (no fingerprints: see `scan_images`)."""
  return {p: r for p, (r, _) in zip(paths, inspect_all(paths, False)) if r is not None}


class ScanCache:
  """What `inspect_image` found for image files, known by path, size and modification time
  (a file changed under its name is another file): one SQLite file that runs, and processes
  at once, share. Paths that are not files (tfds records) are not kept. A cache that cannot
  be opened, read or written (a read-only home, a damaged file) is passed over: the scan
  decodes what it would have read."""

  def __init__(self, path: Path):
    path.parent.mkdir(parents=True, exist_ok=True)
    self.db = sqlite3.connect(path, timeout=600)
    with self.db:
      self.db.execute('CREATE TABLE IF NOT EXISTS scans (path TEXT, size INTEGER, mtime INTEGER, '
                      'reason TEXT, digest TEXT, hash BLOB, mirror BLOB, '
                      'PRIMARY KEY (path, size, mtime))')

  @classmethod
  def open(cls, path: Path | None):
    """The cache at `path`; None without one, or where it cannot be used."""
    try:
      return cls(path) if path else None
    except (OSError, sqlite3.Error):
      return None

  def get(self, keys: dict) -> dict:
    """{path: (reason, fingerprint)} of the paths whose key the cache holds."""
    found = {}
    try:
      for path, key in keys.items():
        row = key and self.db.execute('SELECT reason, digest, hash, mirror FROM scans WHERE '
                                      'path = ? AND size = ? AND mtime = ?', key).fetchone()
        if row:
          reason, digest, phash, mirror = row
          found[path] = (reason, None if reason else (
              digest, np.frombuffer(phash, np.uint8), np.frombuffer(mirror, np.uint8)))
    except sqlite3.Error:
      return {}
    return found

  def put(self, keys: dict, results: dict) -> None:
    try:
      with self.db:
        self.db.executemany('INSERT OR REPLACE INTO scans VALUES (?, ?, ?, ?, ?, ?, ?)', [
            (*keys[p], reason, *((f[0], f[1].tobytes(), f[2].tobytes()) if f else (None,) * 3))
            for p, (reason, f) in results.items() if keys[p]])
    except sqlite3.Error:
      pass  # what was scanned stays right; the next run scans it again
    finally:
      self.db.close()


def scan_images(paths, policy: str, threads: int = 8,
                cache: Path | None = None) -> tuple[dict[str, str], dict]:
  """Decodes every image once: ({path: reason} for those that fail, {path: fingerprint} for
  the others; see research.data.leakage). With `cache` (a ScanCache file), images scanned
  before, unchanged since, are not decoded again.

  policy 'error' raises on the first bad one; 'skip' lets the caller drop them.
  """
  store = ScanCache.open(cache)
  keys = {p: cache_lib.identity(os.path.abspath(p)) for p in paths} if store else {}
  known = store.get(keys) if store else {}
  todo = [p for p in paths if p not in known]
  found = dict(zip(todo, inspect_all(todo, True, threads)))
  if store:
    store.put(keys, found)
  results = [known.get(p) or found[p] for p in paths]
  bad = {p: r for p, (r, _) in zip(paths, results) if r is not None}
  if bad and policy == 'error':
    path, reason = next(iter(bad.items()))
    raise DataError(f'cannot read image {path} ({reason}): fix or delete it, or set '
                    f'--config.data.on_bad_image=skip')
  return bad, {p: f for p, (_, f) in zip(paths, results) if f is not None}
