"""Running a model over images in padded full batches (one compilation per model, head and
batch size, shared by validation, the test report and predictions), on every device of
every process: each process loads its part of each batch, and every process gets all the
outputs (each image counted once)."""
import functools

import jax
import numpy as np
from tqdm import tqdm

from research.data import eval_batches
from research.models import probabilities
from research.parallel import fetch, shard_batch


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
  """Starts `images` (at most `batch_size`) padded to a full batch; the device outputs."""
  padded = np.concatenate([images, np.repeat(images[-1:], batch_size - len(images), 0)])
  return predict_batch(model, binary, variables, shard_batch({'image': padded}, mesh)['image'],
                       tta_flip)


def gather(outputs, count: int) -> tuple[np.ndarray, np.ndarray]:
  """(logits, probabilities) of the first `count` images of dispatched batches, fetched only
  once all are queued, so the host never waits on a batch while it could load the next."""
  fetched = [fetch(out) for out in outputs]
  return (np.concatenate([np.asarray(l) for l, _ in fetched])[:count],
          np.concatenate([np.asarray(p) for _, p in fetched])[:count])


def process_part(records: list, batch_size: int) -> list:
  """This process's part of `records` padded to full global batches (the last record
  repeated): of each batch, the slice its devices hold."""
  padded = list(records) + [records[-1]] * (-len(records) % batch_size)
  local = batch_size // jax.process_count()
  start = jax.process_index() * local
  return [r for k in range(0, len(padded), batch_size)
          for r in padded[k + start:k + start + local]]


def predict(model, binary: bool, variables, records, data_config, size: int, batch_size: int,
            mesh, desc: str, tta_flip: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """(logits, probabilities, labels) for `records`, in order (see `predict_batch`)."""
  part = process_part(records, batch_size)
  local = batch_size // jax.process_count()
  outputs = []
  for batch in tqdm(eval_batches(part, data_config, size, local), total=len(part) // local,
                    desc=desc, unit='batch', leave=False, disable=None):
    images = shard_batch({'image': batch['image']}, mesh)['image']
    outputs.append(predict_batch(model, binary, variables, images, tta_flip))
  logits, probs = gather(outputs, len(records))
  return logits, probs, np.asarray([label for _, label in records], np.int32)
