"""Pretrained weights: files (download, cache, sha256), key tables and porting."""
from research.weights.files import WeightFile, WeightFileError, resolve
from research.weights.port import (PortError, flax_module_path, load_into, port_state_dict,
                                   read_torch_file)


def load_pretrained(variables: dict, spec, path: str | None = None,
                    dont_load=()) -> dict:
  """Returns `variables` with the registry's pretrained weights ported in.

  `spec` is a `research.models.ModelSpec`; `dont_load` are regexes over
  parameter paths to keep as initialised (the new head, big_vision style).
  """
  if spec.weights is None:
    raise WeightFileError('this model has no pretrained weights: set '
                          '--config.model.pretrained=False')
  ported = port_state_dict(read_torch_file(resolve(spec.weights, path)), spec.key_table)
  return load_into(variables, ported, dont_load)
