"""StableHLO through jax.export: serialized bytes that `jax.export.deserialize(...).call`
runs with JAX alone (no code of this repository), the batch dimension symbolic."""
import jax
import jax.numpy as jnp
import numpy as np

SUFFIX = '.stablehlo'


def export(fn, shape: tuple, platforms=('cpu',)) -> bytes:
  """`fn` on uint8 images of `shape` (without the batch), batch b symbolic, lowered for
  `platforms`."""
  batch, = jax.export.symbolic_shape('b')
  spec = jax.ShapeDtypeStruct((batch, *shape), jnp.uint8)
  exported = jax.export.export(jax.jit(fn), platforms=platforms)(spec)
  return bytes(exported.serialize())


def load(data: bytes):
  """images -> probabilities, the deserialized function."""
  call = jax.export.deserialize(bytearray(data)).call
  return lambda images: np.asarray(call(images))


def runtime() -> str:
  return f'jax.export.deserialize (jax {jax.__version__})'
