"""Frozen features computed once: a head-only run on cached features ends where the
uncached run ends; augmented views are drawn per epoch; large caches are memory-mapped."""
import numpy as np

from research.cli.main import main
from research.config import base_config
from research.data import cached_batches
from research.experiment.run import restore
from research.train.freeze import flat

HEAD_ONLY = ['--config.model.name=simple_cnn', '--config.model.pretrained=False',
             '--config.freeze.before=head', '--config.model.hidden=8',
             '--config.model.dropout=0.3', '--config.batch_size=4',
             '--config.gradcam.num_images=0', '--config.features.num_images=0',
             '--config.num_epochs=3', '--config.optimizer.learning_rate=0.01', '--config.data.image_size=32',
             '--config.data.augment.rotation=0.0', '--config.data.augment.shear=0.0',
             '--config.data.augment.zoom=0.0', '--config.data.augment.hflip=False']


def train(folder, workdir, *extra):
  return main(['configs/efficientnet_adam.py', *HEAD_ONLY, f'--config.data.path={folder}',
               f'--config.workdir={workdir}', *extra])


def test_head_only_on_cached_features_equals_recomputing(folder, tmp_path, capsys):
  assert train(folder, tmp_path / 'recomputed', '--config.feature_cache.enabled=False') == 0
  assert 'cache:' not in ''.join(capsys.readouterr())
  # memory_gb=0: the cache is memory-mapped in the run directory
  assert train(folder, tmp_path / 'cached', '--config.feature_cache.memory_gb=0') == 0
  out = ''.join(capsys.readouterr())
  assert 'cache:   backbone features of 16 train images x 1 view(s)' in out
  assert 'memory-mapped' in out
  assert (tmp_path / 'cached' / 'feature_cache' / 'train.npy').exists()
  a, b = restore(tmp_path / 'recomputed', 'last'), restore(tmp_path / 'cached', 'last')
  assert a.epoch == b.epoch == 3
  for path, value in flat(a.variables['params']).items():
    np.testing.assert_allclose(flat(b.variables['params'])[path], value, rtol=1e-5, atol=1e-6,
                               err_msg=path)


def test_augmented_views_are_cached_and_one_drawn_per_image_each_epoch():
  views, n = 3, 12
  features = np.asarray([[[1000 * v + i] for i in range(n)] for v in range(views)], np.float32)
  labels = [i % 2 for i in range(n)]
  data = base_config().data
  drawn = []
  for epoch in (1, 2, 3, 4):
    batches = list(cached_batches(features, labels, epoch, data, 4, 0))
    values = np.concatenate([b['features'][:, 0] for b in batches]).astype(int)
    index, view = values % 1000, values // 1000
    assert sorted(index) == list(range(n))  # every image once per epoch
    assert [labels[i] for i in index] == list(np.concatenate([b['label'] for b in batches]))
    drawn.append(view[np.argsort(index)])
  drawn = np.asarray(drawn)
  assert set(drawn.ravel()) == {0, 1, 2}  # all views are used
  assert (drawn != drawn[0]).any()  # and an image's view changes between epochs


def test_with_augmentation_on_views_decide_whether_to_cache(folder, tmp_path, capsys):
  augmented = ['--config.data.augment.zoom=0.2', '--config.num_epochs=1']
  assert train(folder, tmp_path / 'fresh', *augmented) == 0
  assert 'cache:' not in ''.join(capsys.readouterr())  # default: a fresh augmentation every epoch
  assert train(folder, tmp_path / 'views', *augmented, '--config.feature_cache.views=2') == 0
  assert 'cache:   backbone features of 16 train images x 2 view(s)' in ''.join(capsys.readouterr())


def test_a_cached_run_resumed_equals_the_uninterrupted_one(folder, tmp_path):
  assert train(folder, tmp_path / 'whole') == 0
  assert train(folder, tmp_path / 'resumed', '--config.num_epochs=1') == 0
  assert train(folder, tmp_path / 'resumed', '--resume', str(tmp_path / 'resumed')) == 0
  a, b = restore(tmp_path / 'whole', 'last'), restore(tmp_path / 'resumed', 'last')
  for path, value in flat(a.variables['params']).items():
    assert np.array_equal(value, flat(b.variables['params'])[path]), path
