"""Pretrained weights: files (download, cache, checksums), key tables and porting."""
from flax import traverse_util

from research.weights.files import WeightFile, WeightFileError, resolve
from research.weights.formats import KerasH5, TorchStateDict
from research.weights.port import (PortError, matcher, merge_params, port_state_dict,
                                   read_torch_file)


def load_pretrained(variables: dict, spec, path: str | None = None,
                    dont_load=(), log=print) -> dict:
  """Returns `variables` with the registry's pretrained weights ported in.

  `spec` is a `research.models.ModelSpec`; `dont_load` are regexes over
  parameter paths to keep as initialised (the new head, big_vision style).
  """
  return load_file(variables, spec, pretrained_file(spec, path, log), dont_load)


def pretrained_file(spec, path: str | None = None, log=print):
  """The verified local weight file of `spec` (downloaded once), or the user's own `path`."""
  if spec.weights is None:
    raise WeightFileError('this model has no pretrained weights: set '
                          '--config.model.pretrained=False')
  return resolve(spec.weights, path, log)


def load_file(variables: dict, spec, path, dont_load=()) -> dict:
  """`load_pretrained` from a given file, unchecked, ported by the spec's weight format."""
  paths = set(traverse_util.flatten_dict(variables, sep='/'))
  return merge_params(spec.weight_format.port(path, paths), variables, dont_load)
