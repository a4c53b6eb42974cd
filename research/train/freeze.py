"""Which parameters train, and making frozen layers cost nothing in the backward pass.

Labels come from two config rules over '/'-joined parameter paths
('backbone/blocks_3/expand/conv/kernel'): `before`, a path prefix, freezes every
parameter created before the first one under it; `patterns` are regexes that
freeze what they match. Parameter order is the model's call order.

Gradual unfreezing is a list of phases, each with its own labels from an epoch
on; a phase only unfreezes. Each parameter belongs to the optimizer group of the
phase in which it starts to train, so its optimizer state starts at zero then.

The train step differentiates only the trainable parameters (frozen ones are
closed over as constants) and runs frozen BatchNorm layers in inference mode,
so the backward pass stops at the first trainable layer.
"""
import contextlib
import dataclasses
import difflib
import re

import flax.linen as nn
from flax import traverse_util

from research.errors import UserError

TRAINABLE, FROZEN = 'trainable', 'frozen'


class FreezeError(UserError, ValueError):
  """A freeze rule names nothing in the model."""


def flat(tree) -> dict:
  return traverse_util.flatten_dict(tree, sep='/')


def unflat(tree: dict):
  return traverse_util.unflatten_dict(tree, sep='/')


def param_labels(params, order: list[str], before: str = '', patterns=()) -> dict:
  """{path: 'trainable' | 'frozen'}, with modules in call `order` (see
  `research.models.call_order`)."""
  rank = {module: i for i, module in enumerate(order)}
  paths = sorted(flat(params), key=lambda p: (rank[p.rsplit('/', 1)[0]], p))
  start = 0
  if before:
    hits = [i for i, p in enumerate(paths) if p == before or p.startswith(before + '/')]
    if not hits:
      modules = sorted({p.rsplit('/', 2)[0] for p in paths})
      near = difflib.get_close_matches(before, modules, n=1, cutoff=0.0)
      raise FreezeError(f'freeze.before {before!r} matches no parameter path; nearest module: '
                        f'{near[0]!r}' if near else f'freeze.before {before!r} matches nothing')
    start = hits[0]
  regexes = [re.compile(p) for p in patterns]
  return {p: FROZEN if i < start or any(r.search(p) for r in regexes) else TRAINABLE
          for i, p in enumerate(paths)}


@dataclasses.dataclass(frozen=True)
class Phase:
  """From `epoch` on, `labels` say which parameters train, at `lr_factor` x the rate."""
  epoch: int
  labels: dict
  lr_factor: float = 1.0


def optimizer_groups(phases: list[Phase]) -> dict:
  """{path: 'phase_K'} for the phase K in which a parameter starts to train, or 'frozen'."""
  groups = {p: FROZEN for p in phases[0].labels}
  for k, phase in enumerate(phases):
    for path, label in phase.labels.items():
      if label == TRAINABLE and groups[path] == FROZEN:
        groups[path] = f'phase_{k}'
      elif label == FROZEN and groups[path] != FROZEN:
        raise FreezeError(f'freeze.phases: the phase from epoch {phase.epoch} freezes {path}, '
                          f'which an earlier phase trains; a phase may only unfreeze')
  return groups


def partition(params, labels: dict) -> tuple[dict, dict]:
  """(trainable, frozen) flat dicts of `params`."""
  leaves = flat(params)
  return ({p: v for p, v in leaves.items() if labels[p] == TRAINABLE},
          {p: v for p, v in leaves.items() if labels[p] == FROZEN})


def frozen_batchnorm_paths(labels: dict) -> frozenset:
  """Module paths of BatchNorm layers whose scale and bias are both frozen."""
  modules = {}
  for path, label in labels.items():
    module, leaf = path.rsplit('/', 1)
    if leaf in ('scale', 'bias'):
      modules.setdefault(module, []).append(label)
  return frozenset(m for m, ls in modules.items() if all(l == FROZEN for l in ls))


def backbone_is_frozen(labels: dict) -> bool:
  """Whether no backbone parameter trains (the head alone does)."""
  return all(label == FROZEN for path, label in labels.items() if path.startswith('backbone/'))


@contextlib.contextmanager
def frozen_batchnorm_in_inference_mode(paths: frozenset):
  """Within this context, those BatchNorm layers use (and keep) their running statistics."""
  def interceptor(next_fun, args, kwargs, context):
    module = context.module
    if (isinstance(module, nn.BatchNorm) and context.method_name == '__call__'
        and '/'.join(module.path) in paths):
      kwargs = {**kwargs, 'use_running_average': True}
    return next_fun(*args, **kwargs)

  with nn.intercept_methods(interceptor):
    yield
