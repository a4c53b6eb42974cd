"""The benchmark's references do the same work as this project: per row, the same number of
trainable parameters, and no gradient reaches a frozen one."""
import os
import re

import numpy as np
import pytest
import torch

from research import parallel
from research.bench import rounds, torch_models
from research.bench.measure import jax_trainable
from research.bench.rows import ROWS
from research.cli import bench

SIZE = 96  # the counts do not depend on the input size; InceptionV3 needs 75 px at least
TORCH_ROWS = [r for r in ROWS if not r.reference.startswith('Keras')]
KERAS_ROWS = [r for r in ROWS if r.reference.startswith('Keras')]


@pytest.mark.parametrize('row', TORCH_ROWS, ids=lambda r: r.label)
def test_torch_reference_trains_what_the_project_trains(row):
  net = torch_models.reference(row.model, SIZE, row.torch_freeze)
  assert torch_models.trainable_parameters(net) == jax_trainable(row, SIZE)
  torch.nn.functional.binary_cross_entropy_with_logits(
      net(torch.rand(2, 3, SIZE, SIZE))[:, 0], torch.tensor([0.0, 1.0])).backward()
  got_gradient = {n for n, p in net.named_parameters() if p.grad is not None}
  assert got_gradient == {n for n, p in net.named_parameters() if p.requires_grad}


@pytest.mark.slow  # building Keras's NASNetMobile takes ~20-50 s
@pytest.mark.parametrize('row', KERAS_ROWS, ids=lambda r: r.label)
def test_keras_reference_trains_what_the_project_trains(row):
  net = torch_models.keras_reference(row.model, SIZE, row.torch_freeze)
  assert torch_models.trainable_parameters(net) == jax_trainable(row, SIZE)


def test_a_module_with_children_is_frozen_too():
  """efficientnet_lite_pytorch's convolutions own a weight and a `static_padding` child:
  freezing only leaf modules left them training (the reference's old bug)."""
  net = torch_models.reference('efficientnet_lite0', SIZE, '_blocks.12')
  stem = dict(net.named_modules())['_conv_stem']
  assert list(stem.children()) and not stem.weight.requires_grad
  assert not stem.training and dict(net.named_modules())['_blocks.0'].training is False
  assert dict(net.named_modules())['_blocks.12'].training


def test_the_end_to_end_reference_trains_the_same_parameters_on_the_runs_split(folder, tmp_path):
  """research.bench.torch_epoch, the PyTorch user's script, on a run directory's split."""
  import json  # pylint: disable=import-outside-toplevel
  import subprocess  # pylint: disable=import-outside-toplevel
  import sys  # pylint: disable=import-outside-toplevel

  from research.data import load_source, make_split, save_split, split_records  # pylint: disable=import-outside-toplevel
  from research.config import base_config  # pylint: disable=import-outside-toplevel
  config = base_config()
  config.data.path = str(folder)
  source = load_source(config.data)
  save_split(tmp_path / 'split.json', source,
             split_records(source, make_split(source, (0.5, 0.25, 0.25), 0)))
  out = subprocess.run([sys.executable, '-m', 'research.bench.torch_epoch', str(tmp_path),
                        '--epochs', '1', '--batch', '4', '--workers', '0'],
                       capture_output=True, text=True, check=True).stdout
  result = json.loads(out.strip().splitlines()[-1])
  assert result['trainable'] == jax_trainable(ROWS[0], SIZE)  # the main config's freezing
  assert len(result['epoch_s']) == 1 and result['train_images'] == 12
  assert 0 <= result['test_accuracy'] <= 1


def test_a_ratio_from_rounds_has_its_bootstrap_interval_and_verdict():
  ours, reference = [2.0, 2.2, 1.8, 2.1, 1.9], [1.0] * 5
  result = rounds.ratio(ours, reference)
  assert result['ratio'] == 2.0 and result['verdict'] == 'faster' and result['rounds'] == 5
  # the interval: medians of rounds drawn with replacement, 5th and 95th percentiles
  draws = np.random.default_rng(0).integers(0, 5, (1000, 5))
  medians = np.median(np.array(ours)[draws], axis=1)
  assert result['interval'] == tuple(np.percentile(medians, [5, 95]))
  assert rounds.ratio([1.1, 0.9, 1.0, 1.2, 0.8], reference)['verdict'] == 'within noise'
  assert rounds.ratio([0.5, 0.6, 0.55, 0.52, 0.58], reference)['verdict'] == 'slower'
  assert rounds.cell(result) == f'2.00× [{result["interval"][0]:.2f}, ' \
                                f'{result["interval"][1]:.2f}] faster'


def test_the_inference_section_measures_four_runtimes_against_pytorch():
  lines = bench.inference(2, model='mobilenet_v2', size=32)
  assert lines[0] == ('| runtime | batch 1: img/s, median [min–max] | batch 1: vs PyTorch eager '
                      '| batch 32: img/s, median [min–max] | batch 32: vs PyTorch eager |')
  runtimes = [line.split(' | ')[0].lstrip('| ') for line in lines[2:]]
  assert runtimes == ['PyTorch eager', 'this project (JAX)', 'ONNX float32 (onnxruntime)',
                      'ONNX int8 (onnxruntime)']
  assert all(re.search(r'\d\.\d\d× \[\d+\.\d\d, \d+\.\d\d\] (faster|slower|within noise)', line)
             for line in lines[3:])


def test_side_by_side_alternates_the_sides_round_by_round(monkeypatch):
  calls = []

  def fake(side, row, *extra, env=None):
    calls.append((side, row))
    speed = {'torch': 10.0, 'jax': 15.0 + len(calls) % 3}[side]
    return {'images_per_s': speed, 'trainable': 100}
  monkeypatch.setattr(bench, 'measure', fake)
  lines = bench.side_by_side([0, 3], steps=1, rounds=3)
  assert calls == [('torch', 0), ('jax', 0), ('torch', 3), ('jax', 3)] * 3
  jax_row0 = [15.0 + n % 3 for n in (2, 6, 10)]  # calls numbered from 1: jax of row 0
  expected = rounds.ratio(jax_row0, [10.0] * 3)
  assert lines[2] == (f'| {ROWS[0].label} | PyTorch eager | 100 / 100 | 10.0 [10.0–10.0] | '
                      f'{np.median(jax_row0):.1f} [{min(jax_row0):.1f}–{max(jax_row0):.1f}] | '
                      f'{rounds.cell(expected)} |')
  monkeypatch.setattr(bench, 'measure', lambda side, row, *extra, env=None: {
      'images_per_s': 1.0, 'trainable': {'torch': 1, 'jax': 2}[side]})
  with pytest.raises(RuntimeError, match='row 0: the reference trains 1 parameters, this '
                                         'project 2: not the same work'):
    bench.side_by_side([0], steps=1, rounds=1)


# --- the timm section (research/bench/timm_reference.py) -----------------------------------

def timm_train_py():
  """A local timm train.py of the pinned tag: $TIMM_TRAIN, or the bench's downloaded copy;
  None where there is none (CI: the file is not in the repository)."""
  import os  # pylint: disable=import-outside-toplevel
  from research.bench import timm_reference  # pylint: disable=import-outside-toplevel
  for path in (os.environ.get('TIMM_TRAIN'), timm_reference.cached()):
    if path and os.path.isfile(path):
      return path
  return None


def test_torchvision_mobilenet_v2_weights_give_timm_the_same_imagenet_logits():
  """The timm reference is the same model: torchvision's ImageNet weights mapped onto timm's
  mobilenetv2_100 give the same logits on a random image."""
  from research.bench import timm_reference  # pylint: disable=import-outside-toplevel
  state = timm_reference.torchvision_weights()
  net = timm_reference.timm_model()
  net.load_state_dict(timm_reference.timm_state_dict(state, net.state_dict()))
  reference = torch_models.torchvision().models.mobilenet_v2()
  reference.load_state_dict(state)
  x = torch.randn(2, 3, 224, 224, generator=torch.Generator().manual_seed(0))
  with torch.no_grad():
    ours, theirs = net.eval()(x), reference.eval()(x)
  assert ours.shape == (2, 1000)
  torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-4)
  backbone = {k: v for k, v in net.state_dict().items() if not k.startswith('classifier.')}
  assert list(timm_reference.timm_state_dict(state, backbone)) == list(backbone)  # no head


def test_a_weight_map_with_another_shape_stops_in_one_line():
  from research.bench import timm_reference  # pylint: disable=import-outside-toplevel
  source = {'features.0.0.weight': torch.zeros(32, 3, 3, 3), 'classifier.1.weight': torch.zeros(2)}
  with pytest.raises(timm_reference.TimmReferenceError,
                     match=r'^torchvision features.0.0.weight \(32, 3, 3, 3\) does not map onto '
                           r'timm conv_stem.weight \(16, 3, 3, 3\): not the same architecture$'):
    timm_reference.timm_state_dict(source, {'conv_stem.weight': torch.zeros(16, 3, 3, 3)})
  with pytest.raises(timm_reference.TimmReferenceError, match='has 1 tensors, timm'):
    timm_reference.timm_state_dict(source, {'a': torch.zeros(1), 'b': torch.zeros(1)})


def test_the_split_as_imagefolder_folders_links_every_train_and_val_image(folder, tmp_path):
  import os  # pylint: disable=import-outside-toplevel

  from research.bench import timm_reference  # pylint: disable=import-outside-toplevel
  from research.config import base_config  # pylint: disable=import-outside-toplevel
  from research.data import load_source, make_split, split_records  # pylint: disable=import-outside-toplevel
  config = base_config()
  config.data.path = str(folder)
  source = load_source(config.data)
  split = split_records(source, make_split(source, (0.5, 0.25, 0.25), 0))
  counts = timm_reference.write_folders(source.class_names, split, tmp_path)
  assert sorted(os.listdir(tmp_path)) == ['train', 'validation']  # no test split
  for name, folder_name in (('train', 'train'), ('val', 'validation')):
    for label, c in enumerate(source.class_names):
      links = sorted((tmp_path / folder_name / c).iterdir())
      assert sorted(os.path.realpath(l) for l in links) == sorted(
          os.path.realpath(p) for p, y in split[name] if y == label)
      assert counts[folder_name][c] == len(links) > 0


def test_train_py_comes_from_a_path_or_is_downloaded_once_from_its_url(tmp_path, monkeypatch):
  from research.bench import timm_reference  # pylint: disable=import-outside-toplevel
  monkeypatch.setenv('RESEARCH_CACHE', str(tmp_path / 'cache'))
  source = tmp_path / 'train.py'
  source.write_text('print("timm")\n')
  assert timm_reference.train_script(str(source)) == source
  got = timm_reference.train_script(source.as_uri())
  assert got.parent == tmp_path / 'cache' / 'timm' and got.read_text() == 'print("timm")\n'
  source.unlink()
  assert timm_reference.train_script(source.as_uri()) == got  # the cached copy, no download
  assert timm_reference.cached() == tmp_path / 'cache' / 'timm' / (
      f'train-v{timm_reference.TIMM_VERSION}.py')
  missing = (tmp_path / 'nowhere.py').as_uri()
  with pytest.raises(timm_reference.TimmReferenceError) as failed:
    timm_reference.train_script(missing)
  assert str(failed.value).startswith(f'could not download {missing} (') and \
      str(failed.value).endswith('give its path with --timm-train PATH, or leave timm out of '
                                 '--sections') and \
      '\n' not in str(failed.value)
  with pytest.raises(timm_reference.TimmReferenceError, match=r'nowhere.py does not exist'):
    timm_reference.train_script(str(tmp_path / 'nowhere.py'))


def flags_of(command: list[str]) -> dict:
  """{'--flag': [values]} of a command line's options."""
  flags, key = {}, None
  for token in command:
    if token.startswith('--'):
      key = token
      flags[key] = []
    elif key:
      flags[key].append(token)
  return flags


TIMM_FLAGS = {  # the agreed job, as train.py's options
    '--model': ['mobilenetv2_100'], '--num-classes': ['2'], '--pretrained': [],
    '--pretrained-path': ['W.pth'], '--drop': ['0.2'], '--device': ['cpu'],
    '--opt': ['adam'], '--lr': ['0.001'], '--weight-decay': ['0'], '--sched': ['step'],
    '--decay-rate': ['1'], '--warmup-epochs': ['0'], '--epochs': ['2'], '--batch-size': ['20'],
    '--validation-batch-size': ['20'], '--input-size': ['3', '224', '224'],
    '--crop-pct': ['1.0'], '--interpolation': ['bilinear'], '--train-interpolation': ['bilinear'],
    '--mean': ['0.485', '0.456', '0.406'], '--std': ['0.229', '0.224', '0.225'],
    '--scale': ['1', '1'], '--ratio': ['1', '1'], '--hflip': ['0.5'], '--vflip': ['0'],
    '--color-jitter': ['0'], '--reprob': ['0'], '--mixup': ['0'], '--cutmix': ['0'],
    '--smoothing': ['0'], '--train-split': ['train'], '--val-split': ['validation']}


def test_the_timm_command_line_is_the_agreed_job():
  from pathlib import Path  # pylint: disable=import-outside-toplevel

  from research.bench import timm_reference  # pylint: disable=import-outside-toplevel
  command = timm_reference.command(Path('train.py'), Path('D'), Path('W.pth'), Path('O'), 2)
  assert command[1:4] == ['-m', 'research.bench.timm_reference', 'train.py']
  flags = flags_of(command)
  assert {k: flags[k] for k in TIMM_FLAGS} == TIMM_FLAGS
  assert not {'--amp', '--model-ema', '--aa', '--no-aug', '--initial-checkpoint'} & set(flags)
  ours = timm_reference.our_command(Path('R'))
  assert ours[3:] == ['configs/efficientnet_adam.py', '--config.model.name=mobilenet_v2',
                      '--config.freeze.before=', '--config.data.augment.rotation=0.0',
                      '--config.data.augment.shear=0.0', '--config.data.augment.zoom=0.0',
                      '--config.num_epochs=2', '--config.gradcam.num_images=0',
                      '--config.features.num_images=0', '--config.workdir=R']


@pytest.mark.skipif(timm_train_py() is None, reason='no local timm train.py ($TIMM_TRAIN or the '
                    'bench\'s cached download; it is not in the repository)')
def test_timm_train_py_reads_the_command_line_as_the_agreed_job():
  """The command line through that train.py's own argument parser."""
  import importlib.util  # pylint: disable=import-outside-toplevel
  from pathlib import Path  # pylint: disable=import-outside-toplevel

  from research.bench import timm_reference  # pylint: disable=import-outside-toplevel
  command = timm_reference.command(Path('train.py'), Path('D'), Path('W.pth'), Path('O'), 2)
  torch_models.torchvision()  # train.py imports torchvision
  train_py = timm_train_py()
  spec = importlib.util.spec_from_file_location('timm_train', train_py)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  args = module.parser.parse_args(command[4:])
  assert (args.model, args.num_classes, args.pretrained, args.pretrained_path, args.drop) == (
      'mobilenetv2_100', 2, True, 'W.pth', 0.2)
  assert (args.opt, args.lr, args.weight_decay, args.sched, args.decay_rate,
          args.warmup_epochs, args.epochs) == ('adam', 1e-3, 0, 'step', 1, 0, 2)
  assert (args.batch_size, args.validation_batch_size, args.input_size, args.crop_pct) == (
      20, 20, [3, 224, 224], 1.0)
  assert (args.scale, args.ratio, args.hflip, args.vflip, args.color_jitter, args.aa,
          args.reprob, args.mixup, args.cutmix, args.cutmix_minmax, args.smoothing) == (
              [1, 1], [1, 1], 0.5, 0, 0, None, 0, 0, 0, None, 0)
  assert (args.amp, args.model_ema, args.no_aug, args.device, args.channels_last) == (
      False, False, False, 'cpu', True)
  assert (args.mean, args.std, args.interpolation, args.train_interpolation) == (
      [0.485, 0.456, 0.406], [0.229, 0.224, 0.225], 'bilinear', 'bilinear')


def test_the_timm_table_has_wilson_and_newcombe_intervals_and_the_rounds_ratio():
  from research.bench import timm_reference  # pylint: disable=import-outside-toplevel
  from research.evaluate import stats  # pylint: disable=import-outside-toplevel
  found = {'timm': [{'seconds': s, 'trainable': 2226434, 'val': [0.75, 0.8]} for s in (300, 330)],
           'ours': [{'seconds': s, 'trainable': 2225153, 'val': [0.8, 0.8]} for s in (200, 220)]}
  lines = timm_reference.table(found, 1836, 20, 2)
  assert lines[2] == ('| whole command, s, median [min–max] of 2 rounds | 315 [300–330] | '
                      f'210 [200–220] | {rounds.cell(rounds.ratio([1 / 200, 1 / 220], [1 / 300, 1 / 330]))} |')
  assert '1.50× [1.50, 1.50] faster' in lines[2]  # timm's seconds / this project's
  assert lines[3] == '| trainable parameters | 2,226,434 | 2,225,153 | |'
  assert lines[5] == '| best epoch by validation accuracy | 2 | 1 | |'  # the first of equals
  low, high = stats.wilson(16, 20)
  assert lines[6].endswith(f'| 0.8000 [{low:.3f}–{high:.3f}] (16/20) | |')
  low, high = stats.newcombe(16, 20, 16, 20)
  assert lines[7].endswith(f'| +0.0000 [{low:+.3f}, {high:+.3f}] | no detectable difference |')
  found['ours'][1]['val'] = [0.9, 0.85]  # a second round that differs is named
  single = timm_reference.table({k: v[:1] for k, v in found.items()}, 1836, 20, 2)
  assert single[2] == '| whole command, s | 300 | 200 | 1.50 |'
  assert timm_reference.table(found, 1836, 20, 2)[-1] == (
      'this project\'s best validation accuracy per round: 0.8000, 0.9000')


def test_the_timm_section_alternates_on_one_split_and_checks_ours_is_the_same(monkeypatch):
  """`section` with both commands faked: timm first in each round, the folders holding this
  project's train and val split of ELPV, a run whose split.json differs stops the section."""
  import json  # pylint: disable=import-outside-toplevel
  from pathlib import Path  # pylint: disable=import-outside-toplevel

  from research.bench import timm_reference  # pylint: disable=import-outside-toplevel
  from research.config import load  # pylint: disable=import-outside-toplevel
  from research.data import load_source, make_split, save_split, split_records  # pylint: disable=import-outside-toplevel
  config = load(timm_reference.OUR_CONFIG, timm_reference.our_overrides(Path('unused')))
  source = load_source(config.data)
  split = split_records(source, make_split(source, tuple(config.data.split), 0))
  calls, n = [], len(split['val'])

  def fake_run(command, other_split=False):
    if command[2] == 'research.bench.timm_reference':
      calls.append('timm')
      flags = flags_of(command)
      data = Path(flags['--data-dir'][0])
      assert sum(len(list((data / 'validation' / c).iterdir())) for c in source.class_names) == n
      assert flags['--pretrained-path'] == [str(data.parent / 'mobilenet_v2_timm.pth')]
      out = Path(flags['--output'][0]) / 'timm'
      out.mkdir(parents=True)
      out.joinpath('summary.csv').write_text(
          'epoch,train_loss,eval_loss,eval_top1,eval_top5,lr\n'
          f'0,0.6,0.5,{100 * 300 / n},100.0,0.001\n1,0.5,0.4,{100 * 310 / n},100.0,0.001\n')
      return 300.0, 'Model mobilenetv2_100 created, param count:2226434\n'
    calls.append('ours')
    assert command[-1].startswith('--config.workdir=')
    run_dir = Path(command[-1].partition('=')[2])
    run_dir.mkdir()
    records = dict(split, val=split['val'][1:]) if other_split else split
    save_split(run_dir / 'split.json', source, records)
    run_dir.joinpath('metrics.jsonl').write_text(''.join(
        json.dumps({'epoch': e + 1, 'val_accuracy': k / n, 'seconds': 90.0}) + '\n'
        for e, k in enumerate((305, 301))))
    return 200.0, ''
  monkeypatch.setattr(timm_reference, 'run', fake_run)
  monkeypatch.setattr(timm_reference, 'write_checkpoint', lambda path: path)
  train_py = Path(timm_reference.__file__)  # any file: the fake never runs it
  lines = timm_reference.section(2, str(train_py))
  assert calls == ['timm', 'ours'] * 2
  assert lines[0].startswith(f'| MobileNetV2, full fine-tune, ELPV ({len(split["train"])} train '
                             f'/ {n} validation images, batch 20, 2 epochs) | timm ')
  assert lines[2].startswith('| whole command, s, median [min–max] of 2 rounds | 300 [300–300] '
                             '| 200 [200–200] | 1.50× [1.50, 1.50] faster |')
  assert lines[3] == '| trainable parameters | 2,226,434 | 2,225,153 | |'
  assert lines[5] == '| best epoch by validation accuracy | 2 | 1 | |'
  assert f'(310/{n})' in lines[6] and f'(305/{n})' in lines[6]
  monkeypatch.setattr(timm_reference, 'run', lambda command: fake_run(command, True))
  with pytest.raises(timm_reference.TimmReferenceError, match='is not the split the timm '
                                                              'folders hold'):
    timm_reference.section(1, str(train_py))


def test_the_convolution_section_alternates_ynnpack_and_eigen(monkeypatch):
  calls = []

  def fake(side, row, *extra, env=None):
    flags = env['XLA_FLAGS'].split()
    assert flags[0] == '--xla_cpu_multi_thread_eigen=true'  # the caller's other flags kept
    ynnpack = flags[1:] == [parallel.YNNPACK_CONVOLUTIONS]
    assert ynnpack or flags[1:] == [parallel.EIGEN_CONVOLUTIONS]
    calls.append((row, 'ynnpack' if ynnpack else 'eigen'))
    return {'images_per_s': 2.0 if ynnpack else 3.0, 'trainable': 1}
  monkeypatch.setattr(bench, 'measure', fake)
  monkeypatch.setenv('XLA_FLAGS', '--xla_cpu_multi_thread_eigen=true '
                     '--xla_cpu_experimental_ynn_fusion_type=dot')  # a choice of the caller's
  lines = bench.convolution_libraries([5, 7], steps=1, rounds=2)
  assert calls == [(5, 'ynnpack'), (5, 'eigen'), (7, 'ynnpack'), (7, 'eigen')] * 2
  assert lines[2] == (f'| {ROWS[5].label} | 2.0 [2.0–2.0] | 3.0 [3.0–3.0] | '
                      f'{rounds.cell(rounds.ratio([3.0, 3.0], [2.0, 2.0]))} |')


@pytest.mark.parametrize('before,after', [
    (None, parallel.EIGEN_CONVOLUTIONS),
    ('--xla_force_host_platform_device_count=2',
     '--xla_force_host_platform_device_count=2 ' + parallel.EIGEN_CONVOLUTIONS),
    (parallel.YNNPACK_CONVOLUTIONS, parallel.YNNPACK_CONVOLUTIONS)])
def test_convolutions_go_to_eigen_unless_xla_flags_chose(before, after, monkeypatch):
  from jax._src import xla_bridge  # pylint: disable=import-outside-toplevel
  monkeypatch.setenv('XLA_FLAGS', before or '')  # restored after the test, set or not
  if before is None:
    monkeypatch.delenv('XLA_FLAGS')
  monkeypatch.setattr(xla_bridge, 'backends_are_initialized', lambda: True)
  parallel.use_eigen_convolutions()  # the backends run already: too late, left as it is
  assert os.environ.get('XLA_FLAGS') == before
  monkeypatch.setattr(xla_bridge, 'backends_are_initialized', lambda: False)
  parallel.use_eigen_convolutions()
  assert os.environ['XLA_FLAGS'] == after
