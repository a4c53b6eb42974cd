"""`./run.sh export RUN`: a trained run's classifier written in portable formats, each run
back on the run's test images and compared with the JAX model before it is kept (parity:
top-1 agreement 100%, probabilities within graph.FLOAT32_BOUND), beside model.json (what
the model expects and returns) and export.md (the parity table).

Files are written to a temporary folder first and moved into place only when every
requested format passed: a failed export leaves no model file that looks valid.
"""
import dataclasses
import json
import shutil
import subprocess
import tempfile
import time
from importlib import metadata
from pathlib import Path

import jax
import numpy as np

from research import rundir
from research.data import load_image
from research.errors import UserError
from research.evaluate import stats
from research.evaluate.run import stored_temperature
from research.export import graph, onnx, stablehlo, tflite
from research.models import get_spec, input_size
from research.models.layers import portable_formulations

LAYOUTS = ('NHWC', 'NCHW')
QUANTIZE = ('int8',)
CALIBRATION_IMAGES = 256  # train images (a seeded draw) that set the int8 activation ranges


class ExportError(UserError, RuntimeError):
  """An exported model does not compute what the JAX model does, or a format is unknown."""


@dataclasses.dataclass(frozen=True)
class Format:
  """export(fn, input shape without the batch) -> bytes; load(bytes) -> a function from
  images to probabilities in the format's own runtime, described by runtime();
  quantize(fn, shape, float bytes, calibration images) -> int8 bytes, where the format has
  one; installed() and, if not, the line that says how."""
  suffix: str
  export: object
  load: object
  runtime: object
  quantize: object = None
  installed: object = lambda: True
  install: str = ''


ALL = {
    'stablehlo': Format(stablehlo.SUFFIX, stablehlo.export, stablehlo.load, stablehlo.runtime),
    'onnx': Format(onnx.SUFFIX, onnx.export, onnx.load, onnx.runtime,
                   lambda fn, shape, data, calibration: onnx.quantize(data, calibration),
                   onnx.installed, "./run.sh installs it on first use; with pip: pip install "
                   "-e '.[export]' && pip install --no-deps jax2onnx==0.17.1"),
    'tflite': Format(tflite.SUFFIX, tflite.export, tflite.load, tflite.runtime,
                     lambda fn, shape, data, calibration: tflite.convert(fn, shape, calibration),
                     tflite.installed, "./run.sh export installs it on first use; with pip: "
                     "pip install -e '.[tflite]' && pip install --no-deps "
                     "tensorflow-cpu==2.21.0"),
}


def formats() -> dict[str, Format]:
  """The formats this installation can write."""
  return {name: f for name, f in ALL.items() if f.installed()}


def code_version() -> str:
  """The git commit of this checkout, or the installed package's version."""
  try:
    return subprocess.run(['git', 'rev-parse', 'HEAD'], capture_output=True, text=True,
                          check=True, cwd=Path(__file__).parent).stdout.strip()
  except (OSError, subprocess.CalledProcessError):
    return f'research {metadata.version("research")}'


def describe(trained, temperature, test_images: int, layout: str = 'NHWC') -> dict:
  """model.json: what the exported model takes and returns, and where it came from."""
  spec, size = get_spec(trained.config.model.name), input_size(trained.config)
  report_path = trained.run_dir / 'report.json'
  report = json.loads(report_path.read_text()) if report_path.exists() else {}
  return {
      'class_names': list(trained.class_names),
      'task': 'sigmoid' if trained.task.binary else 'softmax',
      'output': f'probabilities, float32, (batch, {len(trained.class_names)}), columns in '
                f'class_names order' + (' (from one sigmoid logit: [1 - p, p])'
                                        if trained.task.binary else ''),
      'input': {'shape': ['batch', *shape(size, layout)], 'layout': layout, 'dtype': 'uint8',
                'channels': 'RGB', 'batch': 'any size (dynamic)', 'name': 'images'},
      'inside_the_graph': f'cast to float32, subtract mean {list(spec.mean)} and divide by '
                          f'std {list(spec.std)} per channel (0-255 scale), the network, '
                          + ('the logits divided by the temperature, ' if temperature else '')
                          + ('sigmoid' if trained.task.binary else 'softmax'),
      'caller_must': f'decode to 8-bit RGB (EXIF orientation applied), resize to {size}x{size} '
                     f'with bilinear filtering (Pillow Image.resize(({size}, {size}), '
                     f'Image.BILINEAR): what training saw), stack as uint8 (batch, '
                     + ', '.join(map(str, shape(size, layout))) + ')'
                     + (', i.e. channels first: numpy .transpose(0, 3, 1, 2) of the '
                        'stacked RGB images' if layout == 'NCHW' else ''),
      'temperature': temperature,
      'source_run': str(trained.run_dir.resolve()),
      'checkpoint': trained.checkpoint, 'epoch': trained.epoch,
      'config': json.loads(trained.config.to_json()),
      'code_version': code_version(),
      'test_metrics': {k: report.get(k) for k in ('num_images', 'accuracy', 'balanced_accuracy',
                                                  'macro_f1', 'roc_auc', 'intervals')},
      'parity_images': test_images,
  }


def shape(size: int, layout: str = 'NHWC') -> tuple:
  """One image's shape as the exported model takes it."""
  return (3, size, size) if layout == 'NCHW' else (size, size, 3)


def test_arrays(trained, limit: int | None = None) -> np.ndarray:
  """The run's test images as the exported model takes them (uint8 NHWC)."""
  records = trained.split['test'][:limit]
  return np.stack([load_image(path, input_size(trained.config)) for path, _ in records])


def requested(formats_arg: str, log=print) -> list[str]:
  """`--format`'s value as format names: names separated by commas, or 'all': every format
  whose packages are installed (a line for each that is not, and how to install it)."""
  if formats_arg != 'all':
    return formats_arg.split(',')
  for name, fmt in ALL.items():
    if not fmt.installed():
      log(f'{name}: skipped, its packages are not installed: {fmt.install}')
  return list(formats())


def check_formats(names: list[str]) -> None:
  """One line naming a format this installation cannot write, and the fix."""
  for name in names:
    if name not in ALL:
      raise ExportError(f'--format {name}: choose from {", ".join(ALL)} or all')
    if not ALL[name].installed():
      raise ExportError(f'--format {name} needs packages that are not installed: '
                        f'{ALL[name].install}')


def batches(fn, arrays: np.ndarray, batch: int) -> np.ndarray:
  return np.concatenate([np.asarray(fn(arrays[k:k + batch]))
                         for k in range(0, len(arrays), batch)])


def latency_ms(fn, image: np.ndarray, repeats: int = 20) -> float:
  """Median milliseconds of `fn` on a batch of one image, after one warm-up call."""
  fn(image[None])
  times = []
  for _ in range(repeats):
    began = time.perf_counter()
    fn(image[None])
    times.append(time.perf_counter() - began)
  return float(np.median(times) * 1e3)


METHODS = {'onnx': 'onnxruntime quantize_static: QDQ, weights int8 per channel, activations '
                   'uint8, min-max calibration',
           'tflite': 'TFLite converter post-training quantization (Optimize.DEFAULT with a '
                     'representative dataset): weights and activations int8 where TFLite has '
                     'int8 kernels, float elsewhere; input uint8, output float32'}


def calibration_images(trained, layout: str) -> np.ndarray:
  """CALIBRATION_IMAGES train images (a seeded draw; all if fewer), as the model takes them."""
  train = trained.split['train']
  chosen = np.sort(np.random.default_rng(0).choice(
      len(train), min(CALIBRATION_IMAGES, len(train)), replace=False))
  images = np.stack([load_image(train[i][0], input_size(trained.config)) for i in chosen])
  return images.transpose(0, 3, 1, 2) if layout == 'NCHW' else images


def quantized(trained, name: str, quantized_data: bytes, data: bytes, arrays: np.ndarray,
              expected: np.ndarray, calibration: int, log) -> dict:
  """An int8 file scored on the test images beside the float model: the accuracy change
  paired on the same images (95% bootstrap interval, McNemar), agreement, size and batch-1
  latency of both in the format's runtime."""
  fmt = ALL[name]
  float_fn, int8_fn = fmt.load(data), fmt.load(quantized_data)
  got = batches(int8_fn, arrays, trained.config.batch_size)
  labels = np.array([label for _, label in trained.split['test'][:len(arrays)]])
  right_float, right_int8 = expected.argmax(-1) == labels, got.argmax(-1) == labels
  change = stats.compare(right_int8, right_float)
  result = {'file': f'model.int8{fmt.suffix}', 'bytes': len(quantized_data),
            'float_bytes': len(data), 'calibration_images': calibration,
            'method': METHODS[name], 'images': len(arrays),
            'accuracy_float': float(right_float.mean()),
            'accuracy_int8': float(right_int8.mean()), 'change': change,
            'top1_agreement': float((got.argmax(-1) == expected.argmax(-1)).mean()),
            'max_abs_diff': float(np.abs(got - expected).max()),
            'latency_ms_batch1': {'float32': latency_ms(float_fn, arrays[0]),
                                  'int8': latency_ms(int8_fn, arrays[0])}}
  low, high = change['interval']
  log(f'{name} int8: {result["file"]} ({len(quantized_data) / 2**20:.1f} MiB, float32 '
      f'{len(data) / 2**20:.1f} MiB), test accuracy {result["accuracy_int8"]:.4f} vs '
      f'{result["accuracy_float"]:.4f}: {change["difference"]:+.4f} [{low:+.4f}, {high:+.4f}], '
      f'McNemar p = {change["mcnemar"]["p"]:.3g}: {change["verdict"]}; top-1 agreement '
      f'{result["top1_agreement"]:.2%}; batch-1 latency {result["latency_ms_batch1"]["int8"]:.1f}'
      f' ms vs {result["latency_ms_batch1"]["float32"]:.1f} ms')
  return result


def export(trained, out: Path, names: list[str], log=print, images: int | None = None,
           layout: str = 'NHWC', quantize: str | None = None) -> dict:
  """Writes out/model<suffix> per format in `names`, model.json and export.md, after each
  format ran on the test images (the first `images`; all by default) within the bounds;
  with quantize='int8' also model.int8.onnx and its accuracy change (no parity bound: int8
  is meant to differ, by how much is measured). The graphs are traced with the portable
  formulations (`lax` convolutions: what every converter and runtime knows); the
  reference is the JAX model as `predict` runs it here. Returns {format: result}."""
  check_formats(names)
  if layout not in LAYOUTS:
    raise ExportError(f'--layout {layout}: choose from {", ".join(LAYOUTS)}')
  if quantize is not None and quantize not in QUANTIZE:
    raise ExportError(f'--quantize {quantize}: choose from {", ".join(QUANTIZE)}')
  if quantize and not any(ALL[n].quantize for n in names):
    raise ExportError(f'--quantize {quantize} quantizes the ONNX and LiteRT models: add '
                      f'--format onnx, tflite or all')
  fitted = stored_temperature(trained) if trained.config.evaluation.temperature_scaling else None
  temperature = fitted['temperature'] if fitted else None
  serve = graph.serving_fn(trained.model, trained.task, trained.variables, temperature,
                           nchw=layout == 'NCHW')
  arrays = test_arrays(trained, images)
  expected = batches(jax.jit(graph.serving_fn(trained.model, trained.task, trained.variables,
                                              temperature)), arrays, trained.config.batch_size)
  if layout == 'NCHW':
    arrays = arrays.transpose(0, 3, 1, 2)
  size = input_size(trained.config)
  results, int8, calibration = {}, {}, None
  staged = Path(tempfile.mkdtemp(prefix='.export-', dir=out.parent))
  try:
    for name in names:
      fmt, began = ALL[name], time.time()
      with portable_formulations():
        data = fmt.export(serve, shape(size, layout))
      seconds = time.time() - began
      got = batches(fmt.load(data), arrays, trained.config.batch_size)
      result = {**graph.parity(expected, got), 'file': f'model{fmt.suffix}',
                'bytes': len(data), 'export_seconds': seconds, 'runtime': fmt.runtime()}
      results[name] = result
      log(f'{name}: {result["file"]} ({len(data) / 2**20:.1f} MiB), top-1 agreement '
          f'{result["top1_agreement"]:.2%} on {result["images"]} test images, largest '
          f'probability difference {result["max_abs_diff"]:.2e} (bound {graph.FLOAT32_BOUND:g})')
      if not graph.passed(result):
        raise ExportError(f'{name} export does not compute what the JAX model does (top-1 '
                          f'agreement {result["top1_agreement"]:.2%}, largest difference '
                          f'{result["max_abs_diff"]:.2e}): nothing was written to {out}')
      (staged / result['file']).write_bytes(data)
      if quantize and fmt.quantize:
        if calibration is None:
          calibration = calibration_images(trained, layout)
        with portable_formulations():
          int8_data = fmt.quantize(serve, shape(size, layout), data, calibration)
        int8[name] = quantized(trained, name, int8_data, data, arrays, expected,
                               len(calibration), log)
        (staged / int8[name]['file']).write_bytes(int8_data)
    model = describe(trained, temperature, len(arrays), layout)
    files = {n: r['file'] for n, r in results.items()}
    (staged / 'model.json').write_text(json.dumps({**model, 'files': files, **(
        {'int8': int8} if int8 else {})}, indent=1))
    (staged / 'export.md').write_text(markdown(trained, results, model, int8))
    out.mkdir(parents=True, exist_ok=True)
    for path in staged.iterdir():
      path.replace(out / path.name)
  finally:
    shutil.rmtree(staged, ignore_errors=True)
  return {**results, **{f'{n}_int8': r for n, r in int8.items()}}


def markdown(trained, results: dict, model: dict, int8: dict) -> str:
  rows = [f'| {n} | `{r["file"]}` | {r["bytes"] / 2**20:.1f} MiB | {r["runtime"]} | '
          f'{r["top1_agreement"]:.2%} | {r["max_abs_diff"]:.2e} |' for n, r in results.items()]
  return '\n'.join([
      f'# {trained.run_dir.name}: exported', '',
      f'Weights of epoch {trained.epoch} ({trained.checkpoint}); input '
      f'{model["input"]["dtype"]} {model["input"]["layout"]} {model["input"]["shape"]}, '
      f'output {model["output"]}. What the caller does: {model["caller_must"]} '
      f'(model.json).', '',
      f'Parity on {model["parity_images"]} test images: each exported file run by its runtime '
      f'against the JAX model on the same uint8 images (top-1 agreement must be 100%, the '
      f'largest probability difference at most {graph.FLOAT32_BOUND:g}).', '',
      '| format | file | size | run by | top-1 agreement | largest difference |',
      '|---|---|---|---|---|---|', *rows, '',
      *(line for n, r in int8.items() for line in quantized_markdown(n, r))]) + '\n'


def quantized_markdown(name: str, result: dict) -> list[str]:
  change, (low, high) = result['change'], result['change']['interval']
  detectable = change['detectable']
  return [
      f'## {name} int8', '',
      f'`{result["file"]}`: {result["method"]}, calibrated on {result["calibration_images"]} '
      f'train images. Scored on the same {result["images"]} test images as the float32 model '
      f'(latency: both in the same runtime); the change is int8 minus float32, paired '
      f'(95% bootstrap over '
      f'the images, {change["resamples"]} resamples; McNemar\'s exact test).', '',
      '| model | size | test accuracy | batch-1 latency |', '|---|---|---|---|',
      f'| float32 | {result["float_bytes"] / 2**20:.1f} MiB | {result["accuracy_float"]:.4f} | '
      f'{result["latency_ms_batch1"]["float32"]:.1f} ms |',
      f'| int8 | {result["bytes"] / 2**20:.1f} MiB | {result["accuracy_int8"]:.4f} | '
      f'{result["latency_ms_batch1"]["int8"]:.1f} ms |', '',
      f'Change {change["difference"]:+.4f} [{low:+.4f}, {high:+.4f}], McNemar p = '
      f'{change["mcnemar"]["p"]:.3g}: **{change["verdict"]}** (this test split detects '
      + (f'{detectable:.3f}' if detectable is not None else 'no difference') +
      f' at the observed disagreement); top-1 agreement with float32 '
      f'{result["top1_agreement"]:.2%}, largest probability difference '
      f'{result["max_abs_diff"]:.3f}. Latency: median of 20 calls on this machine, '
      f'one image.', '']
