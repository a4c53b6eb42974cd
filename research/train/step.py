"""The train step, data-parallel over every device (see research.parallel), its running
metric sums kept on device, and the training objective's class weights."""
import jax
import jax.numpy as jnp
import numpy as np
from sklearn.utils.class_weight import compute_class_weight

from research.config import ConfigError
from research.models import Task
from research.train.freeze import (backbone_is_frozen, frozen_batchnorm_in_inference_mode,
                                   frozen_batchnorm_paths, partition, unflat)


def class_weights(spec: str, train_labels, num_classes: int) -> tuple[float, ...] | None:
  """`loss.class_weights`: '' -> None; 'balanced' -> n / (classes x count) over the train
  labels (scikit-learn's); '1,3,3,1' -> one weight per class."""
  if not spec:
    return None
  if spec == 'balanced':
    return tuple(float(w) for w in compute_class_weight(
        'balanced', classes=np.arange(num_classes), y=np.asarray(train_labels)))
  try:
    weights = tuple(float(w) for w in spec.split(','))
  except ValueError:
    weights = ()
  if len(weights) != num_classes or min(weights, default=-1) < 0:
    raise ConfigError(f'loss.class_weights {spec!r} is not \'balanced\' nor {num_classes} '
                      f'non-negative numbers, one per class, e.g. '
                      f'{",".join(["1"] * num_classes)}')
  return weights


def make_train_step(labels: dict, task: Task, skip_nonfinite: bool = False,
                    weights: tuple[float, ...] | None = None, label_smoothing: float = 0.0):
  """Differentiates only trainable parameters; frozen BatchNorm runs in inference mode.
  The loss is weighted by class `weights` and smoothed by `label_smoothing`.

  A wholly frozen backbone runs in inference mode (BatchNorm and dropout), as Keras's
  `base(x, training=False)`; a batch may then carry its cached 'features' instead of
  'image' (research.train.feature_cache).

  Metrics carry 'finite' (loss and gradients finite); with `skip_nonfinite` a
  step that is not leaves the state as it was.
  """
  frozen_bn = frozen_batchnorm_paths(labels)
  backbone_frozen = backbone_is_frozen(labels)

  def train_step(state, batch, rng):
    trainable, frozen = partition(state.params, labels)
    rng = jax.random.fold_in(rng, state.step)

    def loss_fn(trainable):
      params = unflat({**trainable, **frozen})
      model_vars = {'params': params, 'batch_stats': state.batch_stats}
      if backbone_frozen:  # the head alone trains: on cached features, or computed here
        features = batch['features'] if 'features' in batch else state.apply_fn(
            model_vars, batch['image'], method='features')
        logits, updates = state.apply_fn(model_vars, features, train=True,
                                         rngs={'dropout': rng}, mutable=['batch_stats'],
                                         method='classify')
      else:
        with frozen_batchnorm_in_inference_mode(frozen_bn):
          logits, updates = state.apply_fn(model_vars, batch['image'], train=True,
                                           rngs={'dropout': rng}, mutable=['batch_stats'])
      loss, accuracy = task.loss_and_accuracy(logits, batch['label'], weights, label_smoothing)
      return loss, (accuracy, updates.get('batch_stats', state.batch_stats))

    (loss, (accuracy, batch_stats)), grads = jax.value_and_grad(loss_fn, has_aux=True)(trainable)
    finite = jnp.isfinite(loss) & jnp.all(jnp.stack(
        [jnp.isfinite(g).all() for g in jax.tree.leaves(grads)]))
    # frozen leaves only complete the tree: the optimizer's set_to_zero ignores them
    grads = unflat({**grads, **frozen})
    new_state = state.apply_gradients(grads=grads, batch_stats=batch_stats)
    if skip_nonfinite:
      new_state = jax.tree.map(lambda new, old: jnp.where(finite, new, old), new_state, state)
    return new_state, {'accuracy': accuracy, 'loss': loss, 'finite': finite}

  return train_step


def zero_totals(step: int = 0) -> dict:
  """An epoch's running sums (over finite steps), its first non-finite step (0: none), and
  the global step done last (`step` before the epoch's first)."""
  return {'loss': jnp.float32(0), 'accuracy': jnp.float32(0), 'finite_steps': jnp.float32(0),
          'first_nonfinite': jnp.int32(0), 'nonfinite_loss': jnp.float32(0),
          'last_finite_loss': jnp.float32(jnp.nan), 'step': jnp.int32(step)}


def with_totals(train_step):
  """`train_step` that also adds its metrics to the epoch's `totals`, on device, in the same
  dispatch: (state, totals, batch, rng) -> (state, totals). Nothing is read back, and
  nothing but the batch is sent."""
  step_only = train_step

  def train_step(state, totals, batch, rng):  # pylint: disable=function-redefined
    state, metrics = step_only(state, batch, rng)
    ok, loss, step = metrics['finite'], metrics['loss'], totals['step'] + 1
    first = (totals['first_nonfinite'] == 0) & ~ok
    return state, {
        'loss': totals['loss'] + jnp.where(ok, loss, 0.0),
        'accuracy': totals['accuracy'] + jnp.where(ok, metrics['accuracy'], 0.0),
        'finite_steps': totals['finite_steps'] + ok.astype(jnp.float32),
        'first_nonfinite': jnp.where(first, step, totals['first_nonfinite']),
        'nonfinite_loss': jnp.where(first, loss, totals['nonfinite_loss']),
        'last_finite_loss': jnp.where(ok & (totals['first_nonfinite'] == 0), loss,
                                      totals['last_finite_loss']),
        'step': step}
  return train_step
