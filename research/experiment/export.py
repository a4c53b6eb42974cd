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
from research.evaluate.run import stored_temperature
from research.export import graph, stablehlo
from research.models import get_spec, input_size


class ExportError(UserError, RuntimeError):
  """An exported model does not compute what the JAX model does, or a format is unknown."""


@dataclasses.dataclass(frozen=True)
class Format:
  """export(fn, size) -> bytes, and run(bytes, images) -> probabilities, of one format."""
  suffix: str
  export: object
  run: object
  runtime: str


def formats() -> dict[str, Format]:
  """The formats this installation can write (ONNX with the export extra)."""
  found = {'stablehlo': Format(stablehlo.SUFFIX, stablehlo.export, stablehlo.run,
                               f'jax.export.deserialize (jax {jax.__version__})')}
  return found


def code_version() -> str:
  """The git commit of this checkout, or the installed package's version."""
  try:
    return subprocess.run(['git', 'rev-parse', 'HEAD'], capture_output=True, text=True,
                          check=True, cwd=Path(__file__).parent).stdout.strip()
  except (OSError, subprocess.CalledProcessError):
    return f'research {metadata.version("research")}'


def describe(trained, temperature, test_images: int) -> dict:
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
      'input': {'shape': ['batch', size, size, 3], 'layout': 'NHWC', 'dtype': 'uint8',
                'channels': 'RGB', 'batch': 'any size (dynamic)'},
      'inside_the_graph': f'cast to float32, subtract mean {list(spec.mean)} and divide by '
                          f'std {list(spec.std)} per channel (0-255 scale), the network, '
                          + ('the logits divided by the temperature, ' if temperature else '')
                          + ('sigmoid' if trained.task.binary else 'softmax'),
      'caller_must': f'decode to 8-bit RGB (EXIF orientation applied), resize to {size}x{size} '
                     f'with bilinear filtering (Pillow Image.resize(({size}, {size}), '
                     f'Image.BILINEAR): what training saw), stack as uint8 (batch, {size}, '
                     f'{size}, 3)',
      'temperature': temperature,
      'source_run': str(trained.run_dir.resolve()),
      'checkpoint': trained.checkpoint, 'epoch': trained.epoch,
      'config': json.loads(trained.config.to_json()),
      'code_version': code_version(),
      'test_metrics': {k: report.get(k) for k in ('num_images', 'accuracy', 'balanced_accuracy',
                                                  'macro_f1', 'roc_auc', 'intervals')},
      'parity_images': test_images,
  }


def test_arrays(trained, limit: int | None = None) -> np.ndarray:
  """The run's test images as the exported model takes them (uint8 NHWC)."""
  records = trained.split['test'][:limit]
  return np.stack([load_image(path, input_size(trained.config)) for path, _ in records])


def export(trained, out: Path, names: list[str], log=print, images: int | None = None) -> dict:
  """Writes out/model<suffix> per format in `names`, model.json and export.md, after each
  format ran on the test images (the first `images`; all by default) within the bounds.
  Returns {format: parity}."""
  available = formats()
  unknown = [n for n in names if n not in available]
  if unknown:
    raise ExportError(f'--format {unknown[0]}: choose from {", ".join(available)} or all')
  fitted = stored_temperature(trained) if trained.config.evaluation.temperature_scaling else None
  temperature = fitted['temperature'] if fitted else None
  serve = graph.serving_fn(trained.model, trained.task, trained.variables, temperature)
  arrays = test_arrays(trained, images)
  batch = trained.config.batch_size
  expected = np.concatenate([np.asarray(jax.jit(serve)(arrays[k:k + batch]))
                             for k in range(0, len(arrays), batch)])
  results, staged = {}, Path(tempfile.mkdtemp(prefix='.export-', dir=out.parent))
  try:
    for name in names:
      began = time.time()
      data = available[name].export(serve, input_size(trained.config))
      seconds = time.time() - began
      got = np.concatenate([available[name].run(data, arrays[k:k + batch])
                            for k in range(0, len(arrays), batch)])
      result = {**graph.parity(expected, got), 'file': f'model{available[name].suffix}',
                'bytes': len(data), 'export_seconds': seconds,
                'runtime': available[name].runtime}
      results[name] = result
      log(f'{name}: {result["file"]} ({len(data) / 2**20:.1f} MiB), top-1 agreement '
          f'{result["top1_agreement"]:.2%} on {result["images"]} test images, largest '
          f'probability difference {result["max_abs_diff"]:.2e} (bound {graph.FLOAT32_BOUND:g})')
      if not graph.passed(result):
        raise ExportError(f'{name} export does not compute what the JAX model does (top-1 '
                          f'agreement {result["top1_agreement"]:.2%}, largest difference '
                          f'{result["max_abs_diff"]:.2e}): nothing was written to {out}')
      (staged / result['file']).write_bytes(data)
    model = describe(trained, temperature, len(arrays))
    (staged / 'model.json').write_text(json.dumps({**model, 'files': {
        n: r['file'] for n, r in results.items()}}, indent=1))
    (staged / 'export.md').write_text(markdown(trained, results, model))
    out.mkdir(parents=True, exist_ok=True)
    for path in staged.iterdir():
      path.replace(out / path.name)
  finally:
    shutil.rmtree(staged, ignore_errors=True)
  return results


def markdown(trained, results: dict, model: dict) -> str:
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
      '|---|---|---|---|---|---|', *rows, '']) + '\n'
