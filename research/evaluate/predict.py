"""Running a model over images in padded full batches (one compilation per model, head and
batch size, shared by validation, the test report and predictions)."""
import functools

import jax
import numpy as np

from research import progress
from research.data import eval_batches
from research.models import probabilities
from research.parallel import shard_batch


@functools.partial(jax.jit, static_argnums=(0, 1, 4))
def predict_batch(model, binary: bool, variables, images, tta_flip: bool = False):
  """(logits, probabilities) for one batch; flax modules are static (compared by value).
  With `tta_flip` the logits are the mean of the image's and its mirror image's."""
  logits = model.apply(variables, images)
  if tta_flip:
    logits = (logits + model.apply(variables, images[:, :, ::-1])) / 2
  return logits, probabilities(logits, binary)


def dispatch(model, binary: bool, variables, images, batch_size: int, mesh,
             tta_flip: bool = False):
  """Starts `images` (at most `batch_size`) padded to a full batch; (count, device outputs)."""
  n = len(images)
  padded = np.concatenate([images, np.repeat(images[-1:], batch_size - n, 0)])
  return n, predict_batch(model, binary, variables, shard_batch({'image': padded}, mesh)['image'],
                          tta_flip)


def gather(outputs) -> tuple[np.ndarray, np.ndarray]:
  """(logits, probabilities) of dispatched batches, fetched only once all are queued, so the
  host never waits on a batch while it could be loading the next."""
  fetched = [(n, jax.device_get(out)) for n, out in outputs]
  return (np.concatenate([np.asarray(l)[:n] for n, (l, _) in fetched]),
          np.concatenate([np.asarray(p)[:n] for n, (_, p) in fetched]))


def predict(model, binary: bool, variables, records, data_config, size: int, batch_size: int,
            mesh, desc: str, tta_flip: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """(logits, probabilities, labels) for `records`, in order (see `predict_batch`)."""
  outputs, labels = [], []
  batches = eval_batches(records, data_config, size, batch_size)
  for batch in progress.bar(batches, total=-(-len(records) // batch_size), desc=desc,
                            unit='batch', leave=False):
    outputs.append(dispatch(model, binary, variables, batch['image'], batch_size, mesh,
                            tta_flip))
    labels.append(batch['label'])
  return (*gather(outputs), np.concatenate(labels))
