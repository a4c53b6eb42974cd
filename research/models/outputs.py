"""What the head's outputs mean: two classes get one logit (sigmoid / binary
cross-entropy), more classes get softmax cross-entropy."""
import jax
import jax.numpy as jnp
import optax


def loss_and_accuracy(logits, labels, binary: bool, class_weights=None,
                      label_smoothing: float = 0.0):
  """(mean loss, accuracy). With `class_weights` (one per class) the loss is the weighted
  mean sum(w_i l_i) / sum(w_i), as torch's CrossEntropyLoss(weight=...); label smoothing
  makes the targets (1 - e) one-hot + e / classes (Keras's and optax's)."""
  if binary:
    logits = logits[:, 0]
    targets = labels.astype(jnp.float32)
    if label_smoothing:
      targets = targets * (1 - label_smoothing) + 0.5 * label_smoothing
    loss = optax.sigmoid_binary_cross_entropy(logits, targets)
    correct = (logits > 0) == (labels == 1)
  else:
    if label_smoothing:
      targets = optax.smooth_labels(jax.nn.one_hot(labels, logits.shape[-1]), label_smoothing)
      loss = optax.softmax_cross_entropy(logits, targets)
    else:
      loss = optax.softmax_cross_entropy_with_integer_labels(logits, labels)
    correct = logits.argmax(-1) == labels
  if class_weights is None:
    return loss.mean(), correct.mean()
  weights = jnp.asarray(class_weights, jnp.float32)[labels]
  return (weights * loss).sum() / weights.sum(), correct.mean()


def probabilities(logits, binary: bool):
  """(N, num_classes) class probabilities."""
  if binary:
    p = jax.nn.sigmoid(logits[:, 0])
    return jnp.stack([1 - p, p], axis=-1)
  return jax.nn.softmax(logits, axis=-1)
