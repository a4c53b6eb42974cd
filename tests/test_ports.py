"""The Flax ports equal their PyTorch references, block by block, on real photos."""
import numpy as np
import pytest

import reference
from conftest import flat_intermediates, imagenet_classifier, imagenet_model
from research.models import MODELS
from research.weights import load_into, port_state_dict

PORTED = ['efficientnet_lite0', 'mobilenet_v2']
TABBY_TO_EGYPTIAN_CAT = range(281, 286)
ESPRESSO = 967


@pytest.mark.parametrize('name', PORTED)
def test_logits_and_every_block_match_reference(name, photos):
  model, variables, state = imagenet_model(name)
  spec = MODELS[name]
  images = photos(spec.input_size)
  logits, inter = model.apply(variables, images, mutable=['intermediates'])
  blocks = flat_intermediates(inter)

  net, torch_blocks = reference.reference(name, state)
  ref_logits, ref_blocks = reference.run_with_hooks(
      net, torch_blocks, reference.normalised_nchw(images, spec.mean, spec.std))

  assert np.abs(np.asarray(logits) - ref_logits).max() <= 1e-4
  assert set(ref_blocks) <= set(blocks)
  for key, ref in ref_blocks.items():
    scale = max(1.0, np.abs(ref).max())
    assert np.abs(np.asarray(blocks[key]) - ref).max() <= 1e-4 * scale, key


@pytest.mark.parametrize('name', PORTED)
def test_real_photos_are_classified_as_imagenet_says(name, photos):
  model, variables, _ = imagenet_model(name)
  logits = np.asarray(model.apply(variables, photos(MODELS[name].input_size)))
  cat, coffee = logits.argmax(-1)
  assert cat in TABBY_TO_EGYPTIAN_CAT
  assert coffee == ESPRESSO



@pytest.mark.parametrize('name', ['efficientnet_lite1', 'efficientnet_lite2'])
def test_scaled_lite_variants_match_reference_on_reference_initialised_weights(name, photos):
  """Lite1/2 files are not installed here: the reference's own initialisation, exported as a
  state_dict, proves the width/depth scaling and the key table through the same port."""
  net = reference.efficientnet_lite_initialised(name)
  spec = MODELS[name]
  model, variables = imagenet_classifier(name)
  state = {k: v.numpy() for k, v in net.state_dict().items()}
  variables = load_into(variables, port_state_dict(state, spec.key_table))
  images = photos(spec.input_size)
  logits = np.asarray(model.apply(variables, images))
  expected, _ = reference.run_with_hooks(net, {}, reference.normalised_nchw(images, spec.mean,
                                                                            spec.std))
  assert np.abs(logits - expected).max() <= 1e-4
