"""torch names freeze what torchvision would (the torch ports' parity, block by block from
a state_dict .pth file: test_parity.py)."""
import jax

import reference
from research.config import base_config
from research.models import MODELS, create_model
from research.train.freeze import TRAINABLE
from research.train.state import create_train_state
from research.weights import port_state_dict


def test_freezing_from_a_torch_name_freezes_what_torch_would():
  """`freeze.before=layer4.0.conv1` trains exactly the parameters torchvision lists from
  layer4.0.conv1.weight on (and the new head)."""
  net = reference.torchvision().models.resnet50()
  names = [n for n, _ in net.named_parameters()]
  state = {n: p.detach().numpy() for n, p in net.named_parameters()}
  to_flax = {n: next(iter(port_state_dict({n: state[n]}, MODELS['resnet50'].weight_format.key_table)))
             for n in names}
  expected = {to_flax[n].removeprefix('params/') for n in names[names.index('layer4.0.conv1.weight'):]
              if not n.startswith('fc.')} | {'head/logits/kernel', 'head/logits/bias'}

  config = base_config()
  config.model.name, config.model.pretrained = 'resnet50', False
  config.freeze.before = 'layer4.0.conv1'
  _, phases = create_train_state(create_model(config.model, 1), config, 10, jax.random.key(0))
  labels = phases[0].labels
  assert {p for p, l in labels.items() if l == TRAINABLE} == expected
