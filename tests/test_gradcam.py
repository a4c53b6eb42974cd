"""Grad-CAM from jax.grad equals an independent PyTorch autograd Grad-CAM on the same weights."""
import numpy as np
import pytest
import torch

import reference
from conftest import imagenet_model, photo
from research.explain import LayerError, gradcam
from research.models import MODELS, Task

TABBY = 281


def torch_gradcam(name: str, state: dict, image: np.ndarray, target: int) -> np.ndarray:
  """Grad-CAM with torch autograd at the last feature map (the registry's default layer)."""
  spec = MODELS[name]
  x = reference.normalised_nchw(image[None], spec.mean, spec.std)
  if name.startswith('efficientnet_lite'):
    net = reference.efficientnet_lite(name, state)
    features = net.extract_features(x)
    logits = lambda a: net._fc(a.mean((2, 3)))  # pylint: disable=protected-access
  else:
    net = reference.mobilenet_v2(state)
    features = net.features(x)
    logits = lambda a: net.classifier(a.mean((2, 3)))
  features.retain_grad()
  logits(features)[0, target].backward()
  weights = features.grad.mean((2, 3), keepdim=True)
  cam = torch.relu((weights * features).sum(1))[0].detach().numpy()
  return cam / cam.max()


@pytest.mark.parametrize('name', ['efficientnet_lite0', 'mobilenet_v2'])
def test_gradcam_matches_torch_autograd(name):
  model, variables, state = imagenet_model(name)
  image = photo('chelsea', MODELS[name].input_size)
  cams, _, targets = gradcam(model, variables, image[None], MODELS[name].gradcam_layer,
                             Task(1000), targets=[TABBY])
  expected = torch_gradcam(name, state, image, TABBY)
  assert targets.tolist() == [TABBY]
  assert cams.shape == (1,) + expected.shape
  assert np.corrcoef(cams[0].ravel(), expected.ravel())[0, 1] >= 0.99


def test_binary_target_is_the_logit_or_its_negation():
  target_score = lambda logits, targets, _: Task(2).score(logits, targets)
  logits = np.array([[2.0], [-3.0]])
  assert target_score(logits, np.array([1, 1]), True).tolist() == [2.0, -3.0]
  assert target_score(logits, np.array([0, 0]), True).tolist() == [-2.0, 3.0]


def test_unknown_layer_names_the_nearest_layer(photos):
  model, variables, _ = imagenet_model('mobilenet_v2')
  with pytest.raises(LayerError, match="'backbone/featurs_18' is not a layer of this model; "
                     "nearest: 'backbone/features_18'"):
    gradcam(model, variables, photos(64)[:1], 'backbone/featurs_18', Task(1000))
