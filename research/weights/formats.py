"""Weight-file formats: how a family's file is ported, and what its layer names mean.

A model's registry entry carries one of these; nothing else asks which framework
a family comes from. A new format is one class with the same three members.
"""
import dataclasses

from research.weights.keras import keras_layers, port_keras_layers, read_keras_file
from research.weights.port import flax_module_path, port_state_dict, read_torch_file


@dataclasses.dataclass(frozen=True)
class TorchStateDict:
  """A PyTorch `state_dict` (.pth), ported by a key table (`research.weights.tables`)."""
  key_table: tuple
  names = 'a module name of its weight file (e.g. layer4.0.conv1)'

  def port(self, path, variable_paths: set[str]) -> dict:
    """{'params/backbone/...': array} from the file at `path`."""
    del variable_paths  # the key table alone decides
    return port_state_dict(read_torch_file(path), self.key_table)

  def layer_order(self) -> tuple[str, ...] | None:
    """Backbone module paths in the order `freeze.before` counts them (None: call order)."""
    return None

  def module_path(self, name: str, params) -> str | None:
    """The Flax path a source-framework layer name means ('layer4.0.conv1'), or None."""
    del params
    return flax_module_path(name, self.key_table)


@dataclasses.dataclass(frozen=True)
class KerasH5:
  """A keras.applications legacy `.h5` file, ported by position as Keras loads it, with
  Keras's own layer list (`research/weights/keras_layers/<model>.txt`)."""
  model: str

  @property
  def layers(self) -> tuple[str, ...]:
    return keras_layers(self.model)

  @property
  def names(self) -> str:
    return f'a layer name or index (0-{len(self.layers)}) of Keras\'s {self.model}'

  def port(self, path, variable_paths: set[str]) -> dict:
    return port_keras_layers(read_keras_file(path), self.layers, variable_paths)

  def layer_order(self) -> tuple[str, ...]:
    """Keras's `model.layers` order (which is not always the call order: NASNet's)."""
    return tuple(f'backbone/{name}' for name in self.layers)

  def module_path(self, name: str, params) -> str | None:
    """A Keras layer name or index: the first layer with weights from there on (the head if
    there is none), as `for l in model.layers[:index]: l.trainable = False` leaves it."""
    if name.isdigit() and int(name) <= len(self.layers):
      start = int(name)
    elif name in self.layers:
      start = self.layers.index(name)
    else:
      return None
    weighted = [n for n in self.layers[start:] if n in params.get('backbone', {})]
    return f'backbone/{weighted[0]}' if weighted else 'head'
