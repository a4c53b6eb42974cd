"""The train state, and building it from a config (pretrained weights, freezing phases,
optimizer)."""
import re
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import traverse_util
from flax.training import train_state

from research import rundir, weights
from research.config import ConfigError
from research.models import call_order, get_spec, input_size
from research.train import checkpoint
from research.train.freeze import FreezeError, Phase, flat, param_labels
from research.train.optim import make_optimizer


class TrainState(train_state.TrainState):
  batch_stats: Any


def example_images(config):
  size = input_size(config)
  return jnp.zeros((1, size, size, 3), jnp.uint8)


def initial_values(model, images, rng, only=None) -> dict:
  """`model.init`'s params and batch_stats; with `only` (path -> bool), computed for those
  paths alone and zeros elsewhere, for a weight file to fill (compiling the initialisers of a
  whole backbone takes 15 s for EfficientNet-Lite0, 100 s for NASNet on a CPU)."""
  def init(rng, images):
    variables = model.init(rng, images)
    return {'params': variables['params'], 'batch_stats': variables.get('batch_stats', {})}

  if only is None:
    return jax.jit(init)(rng, images)
  shapes = traverse_util.flatten_dict(jax.eval_shape(init, rng, images), sep='/')
  values = jax.jit(lambda rng, images: {
      p: v for p, v in traverse_util.flatten_dict(init(rng, images), sep='/').items()
      if only(p)})(rng, images)
  flat = {p: values[p] if p in values else np.zeros(s.shape, s.dtype) for p, s in shapes.items()}
  return {'batch_stats': {}, **traverse_util.unflatten_dict(flat, sep='/')}


def init_variables(model, config, rng, log=print) -> dict:
  """Initialised params/batch_stats, with the registry's pretrained weights if asked, or
  another run's (`model.init_from`). What those fill is not initialised (merge_params
  refuses a file that leaves any of it unfilled): only what `model.dont_load` matches."""
  spec = get_spec(config.model.name)
  images = example_images(config)
  path = pretrained_file(config, log)
  if not (config.model.init_from or path):
    return initial_values(model, images, rng)
  variables = initial_values(model, images, rng, weights.matcher(config.model.dont_load))
  variables = jax.tree.map(np.asarray, variables)
  if config.model.init_from:
    return from_run(variables, config, log)
  return weights.load_file(variables, spec, path, tuple(config.model.dont_load))


def pretrained_file(config, log=print):
  """The ImageNet (or the user's own) weight file a config starts from, checked and, if
  need be, downloaded now; None for a random init or a start from another run."""
  if config.model.init_from or not config.model.pretrained:
    return None
  return weights.pretrained_file(get_spec(config.model.name), config.model.weights or None, log)


def from_run(variables: dict, config, log) -> dict:
  """`variables` with a finished run's weights (its best checkpoint): the backbone must be
  the same model; what `model.dont_load` matches (the head) is loaded where its shapes
  agree, else kept as initialised (a head for other classes or widths)."""
  run_dir = Path(config.model.init_from)
  name = rundir.load_config(run_dir).model.name
  if name != config.model.name:
    raise ConfigError(f'model.init_from {run_dir} holds a {name}, but this config builds a '
                      f'{config.model.name}: set --config.model.name={name}, or start from a '
                      f'run of {config.model.name}')
  theirs, _, _ = checkpoint.restore_variables(run_dir)
  theirs, mine = flat(theirs), flat(variables)
  kept = weights.matcher(config.model.dont_load)
  other_shape = [p for p, v in mine.items()
                 if kept(p) and p in theirs and theirs[p].shape != v.shape]
  log(f'init:    weights from {run_dir}' + (f'; {len(other_shape)} head tensors of another '
                                             f'shape initialised anew' if other_shape else ''))
  return weights.merge_params(theirs, variables, [re.escape(p.split('/', 1)[1])
                                                  for p in other_shape],
                              f'model.init_from {run_dir}', 'the backbones differ '
                              '(data.image_size?): start from a run with the same model and '
                              'image size')


def module_order(model, config) -> list[str]:
  """Module paths in the order `freeze.before` counts them: the order the model calls them,
  or the order of the weight format's own layer list (Keras's `model.layers`), then the
  head."""
  order = call_order(model, example_images(config))
  fmt = get_spec(config.model.name).weight_format
  layers = fmt.layer_order() if fmt else None
  if layers is None:
    return order
  return list(layers) + [m for m in order if not m.startswith('backbone')]


def freeze_prefix(before: str, name: str, params) -> str:
  """`freeze.before` as a Flax path: as it is, or a layer name in the family's weight format
  ('layer4.0.conv1'; a Keras layer name or index) translated by that format."""
  if not before or before.split('/')[0] in ('backbone', 'head'):
    return before
  fmt = get_spec(name).weight_format
  path = fmt.module_path(before, params) if fmt else None
  if path is None:
    names = f' nor {fmt.names} of {name}' if fmt else f' ({name} has no weight file)'
    raise FreezeError(f'freeze.before {before!r} is neither a Flax path (backbone/...){names}')
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
  tx = make_optimizer(config.optimizer, steps_per_epoch, config.num_epochs, plan)
  state = TrainState.create(apply_fn=model.apply, params=variables['params'], tx=tx,
                            batch_stats=variables['batch_stats'])
  return state, plan
