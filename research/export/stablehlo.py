"""StableHLO through jax.export: serialized bytes that `jax.export.deserialize(...).call`
runs with JAX alone (no code of this repository), the batch dimension symbolic."""
import jax
import jax.numpy as jnp
import numpy as np

SUFFIX = '.stablehlo'


def export(fn, size: int, platforms=('cpu',)) -> bytes:
  """`fn` on (b, size, size, 3) uint8, b symbolic, lowered for `platforms`."""
  batch, = jax.export.symbolic_shape('b')
  shape = jax.ShapeDtypeStruct((batch, size, size, 3), jnp.uint8)
  exported = jax.export.export(jax.jit(fn), platforms=platforms)(shape)
  return bytes(exported.serialize())


def run(data: bytes, images: np.ndarray) -> np.ndarray:
  """The deserialized function on `images` (uint8 NHWC)."""
  return np.asarray(jax.export.deserialize(bytearray(data)).call(images))
