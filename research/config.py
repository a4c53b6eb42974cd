"""The config schema (every key an experiment may set), loading, and --config.* overrides.

Experiment files in configs/ start from `base_config()` and change values in
`get_config(arg)` (big_vision style: `configs/people.py:resnet101` passes
'resnet101'). `load` is the one way a file becomes a config: it imports the file,
calls `get_config`, applies a sweep point's values and the command line's
`KEY=VALUE` overrides (parsed by the type of the key's default, with the parsers
ml_collections' config_flags uses), validates the result and returns it locked.
A key that is not in the schema is an error naming the nearest valid key.
"""
import contextlib
import contextvars
import difflib
import importlib.util
from pathlib import Path

import ml_collections
from absl import flags
from ml_collections.config_flags import config_path, tuple_parser

from research.errors import UserError


class ConfigError(UserError, ValueError):
  """A config file or override does not fit the schema."""


# Inside `load`, a config file's `base_config()` stays unlocked until the file returns, so a
# key it adds is named by `validate` (with the nearest valid key) instead of failing inside
# the file.
_LOADING = contextvars.ContextVar('loading', default=False)


def base_config() -> ml_collections.ConfigDict:
  """Every key with its default; locked (a key that is not here cannot be set)."""
  c = ml_collections.ConfigDict()
  c.seed = 0  # training randomness: head initialisation, dropout, augmentation, batch order
  c.num_epochs = 10
  c.batch_size = 32  # global, over all devices
  c.workdir = ''  # run directory; '' -> checkpoints/<config name>-<time>
  # a step whose loss or gradient is not finite: 'stop' the run (the last good checkpoint
  # is kept), or 'skip' it (state unchanged, counted as skipped_steps in metrics.jsonl)
  c.on_nonfinite = 'stop'
  c.log_every_steps = 50  # where stderr is no terminal (a log file, CI): a plain line every N steps
  c.model = dict(
      name='efficientnet_lite0',  # see research/models/registry.py
      pretrained=True,
      weights='',  # a local weight file instead of the registry's (your own: not checksummed)
      init_from='',  # a run directory whose best weights start this run (head: see dont_load)
      dont_load=('head/.*',),  # regexes over parameter paths kept as initialised
      pooling='avg',  # 'avg' (global average) or 'flatten' (Keras F-D-D heads)
      hidden=(),  # widths of hidden dense layers in the head
      dropout=0.2,  # before every dense layer of the head
      # the backbone's compute dtype: 'auto' = bfloat16 on a GPU or TPU, float32 on a CPU
      # (XLA:CPU computes bfloat16 slower: BENCHMARKS.md); parameters, BatchNorm statistics
      # and the head stay float32 either way
      dtype='auto',
  )
  c.freeze = dict(
      # freeze every parameter before this one: a Flax path prefix ('backbone/layer4_0'), a
      # source-framework name ('layer4.0.conv1'), or for Keras models a Keras layer name or
      # index ('752' = Keras's `for l in model.layers[:752]: l.trainable = False`); '' = none
      before='',
      patterns=(),  # regexes over parameter paths to freeze as well
      # gradual unfreezing: (epoch, before, lr_factor) entries; from `epoch` on, freeze only
      # before `before` (any form above) and multiply the learning rate by `lr_factor`, e.g.
      # ((3, 'layer4.0.conv1', 0.1),) trains what freeze.before leaves for 2 epochs, then
      # everything from layer4.0.conv1 at a tenth of the rate
      phases=(),
  )
  c.optimizer = dict(
      name='adam',  # 'adam', 'adamw' (decoupled weight decay) or 'sgd'
      learning_rate=1e-3,
      momentum=0.9,  # sgd only
      weight_decay=0.0,  # adamw only: decoupled, times the learning rate (as torch's AdamW)
      step_epochs=0,  # StepLR: multiply the rate by gamma every step_epochs (0 = constant)
      gamma=0.1,
      cosine=False,  # cosine decay to 0 over the run (instead of StepLR)
      warmup_epochs=0.0,  # linear warm-up from 0 over this many epochs (fractions allowed)
  )
  c.loss = dict(
      # '' (none), 'balanced' (n / (classes x class count) over the train split, as
      # scikit-learn's), or one weight per class, e.g. '1,3,3,1'; the loss is the weighted
      # mean, sum(w_i l_i) / sum(w_i), as torch's CrossEntropyLoss(weight=...)
      class_weights='',
      label_smoothing=0.0,  # targets (1 - e) one-hot + e / classes
  )
  c.data = dict(
      path='',  # '' -> ELPV; a folder with one sub-folder per class; or a CSV of path,label
      elpv_task='binary',  # 'binary' (functional vs defective) or 'levels' (4 classes)
      # a TensorFlow Datasets name instead of data.path, e.g. 'cats_vs_dogs', 'tf_flowers',
      # read (without TensorFlow) from a prepared copy in tfds_dir ('' = ~/tensorflow_datasets)
      tfds='',
      tfds_dir='',
      image_size=0,  # side in pixels images are resized to; 0 = the model's (registry) size
      split=(0.7, 0.15, 0.15),  # train/val/test, stratified, made before augmenting
      # the split's own seed, apart from `seed`: runs with other training seeds are scored on
      # the same test images (a paired comparison)
      split_seed=0,
      on_bad_image='skip',  # 'skip' (listed in bad_images.txt) or 'error'
      threads=4,  # decode/augment threads (in each worker process, if any)
      # decode/augment worker processes: -1 = chosen from the machine (none when XLA computes
      # on the CPU and needs its cores; the cores less one beside a GPU or TPU, at most 32)
      workers=-1,
      # draw every class equally often in each epoch (rare images repeat, common ones are
      # subsampled; the epoch keeps its length)
      balanced_sampling=False,
      augment=dict(rotation=0.0, shear=0.0, zoom=0.0, hflip=False),  # Keras units
      # the same image (exact, or a resized/flipped/re-encoded copy) in two splits leaks the
      # test set: 'warn' (listed in leakage.txt) or 'error'
      leakage='warn',
      near_duplicate_bits=8,  # perceptual-hash distance (of 256 bits) counted as the same image
  )
  c.checkpoint = dict(
      keep=3,  # the last N checkpoints are kept
      every_steps=0,  # also checkpoint every N steps within an epoch (0 = at epoch ends only)
      # the best epoch's weights are kept too (checkpoints/best), by this validation metric;
      # the test report, eval, Grad-CAM and predict use them (--checkpoint last: the last)
      best_metric='val_accuracy',  # 'val_accuracy', 'val_loss' or 'val_balanced_accuracy'
      patience=0,  # early stopping: stop after N epochs without a better best_metric (0 = never)
  )
  c.feature_cache = dict(
      # a backbone frozen for the whole run (the head alone trains) runs once per image: its
      # features are cached and every epoch reads them (exact with augmentation off)
      enabled=True,
      # with augmentation on: cache this many augmented views per image and draw one each
      # epoch; 0 = no cache, the backbone sees a fresh augmentation every epoch
      views=0,
      memory_gb=2.0,  # larger caches are memory-mapped in the run directory
      # a folder shared by runs (a tune's trials): features of the same backbone, weights,
      # input size and images are computed once and read by every run; '' = per run
      dir='',
  )
  c.evaluation = dict(
      tta_flip=False,  # average the logits of each image and its mirror image
      # eval, predict and the test report divide the logits by the temperature fitted on the
      # validation split (calibration.json); the report shows both either way
      temperature_scaling=False,
  )
  c.features = dict(
      num_images=1,  # test images whose feature maps (every block) are drawn after a run
  )
  c.gradcam = dict(
      num_images=6,  # test images explained at the end of a run
      layer='',  # '' -> the registry's default (last feature map)
  )
  if not _LOADING.get():
    c.lock()
  return c


CHOICES = {
    'model.pooling': ('avg', 'flatten'),
    'model.dtype': ('auto', 'float32', 'bfloat16'),
    'optimizer.name': ('adam', 'adamw', 'sgd'),
    'checkpoint.best_metric': ('val_accuracy', 'val_loss', 'val_balanced_accuracy'),
    'data.elpv_task': ('binary', 'levels'),
    'data.on_bad_image': ('skip', 'error'),
    'data.leakage': ('warn', 'error'),
    'on_nonfinite': ('stop', 'skip'),
}
# Element types of tuple keys (an empty default tuple says nothing of its elements).
ELEMENT_TYPES = {'model.hidden': int, 'model.dont_load': str, 'freeze.patterns': str,
                 'freeze.phases': tuple, 'data.split': (int, float)}
EXAMPLES = {'model.hidden': (1024, 1024), 'freeze.phases': ((3, 'layer4.0.conv1', 0.1),)}
# How a command-line value is read, by the type of the key's default (config_flags' parsers).
PARSERS = {bool: flags.BooleanParser(), int: flags.IntegerParser(),
           float: flags.FloatParser(), str: flags.ArgumentParser(),
           tuple: tuple_parser.TupleParser()}


def lookup(config, key: str):
  """The value at a dotted key, e.g. 'optimizer.name'."""
  return config_path.get_value(key, config)


def flat_keys(config, prefix='') -> list[str]:
  keys = []
  for k, v in config.items():
    keys += flat_keys(v, f'{prefix}{k}.') if isinstance(v, ml_collections.ConfigDict) else [
        prefix + k]
  return keys


def check_key(key: str) -> None:
  """A dotted key of the schema, or one line naming the nearest one."""
  valid = flat_keys(base_config())
  if key not in valid:
    near = difflib.get_close_matches(key, valid, n=1, cutoff=0.0)
    raise ConfigError(f'unknown config key {key!r}; nearest valid key: {near[0]!r}')


def validate(config) -> None:
  """Every key in the schema, tuples holding the right kind of elements, and keys with a
  fixed set of values holding one of them."""
  for key in flat_keys(config):
    check_key(key)
  for key, kind in ELEMENT_TYPES.items():
    bad = [v for v in lookup(config, key) if not isinstance(v, kind) or isinstance(v, bool)]
    if bad:
      names = kind.__name__ if isinstance(kind, type) else 'number'
      raise ConfigError(f'{key} holds {bad[0]!r}; it takes {names}s, like '
                        f'{lookup(base_config(), key) or EXAMPLES[key]!r}')
  for key, choices in CHOICES.items():
    if lookup(config, key) not in choices:
      raise ConfigError(f'{key} is {lookup(config, key)!r}; choose one of: {", ".join(choices)}')


def variant(arg, variants, file: str):
  """The `get_config(arg)` argument checked against a config file's variants."""
  if arg not in variants:
    raise ConfigError(f'{file} has no variant {arg!r}; choose one of: {", ".join(variants)} '
                      f'(e.g. configs/{file}:{next(iter(variants))})')
  return arg


def load_module(path: str):
  """A config file as a module (its `get_config`, and `get_sweep` if it has one)."""
  if not Path(path).is_file():
    raise ConfigError(f'config file {path} does not exist: see configs/ for the experiments')
  spec = importlib.util.spec_from_file_location(f'config_{Path(path).stem}', path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def set_value(config, key: str, value) -> None:
  """Sets a dotted key to a Python value (a sweep point), type-checked by ml_collections."""
  check_key(key)
  default = lookup(config, key)
  if isinstance(default, tuple) and isinstance(value, list):
    value = tuple(value)
  try:
    config_path.set_value(key, config, value)
  except TypeError:
    raise ConfigError(f'{key}={value!r}: expected a {type(default).__name__}, like '
                      f'{default!r}') from None


def override(config, assignment: str) -> None:
  """Applies `KEY=VALUE` (what follows --config.), the value read by its key's type."""
  key, sep, text = assignment.partition('=')
  if not sep:
    raise ConfigError(f'override --config.{assignment} needs a value: --config.{key}=VALUE')
  check_key(key)
  default = lookup(config, key)
  try:
    value = PARSERS[type(default)].parse(text)
  except ValueError:
    raise ConfigError(f'--config.{assignment}: expected a {type(default).__name__}, like '
                      f'{default!r}') from None
  set_value(config, key, value)


@contextlib.contextmanager
def _loading():
  token = _LOADING.set(True)
  try:
    yield
  finally:
    _LOADING.reset(token)


def load(spec: str, overrides=(), values: dict | None = None) -> ml_collections.ConfigDict:
  """`get_config()` of a config file (`configs/x.py`), or `get_config(arg)` for
  `configs/x.py:arg`; then `values` ({dotted key: value}, a sweep point's), then `KEY=VALUE`
  `overrides`; validated and locked."""
  path, _, arg = spec.partition(':')
  for assignment in overrides:  # named before the file runs
    check_key(assignment.partition('=')[0])
  module = load_module(path)
  try:
    with _loading():
      config = module.get_config(arg) if arg else module.get_config()
  except UserError as e:
    raise ConfigError(f'{spec}: {e}') from None
  for key, value in (values or {}).items():
    set_value(config, key, value)
  try:
    for key in flat_keys(config):
      check_key(key)
  except ConfigError as e:
    raise ConfigError(f'{spec}: {e}') from None
  for assignment in overrides:
    override(config, assignment)
  validate(config)
  config.lock()
  return config


def as_tuple(value):
  """JSON's lists (of lists) read back as the config's tuples (of tuples)."""
  return tuple(as_tuple(x) for x in value) if isinstance(value, (list, tuple)) else value


def flat_values(config) -> dict:
  """{dotted key: value}, with JSON's lists read back as tuples."""
  return {k: as_tuple(lookup(config, k)) for k in flat_keys(config)}


def differing_keys(a, b) -> list[str]:
  fa, fb = flat_values(a), flat_values(b)
  return sorted(k for k in fa.keys() | fb.keys() if fa.get(k) != fb.get(k))
