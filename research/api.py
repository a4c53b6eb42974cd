"""The Python API, for notebooks: train, look at the results, use the model.

    import research
    run = research.fit('configs/efficientnet_adam.py', num_epochs=2)     # config keys as
    run.report['accuracy'], run.report['intervals']['accuracy']         #   keywords
    run.show('curves', 'roc', 'confusion', 'reliability')               # inline figures
    run.predict(['a.jpg', image_array])       # (N, classes) probabilities, run.class_names
    run.gradcam('a.jpg')                      # the overlay, shown inline
    run.export()                              # files that run without this code
    run = research.load_run('checkpoints/<run>')

A config key is a keyword with '__' for its dots (`optimizer__learning_rate=1e-4`), or a
dotted key unpacked (`**{'optimizer.learning_rate': 1e-4}`). The same run directories as
`./run.sh`: every command takes them, and `./run.sh CONFIG.py --resume DIR` continues one.
"""
import dataclasses
import functools
import json
from pathlib import Path

import numpy as np

from research import compile_cache, parallel, rundir
from research import config as config_lib
from research.data.images import decode, read_bytes
from research.evaluate import evaluate
from research.experiment.predict import predict_arrays
from research.experiment.run import new_run_dir, restore, resumed_config, run
from research.explain.run import explain_files, feature_maps
from research.train import checkpoint
from research.train.history import read

FIGURES = {'curves': 'curves.png', 'roc': 'roc.png', 'confusion': 'confusion.png',
           'reliability': 'reliability.png'}


def _started() -> None:
  """What ./run.sh does before JAX starts: every core a CPU device, the compilation cache."""
  parallel.use_cpu_cores()
  compile_cache.enable()


def _display(paths: list[Path]) -> list[Path]:
  """Shows PNGs inline when IPython is running (a notebook); returns their paths."""
  try:
    from IPython import get_ipython  # pylint: disable=import-outside-toplevel
    from IPython.display import Image, display  # pylint: disable=import-outside-toplevel
  except ImportError:
    return paths
  if get_ipython() is not None:
    for path in paths:
      display(Image(filename=str(path)))
  return paths


@dataclasses.dataclass
class Run:
  """A run directory, as a notebook uses it; weights are restored on first use."""
  dir: Path
  checkpoint: str = 'best'  # whose weights predict, gradcam, features and evaluate use

  def __post_init__(self):
    self.dir = Path(self.dir)
    if self.checkpoint not in checkpoint.WHICH:
      raise config_lib.ConfigError(f'checkpoint {self.checkpoint!r}: choose one of: '
                                   f'{", ".join(checkpoint.WHICH)}')
    rundir.load_config(self.dir)  # a run directory, or one clear line

  @property
  def config(self):
    return rundir.load_config(self.dir)

  @property
  def report(self) -> dict | None:
    """report.json: the test metrics with their intervals and calibration (None before the
    run is evaluated)."""
    path = self.dir / 'report.json'
    return json.loads(path.read_text()) if path.exists() else None

  @property
  def history(self) -> list[dict]:
    """One record per epoch (metrics.jsonl)."""
    return read(self.dir / rundir.METRICS)

  @functools.cached_property
  def trained(self):
    """The model and its weights (research.inference.TrainedRun), no optimizer."""
    _started()
    return restore(self.dir, self.checkpoint)

  @property
  def class_names(self) -> tuple:
    return self.trained.class_names

  @property
  def split(self) -> dict:
    """{'train', 'val', 'test'}: (path, label) pairs."""
    return self.trained.split

  def show(self, *names: str) -> list[Path]:
    """The run's figures (default: all of curves, roc, confusion, reliability), inline in a
    notebook; returns their paths."""
    unknown = [n for n in names if n not in FIGURES]
    if unknown:
      raise config_lib.ConfigError(f'no figure {unknown[0]!r}: choose from '
                                   f'{", ".join(FIGURES)}')
    paths = [self.dir / FIGURES[n] for n in names or FIGURES]
    return _display([p for p in paths if p.exists()])

  def predict(self, images) -> np.ndarray:
    """(N, num_classes) probabilities (columns: class_names) of image files or uint8 RGB
    arrays of any size, resized as in training; temperature-scaled if the run's config says
    so."""
    arrays = [np.asarray(decode(read_bytes(str(x)))) if isinstance(x, (str, Path)) else x
              for x in images]
    return predict_arrays(self.trained, arrays)

  def evaluate(self) -> dict:
    """The test report again (report.json, report.md and figures rewritten)."""
    return evaluate(self.trained)

  def gradcam(self, *images, layer: str = '', target: int | None = None) -> list[Path]:
    """Grad-CAM overlays of image files (gradcam/<name>.png), shown inline."""
    return _display(explain_files(self.trained, [str(p) for p in images], layer=layer,
                                  target=target))

  def export(self, format: str = 'all', out=None,  # pylint: disable=redefined-builtin
             layout: str = 'NHWC', quantize: str | None = None) -> Path:
    """The classifier as files (research.experiment.export: 'stablehlo', 'onnx', or
    'all'; quantize='int8' adds model.int8.onnx), parity-checked on the test images;
    returns the folder (default: the run's export/)."""
    from research.experiment import export  # pylint: disable=import-outside-toplevel
    out = Path(out or self.dir / 'export')
    export.export(self.trained, out, export.requested(format), layout=layout.upper(),
                  quantize=quantize)
    return out

  def features(self, image) -> Path:
    """Feature maps of every block for one image file: the folder of PNGs."""
    return feature_maps(self.trained, [str(image)])[0]


def load_run(path, checkpoint: str = 'best') -> Run:  # pylint: disable=redefined-outer-name
  """A finished (or killed) run directory, its best (or last) epoch's weights."""
  return Run(Path(path), checkpoint)


def fit(config: str, resume=None, log=print, **keys) -> Run:
  """Trains, evaluates and explains `config` ('configs/x.py' or 'configs/x.py:variant') as
  `./run.sh` does, with config `keys` set; `resume`: a run directory to continue (its own
  config; `keys` may change only num_epochs and what does not change results). Returns
  the Run."""
  _started()
  values = {key.replace('__', '.'): value for key, value in keys.items()}
  if resume is not None:
    run_dir = Path(resume)
    settings = resumed_config(run_dir, [f'{k}={v}' for k, v in values.items()])
  else:
    settings = config_lib.load(config, (), values)
    run_dir = new_run_dir(settings, config)
  log(f'run dir: {run_dir}')
  run(settings, run_dir, resume=resume is not None, log=log)
  return Run(run_dir)
