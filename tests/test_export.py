"""./run.sh export: the classifier as files that run without this repository, parity proved
on the run's test images at export time; a failed parity leaves nothing that looks valid."""
import dataclasses
import json
import subprocess
import sys

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from helpers import make_folder
from research.cli.main import main
from research.experiment import export
from research.experiment.run import restore
from research.export import graph
from research.models import Task, create_model
from research.models.layers import portable_formulations
from test_kill_resume import ROOT

TINY = ['configs/efficientnet_adam.py', '--config.model.name=simple_cnn',
        '--config.model.pretrained=False', '--config.freeze.before=', '--config.batch_size=4',
        '--config.num_epochs=1', '--config.data.image_size=32', '--config.gradcam.num_images=0',
        '--config.features.num_images=0']


@pytest.fixture(scope='module')
def trained_run(tmp_path_factory):
  root = tmp_path_factory.mktemp('export')
  folder = make_folder(root / 'images', per_class=12, classes=('bright', 'dark', 'mid'))
  assert main([*TINY, f'--config.data.path={folder}', f'--config.workdir={root / "run"}']) == 0
  return root / 'run'


def test_stablehlo_export_runs_with_jax_alone_and_matches(trained_run, capsys):
  assert main(['export', str(trained_run), '--format', 'stablehlo']) == 0
  out = trained_run / 'export'
  assert sorted(p.name for p in out.iterdir()) == ['export.md', 'model.json', 'model.stablehlo']
  model = json.loads((out / 'model.json').read_text())
  trained = restore(trained_run)
  assert model['class_names'] == list(trained.class_names) and model['task'] == 'softmax'
  assert model['input']['shape'] == ['batch', 32, 32, 3] and model['input']['dtype'] == 'uint8'
  assert model['test_metrics']['accuracy'] == json.loads(
      (trained_run / 'report.json').read_text())['accuracy']
  assert capsys.readouterr().out.splitlines()[1].startswith(
      'stablehlo: model.stablehlo (0.1 MiB), top-1 agreement 100.00% on 6 test images')

  # another process, jax alone: `research` cannot be imported there
  images = export.test_arrays(trained)
  np.save(out.parent / 'images.npy', images)
  script = ('import sys; sys.modules["research"] = None\n'
            'import jax, numpy as np\n'
            f'data = open({str(out / "model.stablehlo")!r}, "rb").read()\n'
            'fn = jax.export.deserialize(bytearray(data))\n'
            f'images = np.load({str(out.parent / "images.npy")!r})\n'
            'np.save(sys.argv[1], np.asarray(fn.call(images[:5])))\n')
  subprocess.run([sys.executable, '-c', script, str(out.parent / 'probs.npy')], check=True)
  _, probs, _ = trained.inference.predict(trained.split['test'][:5])
  np.testing.assert_allclose(np.load(out.parent / 'probs.npy'), probs, atol=1e-5)


def test_a_failed_parity_writes_nothing(trained_run, tmp_path, monkeypatch, capsys):
  real = export.ALL['stablehlo']
  off = export.Format(real.suffix, real.export, lambda data: lambda x: real.load(data)(x)[:, ::-1],
                      real.runtime)
  monkeypatch.setitem(export.ALL, 'stablehlo', off)
  assert main(['export', str(trained_run), '--format', 'stablehlo',
               '--out', str(tmp_path / 'out')]) == 2
  err = capsys.readouterr().err
  assert err.startswith('error: stablehlo export does not compute what the JAX model does '
                        '(top-1 agreement ') and err.endswith(
                            f'nothing was written to {tmp_path / "out"}\n')
  assert not (tmp_path / 'out').exists()
  assert not list(tmp_path.glob('.export-*')) and not list(trained_run.glob('.export-*'))


def test_an_unknown_format_is_named(trained_run, capsys):
  assert main(['export', str(trained_run), '--format', 'pickle']) == 2
  assert capsys.readouterr().err.startswith('error: --format pickle: choose from stablehlo, '
                                            'onnx, tflite or all')


def test_a_format_whose_packages_are_missing_names_the_fix(trained_run, tmp_path, monkeypatch,
                                                           capsys):
  monkeypatch.setitem(export.ALL, 'tflite', dataclasses.replace(export.ALL['tflite'],
                                                                installed=lambda: False))
  assert main(['export', str(trained_run), '--format', 'tflite']) == 2
  assert capsys.readouterr().err == (
      "error: --format tflite needs packages that are not installed: ./run.sh export "
      "installs it on first use; with pip: pip install -e '.[tflite]' && pip install "
      "--no-deps tensorflow-cpu==2.21.0\n")
  # 'all': the installed ones, and a line for the others
  assert main(['export', str(trained_run), '--format', 'all', '--out', str(tmp_path)]) == 0
  assert capsys.readouterr().out.splitlines()[1].startswith(
      'tflite: skipped, its packages are not installed: ./run.sh export installs it')
  assert sorted(p.name for p in tmp_path.iterdir()) == [
      'export.md', 'model.json', 'model.onnx', 'model.stablehlo']


def test_all_formats_export_with_parity_on_every_test_image(trained_run, tmp_path, capsys):
  out = tmp_path / 'all'
  assert main(['export', str(trained_run), '--out', str(out)]) == 0
  assert sorted(p.name for p in out.iterdir()) == [
      'export.md', 'model.json', 'model.onnx', 'model.stablehlo', 'model.tflite']
  lines = capsys.readouterr().out.splitlines()
  for line, name in zip(lines[1:4], ('stablehlo', 'onnx', 'tflite')):
    assert line.startswith(f'{name}: model.{name} (') and (
        'top-1 agreement 100.00% on 6 test images' in line)
  model = json.loads((out / 'model.json').read_text())
  assert model['files'] == {'stablehlo': 'model.stablehlo', 'onnx': 'model.onnx',
                            'tflite': 'model.tflite'}
  table = (out / 'export.md').read_text()
  assert '| onnx | `model.onnx` |' in table and 'onnxruntime 1.32.0 (CPUExecutionProvider), ' \
      'opset 23 | 100.00% |' in table
  assert '| tflite | `model.tflite` |' in table and 'ai-edge-litert 2.3.0 (converted by ' \
      'TensorFlow 2.21.0) | 100.00% |' in table


def test_parity_measures_top1_and_the_largest_difference():
  a = np.array([[0.9, 0.1], [0.4, 0.6]])
  assert graph.parity(a, a + [[0, 0], [0.2, -0.2]]) == {
      'images': 2, 'top1_agreement': 0.5, 'max_abs_diff': pytest.approx(0.2), 'bound': 1e-4}
  assert graph.passed(graph.parity(a, a + 5e-5)) and not graph.passed(graph.parity(a, a + 2e-4))


@pytest.mark.parametrize('name,layout,blocked,images', [
    ('stablehlo', 'nhwc', (), 'dark'), ('onnx', 'nchw', ('jax',), 'bright'),
    ('tflite', 'nhwc', ('jax', 'tensorflow'), 'bright')])
def test_each_example_classifies_as_predict_without_this_code(trained_run, tmp_path, name,
                                                              layout, blocked, images):
  """examples/classify_<format>.py, in a process where `research` cannot be imported (nor
  jax, for ONNX and LiteRT; nor TensorFlow, for LiteRT), gives ./run.sh predict's classes
  and probabilities (within the float32 bound)."""
  assert main(['export', str(trained_run), '--format', name, '--layout', layout,
               '--out', str(tmp_path / 'export')]) == 0
  model = json.loads((tmp_path / 'export' / 'model.json').read_text())
  assert model['input']['layout'] == layout.upper() and model['input']['shape'] == (
      ['batch', 3, 32, 32] if layout == 'nchw' else ['batch', 32, 32, 3])
  folder = trained_run.parent / 'images' / images
  assert main(['predict', str(trained_run), str(folder), '--out', str(tmp_path / 'p.csv')]) == 0
  block = ''.join(f'sys.modules["{m}"] = ' for m in ('research', *blocked))
  script = (f'import runpy, sys; {block}None; sys.argv = sys.argv[1:]; '
            'runpy.run_path(sys.argv[0], run_name="__main__")')
  out = subprocess.run([sys.executable, '-c', script, str(ROOT / 'examples' /
                        f'classify_{name}.py'), str(tmp_path / 'export'), str(folder)],
                       check=True, capture_output=True, text=True, cwd=tmp_path).stdout
  rows = lambda text: [line.split(',') for line in text.strip().splitlines()]
  theirs, ours = rows(out), rows((tmp_path / 'p.csv').read_text())
  assert theirs[0] == ours[0] and [r[:2] for r in theirs] == [r[:2] for r in ours]
  np.testing.assert_allclose(np.array([r[2:] for r in theirs[1:]], float),
                             np.array([r[2:] for r in ours[1:]], float), atol=1e-4)


def scaled_variables(model, size: int, seed: int = 0) -> dict:
  """Random variables at a trained network's scale (He-scaled kernels, BatchNorm statistics
  and affine terms away from identity, a head whose logits spread over a few units), made
  in numpy: no initialiser to compile."""
  shapes = jax.eval_shape(model.init, jax.random.key(0), jnp.zeros((1, size, size, 3), jnp.uint8))
  rng = np.random.default_rng(seed)

  def leaf(path, s):
    name = path[-1].key
    if name == 'kernel':
      fan_in = int(np.prod(s.shape[:-1])) or 1
      gain = 3.0 if any(getattr(p, 'key', '') == 'head' for p in path) else 2.0
      return rng.normal(0, np.sqrt(gain / fan_in), s.shape).astype(s.dtype)
    if name == 'var':
      return rng.uniform(0.5, 2.0, s.shape).astype(s.dtype)
    if name == 'scale':
      return rng.uniform(0.5, 1.5, s.shape).astype(s.dtype)
    return rng.normal(0, 0.1, s.shape).astype(s.dtype)  # bias, mean
  return {k: jax.tree_util.tree_map_with_path(leaf, shapes[k])
          for k in ('params', 'batch_stats') if k in shapes}


def assert_export_matches(fmt: str, name: str, size: int, classes: int, pooling='avg',
                          hidden=()):
  """A format's export (portable formulations, its runtime) against the JAX model as
  predict runs it here (the CPU formulations), on 6 random images, batch dynamic (4 then
  2)."""
  task = Task(classes)
  model = create_model(ml_collections.ConfigDict(dict(
      name=name, pooling=pooling, hidden=hidden, dropout=0.2, dtype='float32')), task.outputs)
  serve = graph.serving_fn(model, task, scaled_variables(model, size))
  images = np.random.default_rng(1).integers(0, 256, (6, size, size, 3), np.uint8)
  expected = np.asarray(jax.jit(serve)(images))
  with portable_formulations():
    data = export.ALL[fmt].export(serve, (size, size, 3))
  classify = export.ALL[fmt].load(data)
  got = np.concatenate([classify(images[:4]), classify(images[4:])])
  assert got.shape == (6, classes) and got.dtype == np.float32
  np.testing.assert_allclose(got, expected, atol=graph.FLOAT32_BOUND)
  top2 = np.sort(expected, -1)[:, -2:]
  clear = top2[:, 1] - top2[:, 0] > 10 * graph.FLOAT32_BOUND  # no near-tie to flip
  assert clear.sum() >= 4
  np.testing.assert_array_equal(got.argmax(-1)[clear], expected.argmax(-1)[clear])


FAMILIES = [('simple_cnn', 32, 2, 'flatten', (16,)), ('mobilenet_v1', 32, 4, 'avg', ()),
            ('mobilenet_v2', 32, 2, 'flatten', (16,)), ('efficientnet_lite0', 32, 4, 'avg', ()),
            ('efficientnet_b0', 32, 2, 'avg', ()), ('resnet50', 32, 4, 'avg', ()),
            ('googlenet', 32, 2, 'avg', ()), ('inception_v3', 75, 4, 'avg', ())]


NASNET = ('nasnet_mobile', 32, 4, 'avg', ())
TFLITE_IN_CI = ('simple_cnn', 'mobilenet_v2', 'efficientnet_lite0')  # both tasks, both heads


@pytest.mark.parametrize('name,size,classes,pooling,hidden', FAMILIES,
                         ids=[f[0] for f in FAMILIES])
def test_every_family_exports_to_onnx_with_parity(name, size, classes, pooling, hidden):
  assert_export_matches('onnx', name, size, classes, pooling, hidden)


@pytest.mark.parametrize('name,size,classes,pooling,hidden', [
    pytest.param(*f, marks=[] if f[0] in TFLITE_IN_CI else [pytest.mark.slow])
    for f in [*FAMILIES, NASNET]], ids=[f[0] for f in [*FAMILIES, NASNET]])
def test_every_family_exports_to_tflite_with_parity(name, size, classes, pooling, hidden):
  assert_export_matches('tflite', name, size, classes, pooling, hidden)


@pytest.mark.slow
def test_nasnet_exports_to_onnx_with_parity():
  """jax2onnx 0.17.1's transpose pass takes ~5 minutes on NASNetMobile's graph."""
  assert_export_matches('onnx', *NASNET)


def test_int8_is_scored_against_float32_on_the_same_test_images(trained_run, tmp_path, capsys):
  out = tmp_path / 'q'
  assert main(['export', str(trained_run), '--format', 'onnx,tflite', '--quantize', 'int8',
               '--out', str(out)]) == 0
  assert sorted(p.name for p in out.iterdir()) == [
      'export.md', 'model.int8.onnx', 'model.int8.tflite', 'model.json', 'model.onnx',
      'model.tflite']
  trained = restore(trained_run)
  labels = np.array([label for _, label in trained.split['test']])
  images = export.test_arrays(trained)
  report = json.loads((trained_run / 'report.json').read_text())
  lines = capsys.readouterr().out.splitlines()
  for name, int8 in json.loads((out / 'model.json').read_text())['int8'].items():
    right = lambda file: export.ALL[name].load((out / file).read_bytes())(
        images).argmax(-1) == labels
    assert int8['accuracy_float'] == pytest.approx(report['accuracy'])
    assert int8['accuracy_float'] == right(f'model.{name}').mean()
    assert int8['accuracy_int8'] == right(f'model.int8.{name}').mean()
    assert int8['change']['difference'] == pytest.approx(int8['accuracy_int8'] -
                                                         int8['accuracy_float'])
    assert int8['calibration_images'] == len(trained.split['train'])  # all, fewer than 256
    assert int8['bytes'] < int8['float_bytes']
    assert any(line.startswith(f'{name} int8: model.int8.{name} (') and 'McNemar p = ' in line
               for line in lines)
    assert f'## {name} int8' in (out / 'export.md').read_text()


def test_quantize_needs_a_format_that_has_int8(trained_run, capsys):
  assert main(['export', str(trained_run), '--format', 'stablehlo', '--quantize', 'int8']) == 2
  assert capsys.readouterr().err == ('error: --quantize int8 quantizes the ONNX and LiteRT '
                                     'models: add --format onnx, tflite or all\n')
