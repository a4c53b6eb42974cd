"""PyTorch reference implementations for the parity tests (torchvision's import workaround:
research.bench.torch_models)."""
import numpy as np
import torch

from research.bench.torch_models import torchvision  # pylint: disable=unused-import


def efficientnet_lite(name: str, state: dict) -> torch.nn.Module:
  from efficientnet_lite_pytorch import EfficientNet  # pylint: disable=import-outside-toplevel
  net = EfficientNet.from_name(name.replace('_', '-'))
  net.load_state_dict({k: torch.from_numpy(v) for k, v in state.items()})
  return net.eval()


def efficientnet_lite_initialised(name: str, seed: int = 0) -> torch.nn.Module:
  """The reference with its own random init."""
  from efficientnet_lite_pytorch import EfficientNet  # pylint: disable=import-outside-toplevel
  torch.manual_seed(seed)
  return randomise_batchnorm(EfficientNet.from_name(name.replace('_', '-')))


def randomise_batchnorm(net: torch.nn.Module) -> torch.nn.Module:
  """Non-trivial BatchNorm statistics and scales (a fresh init has mean 0, var 1, scale 1),
  so that a port mixing them up cannot pass; returns `net` in eval mode. Scales below 1
  keep deep residual stacks from growing to 1e11 (ResNet-152), where float32 rounding
  alone would exceed any absolute tolerance."""
  with torch.no_grad():
    for module in net.modules():
      if isinstance(module, torch.nn.BatchNorm2d):
        module.running_mean.uniform_(-0.1, 0.1)
        module.running_var.uniform_(0.5, 1.5)
        module.weight.uniform_(0.25, 0.75)
  return net.eval()


def mobilenet_v2(state: dict) -> torch.nn.Module:
  net = torchvision().models.mobilenet_v2()
  net.load_state_dict({k: torch.from_numpy(v) for k, v in state.items()})
  return net.eval()


def normalised_nchw(images: np.ndarray, mean, std) -> torch.Tensor:
  x = (images.astype(np.float32) - np.asarray(mean, np.float32)) / np.asarray(std, np.float32)
  return torch.from_numpy(x).permute(0, 3, 1, 2).contiguous()


def run_with_hooks(net: torch.nn.Module, blocks: dict, x: torch.Tensor):
  """Logits and every block's output (NHWC numpy), via forward hooks."""
  outputs = {}
  handles = [m.register_forward_hook(
      lambda _m, _i, out, key=key: outputs.__setitem__(key, out.permute(0, 2, 3, 1).numpy()))
             for key, m in blocks.items()]
  with torch.no_grad():
    logits = net(x).numpy()
  for h in handles:
    h.remove()
  return logits, outputs


def resnet_initialised(name: str, seed: int = 0) -> torch.nn.Module:
  """torchvision's ResNet with its own random init."""
  torch.manual_seed(seed)
  return randomise_batchnorm(getattr(torchvision().models, name)())
