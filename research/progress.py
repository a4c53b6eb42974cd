"""Progress: tqdm bars at a terminal; written to a file or a CI log (not a terminal), no bars
(their carriage-return frames fill a log) — the train loop logs plain lines there instead."""
import sys

from tqdm import tqdm


def interactive() -> bool:
  return sys.stderr.isatty()


def bar(*args, **kwargs) -> tqdm:
  """A tqdm bar, disabled when stderr is not a terminal."""
  return tqdm(*args, disable=not interactive(), **kwargs)
