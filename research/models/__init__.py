"""Model assembly: a registered backbone plus the head described in the config."""
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
  return Classifier(spec.backbone(), head, spec.mean, spec.std, model_config.dtype)


def input_size(config) -> int:
  """The side images are resized to: `data.image_size`, or the registry's size for the model."""
  return config.data.image_size or get_spec(config.model.name).input_size
