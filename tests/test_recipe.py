"""The careful practitioner's recipe: best checkpoint and early stopping, image size, class
weights and balanced sampling, schedules, AdamW, label smoothing, flip TTA, and the report's
balanced metrics -- each against a value computed by hand or a constructed history."""
import json

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from helpers import make_folder
from research.cli.main import main
from research.config import ConfigError, base_config
from research.data import train_batches
from research.data.pipeline import balanced_draw
from research.inference import predict_batch
from research.evaluate.report import metrics
from research.experiment.run import restore
from research.models import Task, create_model
from research.train.checkpoint import best_epoch
from research.train.loop import stopped_early
from research.train.optim import learning_rate, scaling
from research.train.step import class_weights

SMALL = ['--config.model.name=simple_cnn', '--config.model.pretrained=False',
         '--config.freeze.before=', '--config.batch_size=4', '--config.gradcam.num_images=1',
         '--config.features.num_images=0', '--config.data.image_size=32']
HISTORY = [{'epoch': 1, 'val_accuracy': 0.6, 'val_loss': 0.9, 'val_balanced_accuracy': 0.3},
           {'epoch': 2, 'val_accuracy': 0.8, 'val_loss': 0.7, 'val_balanced_accuracy': 0.5},
           {'epoch': 3, 'val_accuracy': 0.7, 'val_loss': 0.5, 'val_balanced_accuracy': 0.6},
           {'epoch': 4, 'val_accuracy': 0.8, 'val_loss': 0.6, 'val_balanced_accuracy': 0.4}]


def train(folder, workdir, *extra):
  return main(['configs/efficientnet_adam.py', *SMALL, f'--config.data.path={folder}',
               f'--config.workdir={workdir}', *extra])


def test_the_best_epoch_of_a_constructed_history():
  assert best_epoch(HISTORY, 'val_accuracy') == 2  # the first of equals, as Keras keeps it
  assert best_epoch(HISTORY, 'val_loss') == 3  # lowest
  assert best_epoch(HISTORY, 'val_balanced_accuracy') == 3
  assert best_epoch([{'epoch': 1, 'train_loss': 0.3}], 'val_accuracy') is None  # no validation


def test_early_stopping_after_patience_epochs_without_a_better_one():
  checkpoint = base_config().checkpoint
  checkpoint.best_metric, checkpoint.patience = 'val_accuracy', 2
  assert stopped_early(HISTORY[:3], checkpoint) is None  # one epoch since the best
  assert stopped_early(HISTORY, checkpoint) == 2  # epochs 3, 4 no better than epoch 2
  checkpoint.patience = 0
  assert stopped_early(HISTORY, checkpoint) is None


def test_a_run_keeps_its_best_epoch_and_stops_early(folder, tmp_path, capsys):
  """The report, eval and predictions use the best epoch; --checkpoint last the last."""
  run = tmp_path / 'run'
  assert train(folder, run, '--config.num_epochs=8', '--config.checkpoint.patience=2',
               '--config.optimizer.learning_rate=0.01') == 0
  records = [json.loads(l) for l in (run / 'metrics.jsonl').read_text().splitlines()]
  best = best_epoch(records, 'val_accuracy')
  assert len(records) == min(8, best + 2)  # stopped two epochs after the best, or ran out
  report = json.loads((run / 'report.json').read_text())
  assert (report['epoch'], report['checkpoint']) == (best, 'best')
  assert restore(run, 'last').epoch == len(records)
  capsys.readouterr()
  assert main(['eval', str(run), '--checkpoint', 'last']) == 0
  assert capsys.readouterr().out.startswith(f'weights: epoch {len(records)} (last)\n')
  assert json.loads((run / 'report.json').read_text())['epoch'] == len(records)
  assert main(['eval', str(run), '--checkpoint', 'first']) == 2
  assert capsys.readouterr().err == "error: --checkpoint 'first': choose one of: best, last\n"


def test_the_image_size_reaches_the_model(folder, tmp_path):
  """A flattening head's kernel has one row per feature-map cell: (48 / 4)^2 x 64."""
  assert train(folder, tmp_path / 'run', '--config.num_epochs=1', '--config.data.image_size=48',
               '--config.model.pooling=flatten') == 0
  kernel = restore(tmp_path / 'run').variables['params']['head']['logits']['kernel']
  assert kernel.shape == (12 * 12 * 64, 1)


def test_class_weights_weight_the_loss_as_by_hand():
  logits = jnp.array([[2.0, 0.5, -1.0], [0.1, 0.2, 0.3], [-1.0, 1.0, 3.0]])
  labels = jnp.array([0, 2, 2])
  weights = (1.0, 2.0, 5.0)
  log_p = np.asarray(jax.nn.log_softmax(logits))
  each = -log_p[np.arange(3), np.asarray(labels)]
  by_hand = (1 * each[0] + 5 * each[1] + 5 * each[2]) / (1 + 5 + 5)
  loss, _ = Task(3).loss_and_accuracy(logits, labels, weights)
  assert float(loss) == pytest.approx(by_hand, rel=1e-6)
  assert float(Task(3).loss_and_accuracy(logits, labels)[0]) == pytest.approx(each.mean(), rel=1e-6)
  # binary, one logit
  z, y = jnp.array([[1.5], [-0.5]]), jnp.array([1, 0])
  bce = np.log1p(np.exp(-np.array([1.5, 0.5])))
  loss, _ = Task(2).loss_and_accuracy(z, y, (1.0, 3.0))
  assert float(loss) == pytest.approx((3 * bce[0] + 1 * bce[1]) / 4, rel=1e-6)


def test_balanced_class_weights_and_explicit_ones():
  labels = [0] * 6 + [1] * 3 + [2]  # n / (k x count)
  assert class_weights('balanced', labels, 3) == pytest.approx((10 / 18, 10 / 9, 10 / 3))
  assert class_weights('1,2.5,4', labels, 3) == (1.0, 2.5, 4.0)
  assert class_weights('', labels, 3) is None
  with pytest.raises(ConfigError, match=r"^loss.class_weights '1,2' is not 'balanced' nor 3 "
                     r"non-negative numbers, one per class, e.g. 1,1,1$"):
    class_weights('1,2', labels, 3)


def test_label_smoothing_as_by_hand():
  logits, labels = jnp.array([[2.0, 0.5, -1.0]]), jnp.array([0])
  log_p = np.asarray(jax.nn.log_softmax(logits))[0]
  target = np.array([1 - 0.2 + 0.2 / 3, 0.2 / 3, 0.2 / 3])
  loss, _ = Task(3).loss_and_accuracy(logits, labels, label_smoothing=0.2)
  assert float(loss) == pytest.approx(-(target * log_p).sum(), rel=1e-6)
  z = 1.5  # binary: target 1 -> 0.9 with e = 0.2
  loss, _ = Task(2).loss_and_accuracy(jnp.array([[z]]), jnp.array([1]), label_smoothing=0.2)
  p = 1 / (1 + np.exp(-z))
  assert float(loss) == pytest.approx(-(0.9 * np.log(p) + 0.1 * np.log(1 - p)), rel=1e-5)


def test_balanced_draws_give_every_class_an_equal_share():
  labels = [0] * 90 + [1] * 8 + [2] * 2
  draw = balanced_draw(labels, seed=3)
  counts = np.bincount(np.asarray(labels)[draw])
  assert len(draw) == 100 and sorted(counts) == [33, 33, 34]
  assert set(draw[np.asarray(labels)[draw] == 1]) == set(range(90, 98))  # every rare image
  assert not np.array_equal(draw, balanced_draw(labels, seed=4))


def test_balanced_sampling_in_the_pipeline(tmp_path):
  images = make_folder(tmp_path / 'images', per_class=2, classes=('many',))
  make_folder(tmp_path / 'images', per_class=1, classes=('few',))  # 'few' sorts first: label 0
  records = [(str(p), 1) for p in sorted((images / 'many').iterdir())] * 5 + [
      (str(next((images / 'few').iterdir())), 0)]
  config = base_config().data
  config.balanced_sampling, config.threads = True, 1
  labels = np.concatenate([b['label'] for b in train_batches(records, 1, config, 8, 1, seed=0)])
  assert sorted(np.bincount(labels)) == [5, 6]  # without balancing: 1 of 11


def test_flip_tta_averages_the_logits_of_the_image_and_its_mirror():
  config = base_config().model
  config.name, config.pretrained = 'simple_cnn', False
  model = create_model(config, 3)
  images = jnp.asarray(np.random.default_rng(0).integers(0, 256, (2, 16, 16, 3)), jnp.uint8)
  variables = model.init(jax.random.key(0), images)
  logits, _ = predict_batch(model, Task(3), variables, images, True)
  by_hand = (model.apply(variables, images) + model.apply(variables, images[:, :, ::-1])) / 2
  assert np.allclose(logits, by_hand, atol=1e-6)
  plain, _ = predict_batch(model, Task(3), variables, images)
  assert not np.allclose(logits, plain, atol=1e-4)


def test_warmup_then_cosine_decay():
  opt = base_config().optimizer
  opt.learning_rate, opt.cosine, opt.warmup_epochs = 1.0, True, 1.0
  rate = learning_rate(opt, steps_per_epoch=10, num_epochs=5)
  assert [float(rate(s)) for s in (0, 5, 10)] == pytest.approx([0.0, 0.5, 1.0])
  assert float(rate(30)) == pytest.approx(0.5 * (1 + np.cos(np.pi * 20 / 40)))
  assert float(rate(50)) == pytest.approx(0.0, abs=1e-7)
  opt.cosine, opt.warmup_epochs = False, 0.5  # warm-up, then constant
  rate = learning_rate(opt, steps_per_epoch=10, num_epochs=5)
  assert [float(rate(s)) for s in (0, 4, 5, 40)] == pytest.approx([0.0, 0.8, 1.0, 1.0])
  opt.step_epochs = 2
  opt.cosine = True
  with pytest.raises(ConfigError, match='set one'):
    learning_rate(opt, 10, 5)


def test_adamw_is_optax_adamw():
  opt = base_config().optimizer
  opt.name, opt.weight_decay = 'adamw', 0.1
  params = {'w': jnp.array([1.0, -2.0, 3.0])}
  grads = {'w': jnp.array([0.5, 0.5, -1.0])}
  ours = optax.chain(scaling(opt), optax.scale_by_learning_rate(0.01))
  theirs = optax.adamw(0.01, weight_decay=0.1)
  a, _ = ours.update(grads, ours.init(params), params)
  b, _ = theirs.update(grads, theirs.init(params), params)
  assert np.allclose(a['w'], b['w'], atol=1e-7)


def test_the_report_scores_every_class():
  """A model that ignores the rare class cannot hide behind overall accuracy."""
  labels = np.array([0] * 8 + [1] * 2)
  probs = np.tile([[0.9, 0.1]], (10, 1))  # always class 0
  probs[8] = [0.2, 0.8]  # one rare image found
  report = metrics(labels, probs, ('common', 'rare'))
  assert report['accuracy'] == pytest.approx(0.9)
  assert report['balanced_accuracy'] == pytest.approx((1.0 + 0.5) / 2)
  assert report['per_class_accuracy'] == pytest.approx({'common': 1.0, 'rare': 0.5})
  assert report['per_class_precision'] == pytest.approx({'common': 8 / 9, 'rare': 1.0})
  f1_common = 2 * (8 / 9) / (8 / 9 + 1)
  assert report['per_class_f1'] == pytest.approx({'common': f1_common, 'rare': 2 / 3})
  assert report['macro_f1'] == pytest.approx((f1_common + 2 / 3) / 2)
