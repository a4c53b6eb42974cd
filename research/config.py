"""The config schema (every key an experiment may set), loading, and --config.* overrides.

Experiment files in configs/ start from `base_config()` and change values; a
key that is not in the schema is an error naming the nearest valid key.
"""
import ast
import difflib
import importlib.util
from pathlib import Path

import ml_collections


class ConfigError(ValueError):
  """A config file or override does not fit the schema."""


def base_config() -> ml_collections.ConfigDict:
  c = ml_collections.ConfigDict()
  c.seed = 0
  c.num_epochs = 10
  c.batch_size = 32  # global, over all devices
  c.workdir = ''  # run directory; '' -> checkpoints/<config name>-<time>
  # a step whose loss or gradient is not finite: 'stop' the run (the last good checkpoint
  # is kept), or 'skip' it (state unchanged, counted as skipped_steps in metrics.jsonl)
  c.on_nonfinite = 'stop'
  c.model = dict(
      name='efficientnet_lite0',  # see research/models/registry.py
      pretrained=True,
      weights='',  # a local weight file instead of the registry's
      dont_load=('head/.*',),  # regexes over parameter paths kept as initialised
      pooling='avg',  # 'avg' (global average) or 'flatten' (Keras F-D-D heads)
      hidden=(),  # widths of hidden dense layers in the head
      dropout=0.2,  # before every dense layer of the head
  )
  c.freeze = dict(
      # freeze every parameter before this one: a Flax path prefix ('backbone/layer4_0'), a
      # source-framework name ('layer4.0.conv1'), or for Keras models a Keras layer name or
      # index ('752' = Keras's `for l in model.layers[:752]: l.trainable = False`); '' = none
      before='',
      patterns=(),  # regexes over parameter paths to freeze as well
  )
  c.optimizer = dict(
      name='adam',  # 'adam' or 'sgd'
      learning_rate=1e-3,
      momentum=0.9,  # sgd only
      step_epochs=0,  # StepLR: multiply the rate by gamma every step_epochs (0 = constant)
      gamma=0.1,
  )
  c.data = dict(
      path='',  # '' -> ELPV; a folder with one sub-folder per class; or a CSV of path,label
      elpv_task='binary',  # 'binary' (functional vs defective) or 'levels' (4 classes)
      split=(0.7, 0.15, 0.15),  # train/val/test, stratified, made before augmenting
      on_bad_image='skip',  # 'skip' (listed in bad_images.txt) or 'error'
      threads=4,  # decode/augment threads
      augment=dict(rotation=0.0, shear=0.0, zoom=0.0, hflip=False),  # Keras units
      # the same image (exact, or a resized/flipped/re-encoded copy) in two splits leaks the
      # test set: 'warn' (listed in leakage.txt) or 'error'
      leakage='warn',
      near_duplicate_bits=8,  # perceptual-hash distance (of 256 bits) counted as the same image
  )
  c.checkpoint = dict(
      keep=3,  # the last N checkpoints are kept
      every_steps=0,  # also checkpoint every N steps within an epoch (0 = at epoch ends only)
  )
  c.gradcam = dict(
      num_images=6,  # test images explained at the end of a run
      layer='',  # '' -> the registry's default (last feature map)
  )
  return c


CHOICES = {
    'model.pooling': ('avg', 'flatten'),
    'optimizer.name': ('adam', 'sgd'),
    'data.elpv_task': ('binary', 'levels'),
    'data.on_bad_image': ('skip', 'error'),
    'data.leakage': ('warn', 'error'),
    'on_nonfinite': ('stop', 'skip'),
}


def lookup(config, key: str):
  """The value at a dotted key, e.g. 'optimizer.name'."""
  node = config
  for part in key.split('.'):
    node = node[part]
  return node


def check_choices(config) -> None:
  """Keys with a fixed set of values hold one of them."""
  for key, choices in CHOICES.items():
    if lookup(config, key) not in choices:
      raise ConfigError(f'{key} is {lookup(config, key)!r}; choose one of: {", ".join(choices)}')


def flat_keys(config, prefix='') -> list[str]:
  keys = []
  for k, v in config.items():
    keys += flat_keys(v, f'{prefix}{k}.') if isinstance(v, ml_collections.ConfigDict) else [
        prefix + k]
  return keys


def unknown_key_error(key: str) -> ConfigError:
  near = difflib.get_close_matches(key, flat_keys(base_config()), n=1, cutoff=0.0)
  return ConfigError(f'unknown config key {key!r}; nearest valid key: {near[0]!r}')


def check_schema(config) -> None:
  valid = set(flat_keys(base_config()))
  for key in flat_keys(config):
    if key not in valid:
      raise unknown_key_error(key)


def load(path: str) -> ml_collections.ConfigDict:
  """Runs `get_config()` of a config file and checks its keys against the schema."""
  file = Path(path)
  if not file.exists():
    raise ConfigError(f'config file {path} does not exist: see configs/ for the experiments')
  spec = importlib.util.spec_from_file_location(f'config_{file.stem}', file)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  config = module.get_config()
  check_schema(config)
  return config


def parse_value(text: str):
  try:
    return ast.literal_eval(text)
  except (ValueError, SyntaxError):
    return text  # a bare string


def apply_override(config, assignment: str) -> None:
  """`a.b=value` (the part after --config.): value parsed as a Python literal, else a string."""
  key, sep, text = assignment.partition('=')
  if not sep:
    raise ConfigError(f'override --config.{assignment} needs a value: --config.{key}=VALUE')
  if key not in set(flat_keys(base_config())):
    raise unknown_key_error(key)
  parent, _, leaf = key.rpartition('.')
  node = lookup(config, parent) if parent else config
  value = text if isinstance(node[leaf], str) else parse_value(text)
  if isinstance(node[leaf], tuple) and isinstance(value, list):
    value = tuple(value)
  try:
    node[leaf] = value
  except TypeError:
    raise ConfigError(f'--config.{key}={text}: expected a {type(node[leaf]).__name__}, like '
                      f'{node[leaf]!r}') from None
