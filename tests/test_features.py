"""Feature maps: every block's output, in call order, one PNG grid per block."""
import jax
import numpy as np
from PIL import Image

from research import config as config_lib
from research.explain.features import block_activations
from research.explain.run import feature_maps
from research.inference import TrainedRun
from research.models import Task, create_model
from research.train.state import init_variables


def test_every_block_in_call_order_one_png_each(tmp_path):
  config = config_lib.base_config()  # EfficientNet-Lite0, its ImageNet weights
  config.data.image_size = 64
  model = create_model(config.model, 1)
  variables = init_variables(model, config, jax.random.key(0), log=lambda _: None)
  image = np.random.default_rng(0).integers(0, 255, (64, 64, 3), dtype=np.uint8)
  blocks = block_activations(model, variables, image)
  assert list(blocks) == (['backbone/stem'] + [f'backbone/blocks_{i}' for i in range(16)]
                          + ['backbone/head'])
  assert blocks['backbone/stem'].shape == (32, 32, 32)
  assert blocks['backbone/head'].shape == (2, 2, 1280)
  _, state = jax.jit(lambda v, x: model.apply(v, x, mutable=['intermediates']))(
      variables, image[None])
  np.testing.assert_array_equal(blocks['backbone/blocks_3'],
                                state['intermediates']['backbone']['blocks_3']['out'][0])

  Image.fromarray(image).save(tmp_path / 'cell.png')
  run = TrainedRun(tmp_path, config, model, variables, None, Task(2), ('a', 'b'), {}, 1)
  [folder] = feature_maps(run, [str(tmp_path / 'cell.png')])
  assert folder == tmp_path / 'features' / 'cell'
  pngs = sorted(p.name for p in folder.iterdir())
  assert pngs[0] == '00_backbone_stem.png' and pngs[-1] == '17_backbone_head.png'
  assert len(pngs) == 18
