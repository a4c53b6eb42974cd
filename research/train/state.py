"""The train state, and building it from a config (pretrained weights, freezing, optimizer)."""
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax.training import train_state

from research import weights
from research.models import get_spec
from research.train.freeze import FreezeError, creation_order, param_labels
from research.train.optim import make_optimizer


class TrainState(train_state.TrainState):
  batch_stats: Any


def example_images(config):
  size = get_spec(config.model.name).input_size
  return jnp.zeros((1, size, size, 3), jnp.uint8)


def init_variables(model, config, rng) -> dict:
  """Initialised params/batch_stats, with the registry's pretrained weights if asked."""
  spec = get_spec(config.model.name)
  images = example_images(config)
  variables = jax.jit(model.init)(rng, images)
  variables = {'params': variables['params'], 'batch_stats': variables.get('batch_stats', {})}
  if config.model.pretrained:
    variables = jax.tree.map(np.asarray, variables)
    variables = weights.load_pretrained(variables, spec, config.model.weights or None,
                                        dont_load=tuple(config.model.dont_load))
  return variables


def module_order(model, config) -> list[str]:
  """Module paths in the order `freeze.before` counts them: the order the model calls them,
  or for a Keras port, Keras's `model.layers` order (then the head)."""
  order = creation_order(model, example_images(config))
  keras_layers = get_spec(config.model.name).keras_layers
  if not keras_layers:
    return order
  return [f'backbone/{name}' for name in keras_layers] + [m for m in order
                                                          if not m.startswith('backbone')]


def freeze_prefix(config, params) -> str:
  """`freeze.before` as a Flax path. A source-framework name ('layer4.0.conv1') is translated
  through the model's key table; a Keras layer name or index becomes the first layer with
  weights from there on (the head if there is none)."""
  before, name = config.freeze.before, config.model.name
  if not before or before.split('/')[0] in ('backbone', 'head'):
    return before
  spec = get_spec(name)
  if spec.keras_layers:
    layers = spec.keras_layers
    if before.isdigit() and int(before) <= len(layers):
      start = int(before)
    elif before in layers:
      start = layers.index(before)
    else:
      raise FreezeError(f'freeze.before {before!r} is neither a Flax path (backbone/...) nor a '
                        f'layer name or index (0-{len(layers)}) of Keras\'s {name}')
    weighted = [n for n in layers[start:] if n in params.get('backbone', {})]
    return f'backbone/{weighted[0]}' if weighted else 'head'
  path = weights.flax_module_path(before, spec.key_table)
  if path is None:
    raise FreezeError(f'freeze.before {before!r} is neither a Flax path (backbone/...) nor a '
                      f'module name of {name}\'s weight file (e.g. layer4.0.conv1)')
  return path


def create_train_state(model, config, steps_per_epoch: int, rng) -> tuple[TrainState, dict]:
  """(state, labels): labels say which parameter paths train."""
  variables = init_variables(model, config, rng)
  labels = param_labels(variables['params'], module_order(model, config),
                        freeze_prefix(config, variables['params']),
                        tuple(config.freeze.patterns))
  tx = make_optimizer(config.optimizer, steps_per_epoch, labels)
  state = TrainState.create(apply_fn=model.apply, params=variables['params'], tx=tx,
                            batch_stats=variables['batch_stats'])
  return state, labels
