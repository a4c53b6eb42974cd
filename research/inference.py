"""Running a model over many images, or over cached features, in padded, sharded batches: the
one batch loop behind validation, the test report, predictions, the feature cache and the
probe; and a trained run as its inference needs it.

Inputs are padded to whole global batches (the last one repeated: one compiled shape per
batch size), each process loads its part of every batch (research.parallel), the jitted
function runs on every device, and a batch's outputs are fetched only once the next batch
is queued, so the host never waits on the batch it has just started. Every process gets
all outputs, each input once.
"""
import dataclasses
import functools
from pathlib import Path

import jax
import ml_collections
import numpy as np
from tqdm import tqdm

from research import parallel, rundir
from research.data import resize, view_batches
from research.models import Task, input_size


@functools.partial(jax.jit, static_argnums=(0, 1, 4))
def predict_batch(model, task: Task, variables, images, tta_flip: bool = False):
  """(logits, probabilities) for one batch; flax modules are static (compared by value).
  With `tta_flip` the logits are the mean of the image's and its mirror image's."""
  logits = model.apply(variables, images)
  if tta_flip:
    logits = (logits + model.apply(variables, images[:, :, ::-1])) / 2
  return logits, task.probabilities(logits)


@functools.partial(jax.jit, static_argnums=(0, 3))
def features_batch(model, variables, images, mirror: bool):
  """Pooled backbone features (the backbone in inference mode), mirrored if `mirror`."""
  return model.apply(variables, images[:, :, ::-1] if mirror else images, method='features')


@functools.partial(jax.jit, static_argnums=0)
def head_batch(model, variables, features):
  return model.apply(variables, features, method='classify')


def padded_part(items: list, batch_size: int) -> list:
  """This process's part of `items` padded to whole global batches (the last item
  repeated): of each batch, the slice its devices hold."""
  padded = list(items) + [items[-1]] * (-len(items) % batch_size)
  local = batch_size // jax.process_count()
  start = jax.process_index() * local
  return [r for k in range(0, len(padded), batch_size)
          for r in padded[k + start:k + start + local]]


@dataclasses.dataclass(frozen=True)
class Inference:
  """A model and its variables on a device mesh, with how its inputs are read."""
  model: object
  task: Task
  variables: dict
  mesh: object
  data: ml_collections.ConfigDict  # the config's data section (decoding, threads, augment)
  size: int  # the input side in pixels
  batch_size: int  # global
  tta_flip: bool = False

  @property
  def local_batch(self) -> int:
    return self.batch_size // jax.process_count()

  def _map(self, fn, batches, count: int, desc: str, sink) -> None:
    """`sink(start, outputs)` for `fn` of each sharded batch of `batches` (this process's
    parts, as numpy dicts), in order, the padding trimmed away."""
    pending, start = None, 0
    for batch in tqdm(batches, total=-(-count // self.batch_size), desc=desc, unit='batch',
                      leave=False, disable=None):
      queued = fn(parallel.shard_batch(batch, self.mesh))
      if pending is not None:
        start = self._drain(pending, start, count, sink)
      pending = queued
    if pending is not None:
      self._drain(pending, start, count, sink)

  @staticmethod
  def _drain(outputs, start: int, count: int, sink) -> int:
    fetched = jax.tree.map(np.asarray, parallel.fetch(outputs))
    rows = len(jax.tree.leaves(fetched)[0])
    if start < count:
      sink(start, jax.tree.map(lambda x: x[:count - start], fetched))
    return start + rows

  def _records(self, records, seed: int | None = None):
    """Batches of this process's part of `records`: unaugmented, or one augmented view
    each seeded by (`seed`, index)."""
    return view_batches(padded_part(records, self.batch_size), self.data, self.size,
                        self.local_batch, seed)

  def _arrays(self, array: np.ndarray):
    part = np.asarray(padded_part(list(range(len(array))), self.batch_size))
    return (array[part[k:k + self.local_batch]] for k in range(0, len(part), self.local_batch))

  def predict(self, records, desc: str = 'predicting') -> tuple[np.ndarray, np.ndarray,
                                                                 np.ndarray]:
    """(logits, probabilities, labels) of (path, label) `records`, in order."""
    outputs = []
    self._map(lambda b: predict_batch(self.model, self.task, self.variables, b['image'],
                                      self.tta_flip),
              self._records(records), len(records), desc, lambda _, out: outputs.append(out))
    logits, probs = (np.concatenate(x) for x in zip(*outputs))
    return logits, probs, np.asarray([label for _, label in records], np.int32)

  def predict_arrays(self, images) -> tuple[np.ndarray, np.ndarray]:
    """(logits, (N, num_classes) probabilities) of uint8 RGB images of any size (resized as
    in training)."""
    images = np.stack([resize(image, self.size) for image in images])
    outputs = []
    self._map(lambda b: predict_batch(self.model, self.task, self.variables, b['image'],
                                      self.tta_flip),
              ({'image': x} for x in self._arrays(images)), len(images), 'predicting',
              lambda _, out: outputs.append(out))
    return tuple(np.concatenate(x) for x in zip(*outputs))

  def features(self, records, views: list, out_path: Path | None = None,
               memory_gb: float = 2.0, desc: str = 'features') -> np.ndarray:
    """(len(views), N, ...) pooled features of `records`, one row of views each: a view is
    None (the image as it is), 'mirror' (flipped left-right) or an int seed (one augmented
    view). In memory, or memory-mapped at `out_path` when larger than `memory_gb`."""
    out = []

    def sink(v, start, rows):
      if not out:
        out.append(allocate((len(views), len(records), *rows.shape[1:]), out_path, memory_gb))
      out[0][v, start:start + len(rows)] = rows

    for v, view in enumerate(views):
      self._map(lambda b, view=view: features_batch(self.model, self.variables, b['image'],
                                                    view == 'mirror'),
                self._records(records, view if isinstance(view, int) else None), len(records),
                desc, functools.partial(sink, v))
    return out[0]

  def head_logits(self, features: np.ndarray) -> np.ndarray:
    """The head's logits on cached (views, N, ...) features, averaged over the views."""
    per_view = []
    for view in features:
      outputs = []
      self._map(lambda b: head_batch(self.model, self.variables, b['features']),
                ({'features': x} for x in self._arrays(view)), len(view), 'classifying',
                lambda _, out: outputs.append(out))
      per_view.append(np.concatenate(outputs))
    return np.mean(per_view, axis=0)


def allocate(shape: tuple, path: Path | None, memory_gb: float) -> np.ndarray:
  """A float32 array, memory-mapped at `path` when larger than `memory_gb`."""
  size = int(np.prod(shape)) * 4
  if path is None or size <= memory_gb * 2**30:
    return np.empty(shape, np.float32)
  rundir.check_writable(path.parent, size)
  path.parent.mkdir(parents=True, exist_ok=True)
  return np.lib.format.open_memmap(path, 'w+', np.float32, shape)


@dataclasses.dataclass
class TrainedRun:
  """A run's model and weights (params, batch_stats), with what evaluation, Grad-CAM,
  feature maps and predictions need."""
  run_dir: Path
  config: ml_collections.ConfigDict
  model: object
  variables: dict
  mesh: object
  task: Task
  class_names: tuple
  split: dict
  epoch: int  # whose weights these are
  checkpoint: str = 'last'  # 'best' (by the config's checkpoint.best_metric) or 'last'

  @property
  def inference(self) -> Inference:
    return inference_of(self.config, self.model, self.task, self.variables, self.mesh)


def inference_of(config, model, task: Task, variables, mesh) -> Inference:
  """Inference as `config` runs it (its data settings, input size, batch size, TTA)."""
  return Inference(model, task, variables, mesh, config.data, input_size(config),
                   config.batch_size, config.evaluation.tta_flip)
