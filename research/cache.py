"""Where this project keeps what later runs reuse (weight files, compiled steps, image scans):
`$RESEARCH_CACHE`, else `$XDG_CACHE_HOME/research`, else ~/.cache/research."""
import os
from pathlib import Path


def directory(name: str) -> Path:
  root = os.environ.get('RESEARCH_CACHE') or Path(
      os.environ.get('XDG_CACHE_HOME') or Path.home() / '.cache') / 'research'
  return Path(root) / name
