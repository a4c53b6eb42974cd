"""The ported ImageNet files classify real photos as ImageNet says (parity with the
references, block by block: test_parity.py)."""
import numpy as np
import pytest

from conftest import imagenet_model
from research.models import MODELS

TABBY_TO_EGYPTIAN_CAT = range(281, 286)
ESPRESSO = 967


@pytest.mark.parametrize('name', ['efficientnet_lite0', 'mobilenet_v2'])
def test_real_photos_are_classified_as_imagenet_says(name, photos):
  model, variables, _ = imagenet_model(name)
  logits = np.asarray(model.apply(variables, photos(MODELS[name].input_size)))
  cat, coffee = logits.argmax(-1)
  assert cat in TABBY_TO_EGYPTIAN_CAT
  assert coffee == ESPRESSO
