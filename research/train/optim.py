"""Optimizers from config, masked so frozen parameters get no update and no state.

The update is the optimizer's scaling (Adam's moments, SGD's momentum) per
parameter group, then one learning-rate schedule over the global step. With
gradual unfreezing each phase's group is masked until its phase begins, so the
parameters it unfreezes start with zero moments (and Adam's bias correction from
their own first step), as a new PyTorch parameter group would.
"""
import optax

from research.config import CHOICES, ConfigError
from research.train.freeze import FROZEN, Phase, optimizer_groups, unflat


def learning_rate(opt_config, steps_per_epoch: int, num_epochs: int,
                  phases: tuple[Phase, ...] = ()):
  """Constant, StepLR (multiplied by `gamma` every `step_epochs` epochs) or cosine decay to 0
  over the run, after a linear warm-up of `warmup_epochs`; times each phase's `lr_factor`
  from its first step."""
  rate, peak = opt_config.learning_rate, opt_config.learning_rate
  warmup = round(opt_config.warmup_epochs * steps_per_epoch)
  if opt_config.cosine and opt_config.step_epochs:
    raise ConfigError('optimizer.cosine and optimizer.step_epochs both set a schedule: set one')
  if opt_config.cosine:
    # a warm-up as long as the run leaves the decay after its end
    rate = optax.warmup_cosine_decay_schedule(0.0, peak, warmup,
                                              max(num_epochs * steps_per_epoch, warmup + 1))
  elif opt_config.step_epochs:
    rate = optax.exponential_decay(peak, transition_steps=opt_config.step_epochs * steps_per_epoch,
                                   decay_rate=opt_config.gamma, staircase=True)
  if warmup and not opt_config.cosine:
    after = rate if callable(rate) else optax.constant_schedule(rate)
    rate = optax.join_schedules([optax.linear_schedule(0.0, peak, warmup), after], [warmup])
  if all(p.lr_factor == 1 for p in phases):
    return rate
  base = rate if callable(rate) else optax.constant_schedule(rate)
  factors = optax.join_schedules([optax.constant_schedule(p.lr_factor) for p in phases],
                                 [(p.epoch - 1) * steps_per_epoch for p in phases[1:]])
  return lambda step: base(step) * factors(step)


def scaling(opt_config) -> optax.GradientTransformation:
  """The optimizer without its learning rate: optax.adam = scale_by_adam + rate, optax.adamw
  = scale_by_adam + decayed weights + rate."""
  if opt_config.name == 'adam':
    return optax.scale_by_adam()
  if opt_config.name == 'adamw':
    return optax.chain(optax.scale_by_adam(),
                       optax.add_decayed_weights(opt_config.weight_decay))
  if opt_config.name == 'sgd':
    return optax.trace(decay=opt_config.momentum) if opt_config.momentum else optax.identity()
  raise ConfigError(f'optimizer.name {opt_config.name!r} is not one of: '
                    f'{", ".join(CHOICES["optimizer.name"])}')


def make_optimizer(opt_config, steps_per_epoch: int, num_epochs: int, phases: list[Phase]):
  groups = {FROZEN: optax.set_to_zero()}
  for k, phase in enumerate(phases):
    start = (phase.epoch - 1) * steps_per_epoch
    groups[f'phase_{k}'] = scaling(opt_config) if start == 0 else (
        optax.transforms.conditionally_mask(scaling(opt_config), lambda step, s=start: step >= s))
  return optax.chain(optax.multi_transform(groups, unflat(optimizer_groups(phases))),
                     optax.scale_by_learning_rate(learning_rate(opt_config, steps_per_epoch,
                                                                num_epochs, tuple(phases))))
