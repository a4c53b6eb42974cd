"""Model assembly: a registered backbone plus the head described in the config."""
import jax

from research.config import ConfigError
from research.models.classifier import Classifier, Head
from research.models.layers import call_order
from research.models.registry import MODELS, ModelSpec
from research.models.task import Task


def get_spec(name: str) -> ModelSpec:
  if name not in MODELS:
    raise ConfigError(f'unknown model {name!r}: choose one of {", ".join(MODELS)}')
  return MODELS[name]


def create_model(model_config, num_outputs: int) -> Classifier:
  """`model_config` is the config's `model` section."""
  spec = get_spec(model_config.name)
  head = Head(num_outputs, tuple(model_config.hidden), model_config.dropout,
              model_config.pooling)
  return Classifier(spec.backbone(), head, spec.mean, spec.std,
                    compute_dtype(model_config.dtype))


def compute_dtype(dtype: str, backend: str | None = None) -> str:
  """`model.dtype` as the backbone computes: 'auto' is bfloat16 on an accelerator (GPU,
  TPU), float32 on the CPU (`backend`: jax.default_backend())."""
  if dtype != 'auto':
    return dtype
  return 'float32' if (backend or jax.default_backend()) == 'cpu' else 'bfloat16'


def input_size(config) -> int:
  """The side images are resized to: `data.image_size`, or the registry's size for the model."""
  return config.data.image_size or get_spec(config.model.name).input_size
