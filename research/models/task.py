"""What the head's outputs mean, decided once from the class count: two classes get one
logit (sigmoid, binary cross-entropy), more classes get one logit each (softmax)."""
import dataclasses

import jax
import jax.numpy as jnp
import optax


@dataclasses.dataclass(frozen=True)
class Task:
  """Classification into `num_classes` classes (hashable: a static argument of jitted
  functions)."""
  num_classes: int

  @property
  def binary(self) -> bool:
    return self.num_classes == 2

  @property
  def outputs(self) -> int:
    """The head's width."""
    return 1 if self.binary else self.num_classes

  def loss_and_accuracy(self, logits, labels, class_weights=None, label_smoothing: float = 0.0):
    """(mean loss, accuracy). With `class_weights` (one per class) the loss is the weighted
    mean sum(w_i l_i) / sum(w_i), as torch's CrossEntropyLoss(weight=...); label smoothing
    makes the targets (1 - e) one-hot + e / classes (Keras's and optax's)."""
    if self.binary:
      targets = labels.astype(jnp.float32)
      if label_smoothing:
        targets = targets * (1 - label_smoothing) + 0.5 * label_smoothing
      loss = optax.sigmoid_binary_cross_entropy(logits[:, 0], targets)
    elif label_smoothing:
      targets = optax.smooth_labels(jax.nn.one_hot(labels, self.num_classes), label_smoothing)
      loss = optax.softmax_cross_entropy(logits, targets)
    else:
      loss = optax.softmax_cross_entropy_with_integer_labels(logits, labels)
    correct = self.predicted(logits) == labels
    if class_weights is None:
      return loss.mean(), correct.mean()
    weights = jnp.asarray(class_weights, jnp.float32)[labels]
    return (weights * loss).sum() / weights.sum(), correct.mean()

  def probabilities(self, logits):
    """(N, num_classes) class probabilities."""
    if self.binary:
      p = jax.nn.sigmoid(logits)  # (N, 1); no indexing: a gather with a dynamic batch
      return jnp.concatenate([1 - p, p], axis=-1)
    return jax.nn.softmax(logits, axis=-1)

  def predicted(self, logits):
    """The predicted class of each row."""
    return (logits[:, 0] > 0).astype(jnp.int32) if self.binary else logits.argmax(-1)

  def score(self, logits, targets):
    """What Grad-CAM differentiates for class `targets`: its logit; a one-logit head's
    logit for class 1, its negation for class 0."""
    if self.binary:
      return jnp.where(targets == 1, logits[:, 0], -logits[:, 0])
    return jnp.take_along_axis(logits, targets[:, None], axis=1)[:, 0]
