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


def load_into(variables: dict, ported: dict[str, np.ndarray],
              dont_load: Iterable[str] = ()) -> dict:
  """Replaces `variables` leaves with `ported` ones, except paths matching `dont_load`.

  Both sides must cover the same leaves with the same shapes (outside `dont_load`).
  """
  skip = [re.compile(p) for p in dont_load]
  skipped = lambda path: any(p.fullmatch(path.split('/', 1)[1]) for p in skip)
  flat = traverse_util.flatten_dict(variables, sep='/')
  for path, value in ported.items():
    if skipped(path):
      continue
    if path not in flat:
      raise PortError(f'weight file has {path} {value.shape} but the model has no such '
                      f'variable: the file is for another architecture')
    if flat[path].shape != value.shape:
      raise PortError(f'{path}: weight file has shape {value.shape}, model has '
                      f'{flat[path].shape}: the file is for another architecture or size')
    flat[path] = np.asarray(value, dtype=flat[path].dtype)
  missing = [p for p in flat if p not in ported and not skipped(p)]
  if missing:
    raise PortError(f'weight file lacks {missing[0]} (and {len(missing) - 1} more): '
                    f'the file is for another architecture')
  return traverse_util.unflatten_dict(flat, sep='/')


def flax_module_path(source_module: str, table) -> str | None:
  """The Flax module path a source module name maps to, e.g. 'layer4.0.conv1' ->
  'backbone/layer4_0/conv1/conv'; None if no row of the table matches."""
  for pattern, target in table:
    match = re.fullmatch(pattern, source_module)
    if match:
      return target.format(*match.groups())
  return None
