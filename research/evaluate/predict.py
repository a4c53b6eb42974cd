"""Running a model over a list of records, in padded full batches (one compilation)."""
import jax
import numpy as np

from research import progress
from research.data import eval_batches
from research.models import probabilities
from research.parallel import shard_batch


def make_predict_fn(model, binary: bool):
  """jitted (variables, images) -> (logits, probabilities)."""
  def predict_fn(variables, images):
    logits = model.apply(variables, images)
    return logits, probabilities(logits, binary)

  return jax.jit(predict_fn)


def predict(predict_fn, variables, records, data_config, size: int, batch_size: int, mesh,
            desc: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """(logits, probabilities, labels) for `records`, in order."""
  outputs, labels = [], []
  batches = eval_batches(records, data_config, size, batch_size)
  for batch in progress.bar(batches, total=-(-len(records) // batch_size), desc=desc,
                            unit='batch', leave=False):
    n = len(batch['label'])
    images = np.concatenate([batch['image'], np.repeat(batch['image'][-1:], batch_size - n, 0)])
    outputs.append((n, predict_fn(variables, shard_batch({'image': images}, mesh)['image'])))
    labels.append(batch['label'])
  # Fetched only now, so the host never waits on a batch while it could be loading the next.
  fetched = [(n, jax.device_get(out)) for n, out in outputs]
  logits = np.concatenate([np.asarray(l)[:n] for n, (l, _) in fetched])
  probs = np.concatenate([np.asarray(p)[:n] for n, (_, p) in fetched])
  return logits, probs, np.concatenate(labels)
