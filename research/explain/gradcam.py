"""Grad-CAM (Selvaraju et al.) with jax.grad against a layer's activations.

The layer is tapped by `research.models.layers.tap`: its output A is sown into
'intermediates' and has a zero 'perturbation' added, so d(score)/dA is the
gradient with respect to that perturbation. Any ConvBN / block module path works
as a layer; the registry names each model's default (its last feature map).
"""
import difflib

import jax
import jax.numpy as jnp
import numpy as np
from flax import traverse_util

from research.models.layers import TAP


class LayerError(ValueError):
  """The Grad-CAM layer is not a tapped module of the model."""


def tapped_layers(model, images) -> list[str]:
  shapes = jax.eval_shape(model.init, jax.random.key(0), images[:1])
  return [k.removesuffix('/' + TAP) for k in
          traverse_util.flatten_dict(shapes['perturbations'], sep='/')]


def target_score(logits, targets, binary: bool):
  """One-logit binary heads: the logit for class 1, its negation for class 0."""
  if binary:
    return jnp.where(targets == 1, logits[:, 0], -logits[:, 0])
  return jnp.take_along_axis(logits, targets[:, None], axis=1)[:, 0]


def gradcam(model, variables, images, layer: str, binary: bool, targets=None):
  """(cams (N, h, w) in [0, 1] at the layer's resolution, logits, targets).

  `targets` defaults to the predicted classes.
  """
  layers = tapped_layers(model, images)
  if layer not in layers:
    near = difflib.get_close_matches(layer, layers, n=1, cutoff=0.0)
    raise LayerError(f'Grad-CAM layer {layer!r} is not a layer of this model; nearest: '
                     f'{near[0]!r} (see research.explain.gradcam.tapped_layers)')
  logits = model.apply(variables, images)
  if targets is None:
    targets = (logits[:, 0] > 0).astype(jnp.int32) if binary else logits.argmax(-1)
  targets = jnp.asarray(targets)
  shapes = jax.eval_shape(model.init, jax.random.key(0), images)['perturbations']
  zeros = {k: jnp.zeros(s.shape, s.dtype)
           for k, s in traverse_util.flatten_dict(shapes, sep='/').items()}
  key = f'{layer}/{TAP}'

  def score(perturbation):  # flax wants every tap's perturbation once the collection is given
    perturbations = traverse_util.unflatten_dict({**zeros, key: perturbation}, sep='/')
    out, state = model.apply({**variables, 'perturbations': perturbations}, images,
                             mutable=['intermediates'])
    activations = traverse_util.flatten_dict(state['intermediates'], sep='/')[key]
    return target_score(out, targets, binary).sum(), activations

  grads, activations = jax.grad(score, has_aux=True)(zeros[key])
  weights = grads.mean(axis=(1, 2), keepdims=True)
  cams = jax.nn.relu((weights * activations).sum(-1))
  cams = cams / jnp.maximum(cams.max(axis=(1, 2), keepdims=True), 1e-12)
  return np.asarray(cams), np.asarray(logits), np.asarray(targets)
