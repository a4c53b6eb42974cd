"""LiteRT (TFLite) by the route LiteRT documents for JAX: `jax2tf.convert` (native
serialization: one XlaCallModule holding the StableHLO), a TensorFlow SavedModel,
`tf.lite.TFLiteConverter.from_saved_model` (which legalizes the StableHLO into TFLite
builtins), run by the LiteRT interpreter (ai-edge-litert); the batch dimension dynamic.

TensorFlow 2.21.0 is the release JAX's own CI tests jax2tf against; it is installed with
--no-deps by run.sh on first use (its `h5py<3.15` pin conflicts with this project's h5py,
which the conversion never imports), its small pure-Python pieces and the interpreter from
the `tflite` extra."""
import importlib.util
import os
import tempfile
from importlib import metadata

SUFFIX = '.tflite'
PACKAGES = ('tensorflow', 'ai_edge_litert')


def installed() -> bool:
  return all(importlib.util.find_spec(name) for name in PACKAGES)


def convert(fn, shape: tuple, calibration=None) -> bytes:
  """`fn` on uint8 images of `shape` (without the batch) as a .tflite flatbuffer; with
  `calibration` (uint8 images) int8 by the converter's post-training quantization:
  weights and activations int8 where TFLite has int8 kernels, the rest float, input uint8
  and output float32 as the float model's."""
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  from jax.experimental import jax2tf  # pylint: disable=import-outside-toplevel
  converted = jax2tf.convert(fn, polymorphic_shapes=['(b, ...)'], with_gradient=False,
                             native_serialization_platforms=('cpu',))
  module = tf.Module()
  module.serve = tf.function(lambda images: {'probabilities': converted(images)},
                             autograph=False,
                             input_signature=[tf.TensorSpec([None, *shape], tf.uint8,
                                                            name='images')])
  with tempfile.TemporaryDirectory() as folder:
    tf.saved_model.save(module, folder, signatures={
        'serving_default': module.serve.get_concrete_function()})
    converter = tf.lite.TFLiteConverter.from_saved_model(folder)
    if calibration is not None:
      converter.optimizations = {tf.lite.Optimize.DEFAULT}
      converter.representative_dataset = lambda: ([image[None]] for image in calibration)
    return converter.convert()


def export(fn, shape: tuple) -> bytes:
  return convert(fn, shape)


def load(data: bytes):
  """images -> probabilities, by the LiteRT interpreter's signature runner (which resizes
  the input to the batch given)."""
  from ai_edge_litert.interpreter import Interpreter  # pylint: disable=import-outside-toplevel
  run = Interpreter(model_content=data, num_threads=os.cpu_count()).get_signature_runner(
      'serving_default')
  return lambda images: run(images=images)['probabilities']


def runtime() -> str:
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  return (f'ai-edge-litert {metadata.version("ai-edge-litert")} (converted by TensorFlow '
          f'{tf.__version__})')
