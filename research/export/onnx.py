"""ONNX through jax2onnx (the maintained JAX-to-ONNX converter; Keras exports with it too),
opset 23, run by onnxruntime: the batch dimension dynamic ('batch').

The packages are the export extra (onnx, onnxruntime, onnx-ir) and jax2onnx, installed
without its declared dependencies: its `orbax-checkpoint<0.11.37` pin is metadata only (no
module of jax2onnx imports orbax) and would otherwise downgrade this project's orbax."""
import importlib.util
import logging

import jax
import jax.numpy as jnp

SUFFIX = '.onnx'
OPSET = 23
PACKAGES = ('jax2onnx', 'onnx', 'onnxruntime')


def installed() -> bool:
  return all(importlib.util.find_spec(name) for name in PACKAGES)


def export(fn, shape: tuple) -> bytes:
  """`fn` on uint8 images of `shape` (without the batch), the batch dimension dynamic."""
  import jax2onnx  # pylint: disable=import-outside-toplevel
  import onnx  # pylint: disable=import-outside-toplevel
  # jax2onnx tries a plugin per optional library (equinox, dm-pix) and logs a traceback for
  # each that is not installed; none is needed here.
  logging.getLogger('jax2onnx.plugins.plugin_system').setLevel(logging.ERROR)
  model = jax2onnx.to_onnx(fn, [jax.ShapeDtypeStruct(('batch', *shape), jnp.uint8)],
                           model_name='classifier', opset=OPSET, return_mode='proto',
                           input_names=['images'], output_names=['probabilities'])
  # jax2onnx 0.17.1's layout pass moves tensors to NCHW but keeps their NHWC shapes in
  # value_info, which onnxruntime refuses for some graphs (ResNet50's residual adds): the
  # intermediate shapes are inferred again from the graph itself, then checked.
  del model.graph.value_info[:]
  model = onnx.shape_inference.infer_shapes(model, strict_mode=True)
  onnx.checker.check_model(model, full_check=True)
  return model.SerializeToString()


def load(data: bytes):
  """images -> probabilities, in an onnxruntime session on the CPU."""
  import onnxruntime  # pylint: disable=import-outside-toplevel
  session = onnxruntime.InferenceSession(data, providers=['CPUExecutionProvider'])
  return lambda images: session.run(['probabilities'], {'images': images})[0]


def runtime() -> str:
  import onnxruntime  # pylint: disable=import-outside-toplevel
  return f'onnxruntime {onnxruntime.__version__} (CPUExecutionProvider), opset {OPSET}'


class _Batches:
  """onnxruntime's CalibrationDataReader over an array of images, `batch` at a time."""

  def __init__(self, images, batch: int = 16):
    self.batches = iter([images[k:k + batch] for k in range(0, len(images), batch)])

  def get_next(self):
    images = next(self.batches, None)
    return None if images is None else {'images': images}


def quantize(data: bytes, calibration) -> bytes:
  """int8 by onnxruntime's static quantization: weights int8 per output channel,
  activations uint8 with ranges from `calibration` images (min-max), in QDQ form (what
  onnxruntime's CPU kernels fuse into integer convolutions and matrix products)."""
  import tempfile  # pylint: disable=import-outside-toplevel
  from pathlib import Path  # pylint: disable=import-outside-toplevel
  from onnxruntime import quantization  # pylint: disable=import-outside-toplevel
  with tempfile.TemporaryDirectory() as folder:
    source, prepared, quantized = (Path(folder) / n for n in ('f.onnx', 'p.onnx', 'q.onnx'))
    source.write_bytes(data)
    quantization.quant_pre_process(str(source), str(prepared))
    quantization.quantize_static(
        str(prepared), str(quantized), _Batches(calibration),
        quant_format=quantization.QuantFormat.QDQ, per_channel=True,
        activation_type=quantization.QuantType.QUInt8,
        weight_type=quantization.QuantType.QInt8,
        calibrate_method=quantization.CalibrationMethod.MinMax)
    return quantized.read_bytes()
