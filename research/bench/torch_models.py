"""PyTorch references for the benchmark (and the parity tests): the same architectures with a
one-logit head, frozen the way a PyTorch user freezes (`requires_grad=False` on every parameter
of the frozen modules, those modules in eval mode), channels-last.

What is frozen is decided per parameter, not per leaf module: a module that owns parameters
and also has children (efficientnet_lite_pytorch's `Conv2dStaticSamePadding` holds a
`static_padding` child) is frozen like any other, so the reference trains exactly the
parameters this project trains (tests/test_bench.py counts them for every row).
"""
import os
import sys
import types

import numpy as np
import torch


def torchvision():
  """torchvision 0.28.0 is a CUDA wheel installed --no-deps; its import fails on CPU-only
  torch until these two registration modules are stubbed. Its models then run on CPU."""
  for name in ('torchvision._meta_registrations', 'torchvision._autograd_registrations'):
    sys.modules.setdefault(name, types.ModuleType(name))
  import torchvision as tv  # pylint: disable=import-outside-toplevel
  return tv


def with_one_logit(model: str) -> tuple[torch.nn.Module, str]:
  """(network, the name of its new head). EfficientNet-Lite's drop-connect is off: this
  project's port has none (the same work on both sides)."""
  if model.startswith('efficientnet_lite'):
    from efficientnet_lite_pytorch import EfficientNet  # pylint: disable=import-outside-toplevel
    net = EfficientNet.from_name(model.replace('_', '-'), drop_connect_rate=0.0)
    net._fc = torch.nn.Linear(net._fc.in_features, 1)  # pylint: disable=protected-access
    return net, '_fc'
  models = torchvision().models
  if model in ('mobilenet_v2', 'efficientnet_b0'):
    net = getattr(models, model)()
    net.classifier[-1] = torch.nn.Linear(net.classifier[-1].in_features, 1)
    return net, f'classifier.{len(net.classifier) - 1}'
  if model == 'inception_v3':
    net = models.inception_v3(aux_logits=False, init_weights=False)
    # Keras's InceptionV3 (this project's port) has BatchNorm without a scale (scale=False:
    # gamma is 1 and never trains); torchvision's scale starts at 1 and stays there.
    for module in net.modules():
      if isinstance(module, torch.nn.BatchNorm2d):
        module.weight.requires_grad_(False)
  else:
    net = getattr(models, model)()
  net.fc = torch.nn.Linear(net.fc.in_features, 1)
  return net, 'fc'


def call_order(net: torch.nn.Module, size: int) -> list[str]:
  """Names of the modules that own parameters themselves, in the order the forward pass
  first calls them."""
  order = []
  hooks = [m.register_forward_pre_hook(lambda m, _, name=name: order.append(name))
           for name, m in net.named_modules() if list(m.parameters(recurse=False))]
  with torch.no_grad():
    net.eval()(torch.zeros(1, 3, size, size))
  for hook in hooks:
    hook.remove()
  return list(dict.fromkeys(order))


def frozen_modules(net: torch.nn.Module, size: int, before: str, head: str) -> list[str]:
  """The parameter-owning modules called before `before` ('head': all but `head`; '':
  none)."""
  if not before:
    return []
  order = call_order(net, size)
  first = head if before == 'head' else before
  index = next(i for i, name in enumerate(order) if name == first or name.startswith(first + '.'))
  return order[:index]


def freeze(net: torch.nn.Module, names: list[str]) -> None:
  """`requires_grad=False` on the named modules' own parameters; every module whose
  parameters are all frozen (a frozen block, a frozen BatchNorm) runs in eval mode."""
  modules = dict(net.named_modules())
  for name in names:
    for p in modules[name].parameters(recurse=False):
      p.requires_grad_(False)
  for module in net.modules():
    params = list(module.parameters())
    if params and not any(p.requires_grad for p in params):
      module.eval()


def trainable_parameters(net) -> int:
  """Scalars that train: PyTorch parameters with requires_grad, or a Keras model's
  trainable weights."""
  if isinstance(net, torch.nn.Module):
    return sum(p.numel() for p in net.parameters() if p.requires_grad)
  return sum(int(np.prod(w.shape)) for w in net.trainable_weights)


def reference(model: str, size: int, before: str) -> torch.nn.Module:
  """The network with its one-logit head, frozen before `before`, in train mode (frozen
  modules in eval mode), channels-last."""
  torch.manual_seed(0)
  net, head = with_one_logit(model)
  frozen = frozen_modules(net, size, before, head)
  net = net.to(memory_format=torch.channels_last).train()
  freeze(net, frozen)
  return net


def train_step_fn(model: str, size: int, before: str, batch: int):
  """(A closure running one Adam step of binary cross-entropy on a random batch, the
  network)."""
  net = reference(model, size, before)
  optimizer = torch.optim.Adam([p for p in net.parameters() if p.requires_grad], 1e-3)
  rng = np.random.default_rng(0)
  images = torch.from_numpy(rng.normal(size=(batch, 3, size, size)).astype(np.float32))
  images = images.contiguous(memory_format=torch.channels_last)
  labels = torch.from_numpy((np.arange(batch) % 2).astype(np.float32))
  loss_fn = torch.nn.BCEWithLogitsLoss()

  def step():
    optimizer.zero_grad(set_to_none=True)
    loss_fn(net(images)[:, 0], labels).backward()
    optimizer.step()
  return step, net


def keras_on_jax():
  """Keras 3 on its JAX backend (chosen before its first import)."""
  os.environ.setdefault('KERAS_BACKEND', 'jax')
  import keras  # pylint: disable=import-outside-toplevel
  return keras


def keras_reference(model: str, size: int, before: str):
  """Keras 3's own model for one PyTorch has none of (NASNetMobile: neither torchvision nor
  timm has it, and Keras refuses it on its torch backend), on Keras's JAX backend, layers
  before Keras index `before` frozen, a one-logit Dense head."""
  keras = keras_on_jax()
  builders = {'nasnet_mobile': keras.applications.NASNetMobile}
  base = builders[model](weights=None, include_top=False, pooling='avg',
                         input_shape=(size, size, 3))
  for layer in base.layers[:int(before or 0)]:
    layer.trainable = False
  return keras.Sequential([base, keras.layers.Dense(1)])


def keras_train_step_fn(model: str, size: int, before: str, batch: int):
  """(Keras's own `train_on_batch` (jit-compiled), as the write-up's Keras users run it, the
  model)."""
  keras = keras_on_jax()
  net = keras_reference(model, size, before)
  net.compile(optimizer=keras.optimizers.Adam(1e-3),
              loss=keras.losses.BinaryCrossentropy(from_logits=True))
  rng = np.random.default_rng(0)
  images = rng.normal(size=(batch, size, size, 3)).astype(np.float32)
  labels = (np.arange(batch) % 2).astype(np.float32)[:, None]
  return lambda: net.train_on_batch(images, labels), net
