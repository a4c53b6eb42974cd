"""Keras reference models (keras.applications on the JAX backend, no TensorFlow).

No ImageNet file can be downloaded here, so the references are built with
`weights=None`, given non-trivial BatchNorm statistics (and, for EfficientNet,
ImageNet-like Normalization statistics), and written as a legacy `.h5` file --
the format keras.applications downloads. The Keras reference then loads that
file through its own `weights='imagenet'` code path (with the download pointed at
the file), so it is built exactly as for ImageNet weights.
"""
import contextlib
import os
from unittest import mock

os.environ.setdefault('KERAS_BACKEND', 'jax')

import h5py  # pylint: disable=wrong-import-position
import keras  # pylint: disable=wrong-import-position
import numpy as np  # pylint: disable=wrong-import-position
from keras.src.legacy.saving import legacy_h5_format  # pylint: disable=wrong-import-position
from keras.src.models import Functional  # pylint: disable=wrong-import-position
from keras.src.utils import file_utils  # pylint: disable=wrong-import-position

BUILDERS = {
    'mobilenet_v1': keras.applications.MobileNet,
    'inception_v3': keras.applications.InceptionV3,
    'nasnet_mobile': keras.applications.NASNetMobile,
    **{f'efficientnet_b{i}': getattr(keras.applications, f'EfficientNetB{i}') for i in range(8)},
}


def build(name: str, weights_file=None, include_top=True, input_size=None):
  """The Keras model as `weights='imagenet'` builds it, loading `weights_file` (legacy .h5)
  instead of the download; with no file, the ImageNet structure and no weights loaded."""
  keras.backend.clear_session()  # fresh layer-name counters, as in a new session
  kwargs = dict(include_top=include_top, weights='imagenet')
  if include_top:
    kwargs['classifier_activation'] = None
  if input_size:
    kwargs['input_shape'] = (input_size, input_size, 3)
  with contextlib.ExitStack() as stack:
    stack.enter_context(mock.patch.object(file_utils, 'get_file',
                                          return_value=str(weights_file)))
    if weights_file is None:
      stack.enter_context(mock.patch.object(Functional, 'load_weights'))
    return BUILDERS[name](**kwargs)


def randomised_file(name: str, path, seed: int = 0, include_top=True, input_size=None):
  """Writes `name`'s Keras init, BatchNorm/Normalization/biases randomised, to `path`
  (legacy .h5) and returns `path`."""
  keras.backend.clear_session()
  keras.utils.set_random_seed(seed)
  kwargs = dict(include_top=include_top, weights=None)
  if input_size:
    kwargs['input_shape'] = (input_size, input_size, 3)
  model = BUILDERS[name](**kwargs)
  rng = np.random.default_rng(seed)
  for layer in model.layers:
    for w in layer.weights:
      leaf = w.path.rsplit('/', 1)[-1]
      value = np.asarray(w.numpy())
      if leaf == 'moving_variance':
        value = rng.uniform(0.5, 1.5, value.shape)
      elif leaf == 'gamma':  # < 1, so that 55 residual blocks (B7) do not blow up to 1e8
        value = rng.uniform(0.25, 0.75, value.shape)
      elif leaf in ('moving_mean', 'beta', 'bias'):
        value = rng.uniform(-0.1, 0.1, value.shape)
      elif isinstance(layer, keras.layers.Normalization) and leaf == 'mean':
        value = np.array([0.485, 0.456, 0.406])  # as in the ImageNet files
      elif isinstance(layer, keras.layers.Normalization) and leaf == 'variance':
        value = np.array([0.229, 0.224, 0.225])  # the std, corrected by a Rescaling layer
      w.assign(value.astype(np.float32))
  with h5py.File(path, 'w') as f:
    legacy_h5_format.save_weights_to_hdf5_group(f, model)
  return path


def outputs(model, layer_names, images: np.ndarray):
  """(logits, {layer name: output}) for float `images` (N, H, W, 3), inference mode."""
  probe = keras.Model(model.inputs, [model.output] + [model.get_layer(n).output
                                                      for n in layer_names])
  results = probe(images, training=False)
  return np.asarray(results[0]), {n: np.asarray(r) for n, r in zip(layer_names, results[1:])}
