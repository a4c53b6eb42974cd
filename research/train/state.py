"""The train state, and building it from a config (pretrained weights, freezing phases,
optimizer)."""
import re
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax.training import train_state

from research import weights
from research.config import ConfigError
from research.models import call_order, get_spec, input_size
from research.train import checkpoint
from research.train.freeze import FreezeError, Phase, flat, param_labels, unflat
from research.train.optim import make_optimizer


class TrainState(train_state.TrainState):
  batch_stats: Any


def example_images(config):
  size = input_size(config)
  return jnp.zeros((1, size, size, 3), jnp.uint8)


def init_variables(model, config, rng, log=print) -> dict:
  """Initialised params/batch_stats, with the registry's pretrained weights if asked, or
  another run's (`model.init_from`)."""
  spec = get_spec(config.model.name)
  images = example_images(config)
  variables = jax.jit(model.init)(rng, images)
  variables = {'params': variables['params'], 'batch_stats': variables.get('batch_stats', {})}
  if config.model.init_from:
    return from_run(jax.tree.map(np.asarray, variables), config, log)
  path = pretrained_file(config, log)
  if path:
    variables = weights.load_file(jax.tree.map(np.asarray, variables), spec, path,
                                  tuple(config.model.dont_load))
  return variables


def pretrained_file(config, log=print):
  """The ImageNet (or the user's own) weight file a config starts from, checked and, if
  need be, downloaded now; None for a random init or a start from another run."""
  if config.model.init_from or not config.model.pretrained:
    return None
  return weights.pretrained_file(get_spec(config.model.name), config.model.weights or None, log)


def from_run(variables: dict, config, log) -> dict:
  """`variables` with a finished run's weights: the backbone must be the same model; what
  `model.dont_load` matches (the head) is loaded where its shapes agree, else kept as
  initialised (a head for other classes or widths)."""
  run_dir = Path(config.model.init_from)
  theirs = checkpoint.restore_run(run_dir)
  name = theirs.config.model.name
  if name != config.model.name:
    raise ConfigError(f'model.init_from {run_dir} holds a {name}, but this config builds a '
                      f'{config.model.name}: set --config.model.name={name}, or start from a '
                      f'run of {config.model.name}')
  skip = [re.compile(p) for p in config.model.dont_load]
  mine, source = flat(variables), flat(jax.device_get(theirs.variables))
  kept = []
  for path, value in mine.items():
    if path in source and source[path].shape == value.shape:
      mine[path] = np.asarray(source[path])
    elif any(r.fullmatch(path.split('/', 1)[1]) for r in skip):
      kept.append(path)
    else:
      theirs_shape = source[path].shape if path in source else 'nothing'
      raise ConfigError(f'model.init_from {run_dir}: {path} is {value.shape} here but '
                        f'{theirs_shape} there: the backbones differ (data.image_size?); start '
                        f'from a run with the same model and image size')
  log(f'init:    weights from {run_dir}' + (f'; {len(kept)} head tensors of another shape '
                                             f'initialised anew' if kept else ''))
  loaded = unflat(mine)
  return {'params': loaded['params'], 'batch_stats': loaded.get('batch_stats', {})}


def module_order(model, config) -> list[str]:
  """Module paths in the order `freeze.before` counts them: the order the model calls them,
  or for a Keras port, Keras's `model.layers` order (then the head)."""
  order = call_order(model, example_images(config))
  keras_layers = get_spec(config.model.name).keras_layers
  if not keras_layers:
    return order
  return [f'backbone/{name}' for name in keras_layers] + [m for m in order
                                                          if not m.startswith('backbone')]


def freeze_prefix(before: str, name: str, params) -> str:
  """`freeze.before` as a Flax path. A source-framework name ('layer4.0.conv1') is translated
  through the model's key table; a Keras layer name or index becomes the first layer with
  weights from there on (the head if there is none)."""
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


def phases(model, config, params) -> list[Phase]:
  """The freezing phases: `freeze.before` from epoch 1, then each `freeze.phases` entry
  (epoch, before, lr_factor); `freeze.patterns` hold in every phase."""
  rules = [(1, config.freeze.before, 1.0), *map(tuple, config.freeze.phases)]
  epochs = [r[0] for r in rules]
  if any(len(r) != 3 for r in rules) or any(b <= a for a, b in zip(epochs, epochs[1:])):
    raise FreezeError(f'freeze.phases {tuple(map(tuple, config.freeze.phases))} must be '
                      f'(epoch, before, lr_factor) entries with epochs increasing from 2, e.g. '
                      f"((3, 'layer4.0.conv1', 0.1),)")
  order = module_order(model, config)
  return [Phase(int(epoch), param_labels(params, order,
                                         freeze_prefix(before, config.model.name, params),
                                         tuple(config.freeze.patterns)), float(factor))
          for epoch, before, factor in rules]


def create_train_state(model, config, steps_per_epoch: int, rng,
                       log=print) -> tuple[TrainState, list]:
  """(state, phases): each phase's labels say which parameter paths train."""
  variables = init_variables(model, config, rng, log)
  plan = phases(model, config, variables['params'])
  tx = make_optimizer(config.optimizer, steps_per_epoch, plan)
  state = TrainState.create(apply_fn=model.apply, params=variables['params'], tx=tx,
                            batch_stats=variables['batch_stats'])
  return state, plan
