"""The benchmark's rows: each write-up's training configuration, as this project runs it
(`freeze`, any form `freeze.before` takes) and as its PyTorch reference does (`torch_freeze`:
the first trainable module's name in call order, '' for none frozen, 'head' for the new
head only)."""
import dataclasses


@dataclasses.dataclass(frozen=True)
class Row:
  label: str
  model: str
  freeze: str
  torch_freeze: str
  reference: str = 'PyTorch eager'


ROWS = (
    Row('EfficientNet-Lite0, trainable from blocks_12 (the main config)', 'efficientnet_lite0',
        'backbone/blocks_12', '_blocks.12'),
    Row('EfficientNet-Lite0, full fine-tune', 'efficientnet_lite0', '', ''),
    Row('EfficientNet-Lite0, head only', 'efficientnet_lite0', 'head', 'head'),
    Row('MobileNetV2, full fine-tune', 'mobilenet_v2', '', ''),
    Row('ResNet50, trainable from layer4.0.conv1 (20-class write-up)', 'resnet50',
        'layer4.0.conv1', 'layer4.0.conv1'),
    Row('ResNet50, full fine-tune', 'resnet50', '', ''),
    Row('EfficientNet-B0, full fine-tune (torchvision\'s B0 for PyTorch)', 'efficientnet_b0',
        '', ''),
    Row('InceptionV3 at 299 px, full fine-tune (torchvision\'s for PyTorch)', 'inception_v3',
        '', ''),
    Row('NASNetMobile, trainable from Keras layer 752 (restaurant write-up)', 'nasnet_mobile',
        '752', '752', reference='Keras 3 (JAX backend)'),
)
