"""Starting a run from another run's weights (`model.init_from`): the backbone carries over,
a head for other classes is initialised anew, another model is refused in one line."""
import numpy as np
import pytest

from helpers import make_folder
from research import config as config_lib
from research.cli.main import main
from research.experiment.run import restore
from research.train.freeze import flat
from research.train.loop import build
from test_train import train


@pytest.fixture(scope='module')
def finished(tmp_path_factory):
  root = tmp_path_factory.mktemp('init')
  assert train(make_folder(root / 'images', per_class=12), root / 'run', 1) == 0
  return root / 'run'


def new_config(finished, *overrides):
  return config_lib.load('configs/efficientnet_adam.py', [
      'model.name=simple_cnn', 'model.pretrained=False', 'freeze.before=', 'batch_size=4',
      'data.image_size=32',
      f'model.init_from={finished}', *overrides])


def test_backbone_carries_over_and_a_new_head_is_initialised(finished):
  lines = []
  built = build(new_config(finished), num_classes=3, steps=1, log=lines.append)
  theirs, ours = flat(restore(finished).variables['params']), flat(built.state.params)
  for path in ('backbone/conv_0/kernel', 'backbone/conv_1/bias'):
    np.testing.assert_array_equal(ours[path], theirs[path])
  assert ours['head/logits/kernel'].shape == (64, 3) != theirs['head/logits/kernel'].shape
  assert lines == [f'init:    weights from {finished}; 2 head tensors of another shape '
                   f'initialised anew']
  same = build(new_config(finished), num_classes=2, steps=1, log=lines.append)
  np.testing.assert_array_equal(flat(same.state.params)['head/logits/kernel'],
                                theirs['head/logits/kernel'])  # same head: carried over too


def test_a_run_of_another_model_is_refused_naming_both(finished, tmp_path, capsys):
  code = main(['configs/efficientnet_adam.py', '--config.model.pretrained=False',
               f'--config.model.init_from={finished}', f'--config.workdir={tmp_path / "run"}',
               f'--config.data.path={finished.parent / "images"}', '--config.batch_size=4'])
  assert code == 2
  assert capsys.readouterr().err.splitlines()[-1] == (
      f'error: model.init_from {finished} holds a simple_cnn, but this config builds a '
      f'efficientnet_lite0: set --config.model.name=simple_cnn, or start from a run of '
      f'efficientnet_lite0')
  assert not (tmp_path / 'run').exists()
