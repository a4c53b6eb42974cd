"""What the head's outputs mean: two classes get one logit (sigmoid / binary
cross-entropy), more classes get softmax cross-entropy."""
import jax
import jax.numpy as jnp
import optax


def loss_and_accuracy(logits, labels, binary: bool):
  if binary:
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
