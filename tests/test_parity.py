"""The parity harness every ported family runs through: from a weight file in the format a
download has, ported by the family's registry entry, the Flax model equals its reference
(references.py) on two real photos -- the logits and every block it taps.

Tolerance: 1e-4 x max(1, |reference|) on the logits and on every block, float32.
"""
import numpy as np
import pytest

import references
from conftest import flat_intermediates, imagenet_classifier
from research.models import MODELS
from research.weights import load_file

SLOW = pytest.mark.slow

SMALLER = {f'resnet{d}': 128 for d in (50, 101, 152)}  # than the registry's size, for time
# in CI, one of each weight format: the main config's model (efficientnet-lite's .pth), a
# torchvision file (ResNet50) and a Keras .h5 (MobileNetV1, at the odd size whose padding
# differs); the whole matrix under `slow` (`.venv/bin/python -m pytest -m slow tests/test_parity.py`)
IN_CI = {('efficientnet_lite0', None, True), ('resnet50', 128, True),
         ('mobilenet_v1', 129, False)}
# (model, image size, with the ImageNet top): every family in references.py at its registry
# size, and odd sizes where padding or pooling differs
CASES = [pytest.param(*case, marks=[] if case in IN_CI else [SLOW]) for case in [
    *((name, SMALLER.get(name), True) for name in references.REFERENCES),
    ('googlenet', 129, True),  # ceil_mode pooling
    ('mobilenet_v1', 129, False),  # Keras's explicit (0, 1) padding is not 'SAME'
]]


def close(ours, ref, what):
  assert np.abs(np.asarray(ours) - ref).max() <= 1e-4 * max(1.0, np.abs(ref).max()), what


@pytest.mark.parametrize('name,size,top', CASES)
def test_port_equals_reference_block_by_block(name, size, top, photos, tmp_path):
  spec = MODELS[name]
  size = size or spec.input_size
  ref = references.build(name, tmp_path, size, top)
  model, variables = imagenet_classifier(name)
  variables = load_file(variables, spec, ref.file, dont_load=() if top else ('head/.*',))
  images = photos(size)
  if top:
    logits, inter = model.apply(variables, images, mutable=['intermediates'])
  else:  # the feature map
    x = (images.astype(np.float32) - np.float32(spec.mean)) / np.float32(spec.std)
    logits, inter = model.apply(variables, x, mutable=['intermediates'],
                                method=lambda m, x: m.backbone(x))
  ours = flat_intermediates(inter)
  ref_logits, ref_blocks = ref.run(images, list(ours))

  close(logits, ref_logits, 'logits')
  assert len(ref_blocks) >= 4 and set(ref_blocks) <= set(ours)
  for tap, block in ref_blocks.items():
    close(ours[tap], block, tap)


def test_every_family_with_weights_runs_through_the_harness():
  ported = {name for name, spec in MODELS.items() if spec.weight_format}
  assert set(references.REFERENCES) == ported
