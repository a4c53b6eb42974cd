"""Grad-CAM (Selvaraju et al.) with jax.grad against a layer's activations.

The layer is tapped by `research.models.layers.tap`: its output A is sown into
'intermediates' and has a zero 'perturbation' added, so d(score)/dA is the
gradient with respect to that perturbation. Any ConvBN / block module path works
as a layer; the registry names each model's default (its last feature map).
"""
import difflib
import functools

import jax
import jax.numpy as jnp
import numpy as np
from flax import traverse_util

from research.errors import UserError
from research.models.layers import TAP


class LayerError(UserError, ValueError):
  """The Grad-CAM layer is not a tapped module of the model."""


def tap_shapes(model, images) -> dict:
  """{layer path: activation shape} of every tapped layer, for these images."""
  shapes = jax.eval_shape(model.init, jax.random.key(0), images)['perturbations']
  return {k.removesuffix('/' + TAP): v
          for k, v in traverse_util.flatten_dict(shapes, sep='/').items()}


def gradcam(model, variables, images, layer: str, task, targets=None):
  """(cams (N, h, w) in [0, 1] at the layer's resolution, logits, targets) for `task`'s
  score (research.models.Task.score).

  `targets` defaults to the predicted classes. One forward and one backward pass, jitted
  once per model, layer, task and batch shape.
  """
  shapes = tap_shapes(model, images)
  if layer not in shapes:
    near = difflib.get_close_matches(layer, list(shapes), n=1, cutoff=0.0)
    raise LayerError(f'Grad-CAM layer {layer!r} is not a layer of this model; nearest: '
                     f'{near[0]!r} (any module path in research.explain.gradcam.tap_shapes)')
  targets = np.full(len(images), -1) if targets is None else np.asarray(targets)
  cams, logits, chosen = _gradcam(model, layer, task, variables, jnp.asarray(images),
                                  jnp.asarray(targets, jnp.int32))
  return np.asarray(cams), np.asarray(logits), np.asarray(chosen)


@functools.partial(jax.jit, static_argnums=(0, 1, 2))
def _gradcam(model, layer: str, task, variables, images, targets):
  """`gradcam` of `targets` (-1: the predicted class)."""
  shapes = tap_shapes(model, images)
  # flax wants every tap's perturbation once the collection is given; only `layer`'s varies.
  zeros = {f'{k}/{TAP}': jnp.zeros(s.shape, s.dtype) for k, s in shapes.items()}
  key = f'{layer}/{TAP}'

  def score(perturbation):
    perturbations = traverse_util.unflatten_dict({**zeros, key: perturbation}, sep='/')
    logits, state = model.apply({**variables, 'perturbations': perturbations}, images,
                                mutable=['intermediates'])
    # the predicted class is piecewise constant: no gradient flows through the choice
    chosen = jnp.where(targets >= 0, targets, task.predicted(logits))
    activations = traverse_util.flatten_dict(state['intermediates'], sep='/')[key]
    return task.score(logits, chosen).sum(), (activations, logits, chosen)

  grads, (activations, logits, chosen) = jax.grad(score, has_aux=True)(zeros[key])
  weights = grads.mean(axis=(1, 2), keepdims=True)
  cams = jax.nn.relu((weights * activations).sum(-1))
  cams = cams / jnp.maximum(cams.max(axis=(1, 2), keepdims=True), 1e-12)
  return cams, logits, chosen
