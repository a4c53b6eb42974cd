"""The function every format exports: uint8 RGB images at the model's input size, batch of
any length -> class probabilities (float32), the normalisation inside, and the fitted
temperature if one is applied; and its parity with an exported copy."""
import jax
import jax.numpy as jnp
import numpy as np

FLOAT32_BOUND = 1e-4  # the largest probability difference a float32 export may show


def serving_fn(model, task, variables, temperature: float | None = None, nchw: bool = False):
  """images (B, S, S, 3) uint8 -> (B, classes) float32 probabilities; NCHW input if `nchw`."""
  variables = jax.device_get(variables)

  def serve(images):
    if nchw:
      images = jnp.transpose(images, (0, 2, 3, 1))
    logits = model.apply(variables, images)
    if temperature:
      logits = logits / temperature
    return task.probabilities(logits).astype(jnp.float32)

  return serve


def parity(expected: np.ndarray, got: np.ndarray) -> dict:
  """Top-1 agreement and the largest probability difference between two (N, classes)
  arrays of probabilities."""
  expected, got = np.asarray(expected, np.float64), np.asarray(got, np.float64)
  return {'images': len(expected),
          'top1_agreement': float((expected.argmax(-1) == got.argmax(-1)).mean()),
          'max_abs_diff': float(np.abs(expected - got).max()),
          'bound': FLOAT32_BOUND}


def passed(result: dict) -> bool:
  return result['top1_agreement'] == 1.0 and result['max_abs_diff'] <= result['bound']
