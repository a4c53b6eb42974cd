"""Optimizers from config, masked so frozen parameters get no update and no state."""
import optax

from research.config import CHOICES, ConfigError
from research.train.freeze import FROZEN, TRAINABLE, unflat


def learning_rate(opt_config, steps_per_epoch: int):
  """Constant, or StepLR: multiplied by `gamma` every `step_epochs` epochs."""
  if not opt_config.step_epochs:
    return opt_config.learning_rate
  return optax.exponential_decay(opt_config.learning_rate,
                                 transition_steps=opt_config.step_epochs * steps_per_epoch,
                                 decay_rate=opt_config.gamma, staircase=True)


def make_optimizer(opt_config, steps_per_epoch: int, labels: dict):
  lr = learning_rate(opt_config, steps_per_epoch)
  if opt_config.name == 'adam':
    base = optax.adam(lr)
  elif opt_config.name == 'sgd':
    base = optax.sgd(lr, momentum=opt_config.momentum or None)
  else:
    raise ConfigError(f'optimizer.name {opt_config.name!r} is not one of: '
                      f'{", ".join(CHOICES["optimizer.name"])}')
  return optax.multi_transform({TRAINABLE: base, FROZEN: optax.set_to_zero()}, unflat(labels))
