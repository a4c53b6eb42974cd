"""The same image in two splits: exact copies and resized, flipped or re-encoded ones.

The 20-classes write-up augmented before splitting, so copies of one photo
landed in train and test and its test accuracy leaked. Each image gets a
sha256 of its file (exact copies) and a 256-bit DCT perceptual hash of itself
and of its mirror image (near copies: a resized or re-encoded copy is within a
few bits, a flipped one matches the mirror's hash). 256 bits rather than the
usual 64: ELPV's cells share one layout, and at 64 bits distinct cells collide.
"""
import hashlib

import numpy as np
import scipy.fft
from PIL import Image


def perceptual_hash(image: Image.Image) -> np.ndarray:
  """pHash, 256 bits (32 uint8): the 16x16 lowest DCT frequencies of the 64x64 greyscale
  image, each above or below their median."""
  grey = np.asarray(image.convert('L').resize((64, 64), Image.LANCZOS), dtype=np.float64)
  low = scipy.fft.dctn(grey, norm='ortho')[:16, :16].ravel()
  return np.packbits(low > np.median(low[1:]))


def fingerprint(data: bytes, image: Image.Image) -> tuple[str, np.ndarray, np.ndarray]:
  """(sha256 of the encoded `data`, pHash, pHash of the mirror image) of its decoded `image`."""
  digest = hashlib.sha256(data).hexdigest()
  mirror = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
  return digest, perceptual_hash(image), perceptual_hash(mirror)


def find_leaks(split: dict[str, list], fingerprints: dict, max_bits: int) -> list[dict]:
  """Pairs of images in different splits that are the same image: exact (same file content)
  or near (pHash distance <= `max_bits` of 256, the mirror's hash included), closest first."""
  paths = [p for name in split for p, _ in split[name]]
  where = [name for name in split for _ in split[name]]
  digests = [fingerprints[p][0] for p in paths]
  hashes = np.stack([fingerprints[p][1] for p in paths])
  mirrors = np.stack([fingerprints[p][2] for p in paths])
  names = np.array(where)
  bits = lambda a, b: np.bitwise_count(a[:, None] ^ b[None]).sum(-1, dtype=np.int32)
  leaks = []
  for start in range(0, len(paths), 256):  # rows in chunks: bounded memory
    rows = slice(start, start + 256)
    distance = np.minimum(bits(hashes[rows], hashes), bits(hashes[rows], mirrors))
    other_split = names[rows, None] != names[None, :]
    for i, j in zip(*np.nonzero((distance <= max_bits) & other_split)):
      i += start
      if i < j:
        exact = digests[i] == digests[j]
        leaks.append({'a': paths[i], 'split_a': where[i], 'b': paths[j], 'split_b': where[j],
                      'kind': 'exact' if exact else 'near', 'bits': int(distance[i - start, j])})
  return sorted(leaks, key=lambda leak: (leak['bits'], leak['a']))
