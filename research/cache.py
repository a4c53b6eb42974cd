"""Where this project keeps what later runs reuse (weight files, compiled steps, image scans):
`$RESEARCH_CACHE`, else `$XDG_CACHE_HOME/research`, else ~/.cache/research."""
import os
from pathlib import Path


def identity(path: str) -> tuple | None:
  """A file as a cache knows it: (path, size, modification time), so that a file changed
  under the same name is another file; None where `path` is not a file (a tfds record)."""
  try:
    stat = os.stat(path)
  except OSError:
    return None
  return path, stat.st_size, stat.st_mtime_ns


def directory(name: str) -> Path:
  root = os.environ.get('RESEARCH_CACHE') or Path(
      os.environ.get('XDG_CACHE_HOME') or Path.home() / '.cache') / 'research'
  return Path(root) / name
