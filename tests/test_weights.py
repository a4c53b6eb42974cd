"""Weight files: download via file:// into the cache, checksums, wrong architectures."""
import hashlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax.traverse_util import flatten_dict

from research.config import base_config
from research.models import MODELS, create_model
from research.train.state import init_variables, pretrained_file
from research.weights import (PortError, WeightFile, WeightFileError, load_file, merge_params,
                              resolve)
from research.weights.port import port_state_dict
from research.weights import tables


@pytest.fixture
def cache(tmp_path, monkeypatch):
  monkeypatch.setenv('RESEARCH_CACHE', str(tmp_path / 'cache'))
  return tmp_path / 'cache' / 'weights'


def published(tmp_path, content=b'weights' * 1000, algorithm='sha256'):
  source = tmp_path / 'server' / 'w.pth'
  source.parent.mkdir()
  source.write_bytes(content)
  digest = hashlib.new(algorithm, content).hexdigest()
  return source, WeightFile('w.pth', source.as_uri(),
                            digest if algorithm == 'sha256' else f'{algorithm}:{digest}')


def test_downloads_once_into_the_cache(tmp_path, cache):
  source, wf = published(tmp_path)
  assert resolve(wf) == cache / 'w.pth'
  source.unlink()  # offline from now on: the cached copy is used
  assert resolve(wf).read_bytes() == b'weights' * 1000


@pytest.mark.parametrize('algorithm', ['sha256', 'md5'])  # md5: Keras's published checksums
def test_corrupt_file_names_file_and_both_hashes(tmp_path, cache, algorithm):
  _, wf = published(tmp_path, algorithm=algorithm)
  resolve(wf)
  (cache / 'w.pth').write_bytes(b'truncated')
  actual = hashlib.new(algorithm, b'truncated').hexdigest()
  expected = wf.digest.removeprefix(f'{algorithm}:')
  with pytest.raises(WeightFileError) as e:
    resolve(wf)
  assert str(e.value) == (f'{cache / "w.pth"}: {algorithm} is {actual}, expected {expected}; the '
                          f'file is corrupt or not this model\'s: delete it and fetch it again')


def test_missing_file_offline_names_url_and_cache_path(tmp_path, cache):
  source, wf = published(tmp_path)
  source.unlink()
  with pytest.raises(WeightFileError, match=f'could not download {wf.url} .*: put w.pth at '
                     f'{cache / "w.pth"}$'):
    resolve(wf)


def test_missing_local_path_is_named(tmp_path):
  _, wf = published(tmp_path)
  with pytest.raises(WeightFileError, match=f'weight file {tmp_path / "x.pth"} does not exist'):
    resolve(wf, str(tmp_path / 'x.pth'))


def test_weights_of_another_architecture_name_the_key():
  state = {'features.0.0.weight': np.zeros((32, 3, 3, 3), np.float32)}
  with pytest.raises(PortError, match="key 'features.0.0.weight' matches no row"):
    port_state_dict(state, tables.EFFICIENTNET_LITE)
  variables = {'params': {'backbone': {'stem': {'conv': {'kernel': np.zeros((3, 3, 3, 16))}}}}}
  ported = {'params/backbone/stem/conv/kernel': np.zeros((3, 3, 3, 32))}
  with pytest.raises(PortError, match=r'params/backbone/stem/conv/kernel: weight file has shape '
                     r'\(3, 3, 3, 32\), model has \(3, 3, 3, 16\)'):
    merge_params(ported, variables)


@pytest.mark.parametrize('algorithm', ['sha256', 'md5'])
def test_your_own_file_loads_unchecksummed_with_one_line(tmp_path, cache, algorithm):
  source, wf = published(tmp_path, algorithm=algorithm)
  lines = []
  assert resolve(wf, str(source), log=lines.append) == source  # the published file: silent
  assert lines == []
  own = tmp_path / 'finetuned.pth'
  own.write_bytes(b'my weights' * 1000)
  assert resolve(wf, str(own), log=lines.append) == own
  assert lines == [f'weights: {own} is not the published w.pth, so it was not checksummed; '
                   f'loading it as this architecture\'s weights']
  cached = cache / 'w.pth'  # the published file, found in the cache, stays checked
  cached.parent.mkdir(parents=True)
  cached.write_bytes(b'tampered')
  with pytest.raises(WeightFileError, match='the file is corrupt or not this model'):
    resolve(wf)


def test_a_pretrained_start_initialises_only_what_the_file_does_not_fill():
  """The head (model.dont_load) as a whole-model init makes it, everything else the file's:
  the same variables as initialising the whole model and loading the file over it."""
  config = base_config()  # EfficientNet-Lite0, ImageNet weights, a new 1-output head
  config.data.image_size = 64
  model = create_model(config.model, 1)
  ours = init_variables(model, config, jax.random.key(0), log=lambda _: None)
  whole = jax.jit(model.init)(jax.random.key(0), jnp.zeros((1, 64, 64, 3), jnp.uint8))
  whole = {k: jax.tree.map(np.asarray, whole[k]) for k in ('params', 'batch_stats')}
  expected = load_file(whole, MODELS[config.model.name], pretrained_file(config),
                       tuple(config.model.dont_load))
  a, b = flatten_dict(ours, sep='/'), flatten_dict(expected, sep='/')
  assert sorted(a) == sorted(b)
  assert {p for p in a if p.startswith('params/head')} == {'params/head/logits/kernel',
                                                           'params/head/logits/bias'}
  for path, value in b.items():
    assert np.array_equal(np.asarray(a[path]), value), path
