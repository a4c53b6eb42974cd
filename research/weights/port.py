"""Porting a PyTorch state_dict into Flax variables through a key table."""
import re
from typing import Iterable

import numpy as np
from flax import traverse_util

from research.errors import UserError

# torch leaf name -> (Flax collection, Flax leaf name)
LEAVES = {
    'weight': ('params', None),  # 'kernel' (conv/dense) or 'scale' (batch norm), by rank
    'bias': ('params', 'bias'),
    'running_mean': ('batch_stats', 'mean'),
    'running_var': ('batch_stats', 'var'),
}
IGNORED_LEAVES = ('num_batches_tracked',)


class PortError(UserError, RuntimeError):
  """A weight file does not fit the model it is loaded into."""


def read_torch_file(path) -> dict[str, np.ndarray]:
  """Reads a `.pth` state_dict. torch is imported here only, never on the training path."""
  import torch  # pylint: disable=import-outside-toplevel
  state = torch.load(path, map_location='cpu', weights_only=True)
  state = state.get('state_dict', state)
  return {k: v.numpy() for k, v in state.items()}


def convert_leaf(leaf: str, value: np.ndarray) -> tuple[str, str, np.ndarray]:
  collection, name = LEAVES[leaf]
  if leaf == 'weight':
    if value.ndim == 4:  # OIHW -> HWIO; depthwise (C,1,H,W) -> (H,W,1,C)
      return collection, 'kernel', value.transpose(2, 3, 1, 0)
    if value.ndim == 2:  # Linear (out, in) -> (in, out)
      return collection, 'kernel', value.T
    return collection, 'scale', value
  return collection, name, value


def port_state_dict(state: dict[str, np.ndarray], table) -> dict[str, np.ndarray]:
  """Returns {'params/backbone/...': array, 'batch_stats/...': array} for every source key."""
  rules = [(re.compile(pattern), target) for pattern, target in table]
  ported = {}
  for key, value in state.items():
    module, _, leaf = key.rpartition('.')
    if leaf in IGNORED_LEAVES:
      continue
    for pattern, target in rules:
      match = pattern.fullmatch(module)
      if match and target is None:  # a row that drops what it matches
        break
      if match and leaf in LEAVES:
        collection, name, array = convert_leaf(leaf, value)
        ported[f'{collection}/{target.format(*match.groups())}/{name}'] = array
        break
    else:
      raise PortError(f'weight file key {key!r} matches no row of the key table: '
                      f'the file is for another architecture')
  return ported


def matcher(dont_load: Iterable[str]):
  """path -> whether one of the `dont_load` regexes matches it ('params/head/logits/kernel':
  the path after its collection, 'head/logits/kernel', is matched)."""
  rules = [re.compile(p) for p in dont_load]
  return lambda path: any(r.fullmatch(path.split('/', 1)[1]) for r in rules)


def merge_params(loaded: dict, init: dict, dont_load: Iterable[str] = (),
                 source: str = 'weight file',
                 hint: str = 'the file is for another architecture') -> dict:
  """`init` (a tree of collections) with the leaves of `loaded` ({'params/backbone/...':
  array}, or a tree), except the paths `dont_load` matches (regexes over the path after
  its collection, e.g. 'head/.*'), which keep their initial values (big_vision's
  merge_params). A leaf on one side only, or of another shape, outside `dont_load`, is an
  error naming it, the `source` and the `hint`."""
  skipped = matcher(dont_load)
  flat = traverse_util.flatten_dict(init, sep='/')
  if not all(isinstance(k, str) for k in loaded):
    loaded = traverse_util.flatten_dict(loaded, sep='/')
  for path, value in loaded.items():
    if skipped(path):
      continue
    if path not in flat:
      raise PortError(f'{source} has {path} {np.shape(value)} but the model has no such '
                      f'variable: {hint}')
    if flat[path].shape != np.shape(value):
      raise PortError(f'{path}: {source} has shape {np.shape(value)}, model has '
                      f'{flat[path].shape}: {hint}')
    flat[path] = np.asarray(value, dtype=flat[path].dtype)
  missing = [p for p in flat if p not in loaded and not skipped(p)]
  if missing:
    raise PortError(f'{source} lacks {missing[0]} (and {len(missing) - 1} more): {hint}')
  merged = traverse_util.unflatten_dict(flat, sep='/')
  return {k: merged.get(k, {}) for k in init}  # an empty collection (no batch_stats) stays


def flax_module_path(source_module: str, table) -> str | None:
  """The Flax module path a source module name maps to, e.g. 'layer4.0.conv1' ->
  'backbone/layer4_0/conv1/conv'; None if no row of the table matches."""
  for pattern, target in table:
    match = re.fullmatch(pattern, source_module)
    if match:
      return target.format(*match.groups())
  return None
