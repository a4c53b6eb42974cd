"""The jitted train and eval steps, data-parallel over every device with jax.sharding.

Batches are sharded along a 'data' mesh axis; parameters and optimizer state
are replicated. XLA inserts the cross-device reductions (gradients, BatchNorm
statistics), so N devices compute what one device would on the whole batch.
"""
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from research.train.freeze import (frozen_batchnorm_in_inference_mode, frozen_batchnorm_paths,
                                   partition, unflat)


def make_mesh() -> Mesh:
  return Mesh(np.asarray(jax.devices()), ('data',))


def replicate(tree, mesh: Mesh):
  return jax.device_put(tree, NamedSharding(mesh, P()))


def shard_batch(batch: dict, mesh: Mesh) -> dict:
  """This process's part of the global batch -> one global array per key."""
  sharding = NamedSharding(mesh, P('data'))
  return {k: jax.make_array_from_process_local_data(sharding, v) for k, v in batch.items()}


def loss_and_accuracy(logits, labels, binary: bool):
  if binary:  # one logit, sigmoid / binary cross-entropy
    logits = logits[:, 0]
    loss = optax.sigmoid_binary_cross_entropy(logits, labels.astype(jnp.float32))
    correct = (logits > 0) == (labels == 1)
  else:
    loss = optax.softmax_cross_entropy_with_integer_labels(logits, labels)
    correct = logits.argmax(-1) == labels
  return loss.mean(), correct.mean()


def probabilities(logits, binary: bool):
  """(N, num_classes) class probabilities."""
  if binary:
    p = jax.nn.sigmoid(logits[:, 0])
    return jnp.stack([1 - p, p], axis=-1)
  return jax.nn.softmax(logits, axis=-1)


def make_train_step(labels: dict, binary: bool, skip_nonfinite: bool = False):
  """Differentiates only trainable parameters; frozen BatchNorm runs in inference mode.

  Metrics carry 'finite' (loss and gradients finite); with `skip_nonfinite` a
  step that is not leaves the state as it was.
  """
  frozen_bn = frozen_batchnorm_paths(labels)

  def train_step(state, batch, rng):
    trainable, frozen = partition(state.params, labels)
    rng = jax.random.fold_in(rng, state.step)

    def loss_fn(trainable):
      params = unflat({**trainable, **frozen})
      with frozen_batchnorm_in_inference_mode(frozen_bn):
        logits, updates = state.apply_fn(
            {'params': params, 'batch_stats': state.batch_stats}, batch['image'], train=True,
            rngs={'dropout': rng}, mutable=['batch_stats'])
      loss, accuracy = loss_and_accuracy(logits, batch['label'], binary)
      return loss, (accuracy, updates.get('batch_stats', state.batch_stats))

    (loss, (accuracy, batch_stats)), grads = jax.value_and_grad(loss_fn, has_aux=True)(trainable)
    finite = jnp.isfinite(loss) & jnp.all(jnp.stack(
        [jnp.isfinite(g).all() for g in jax.tree.leaves(grads)]))
    grads = unflat({**grads, **{p: jnp.zeros_like(v) for p, v in frozen.items()}})
    new_state = state.apply_gradients(grads=grads, batch_stats=batch_stats)
    if skip_nonfinite:
      new_state = jax.tree.map(lambda new, old: jnp.where(finite, new, old), new_state, state)
    return new_state, {'accuracy': accuracy, 'loss': loss, 'finite': finite}

  return train_step


def make_eval_step(binary: bool):
  def eval_step(state, images):
    logits = state.apply_fn({'params': state.params, 'batch_stats': state.batch_stats}, images)
    return logits, probabilities(logits, binary)

  return eval_step
