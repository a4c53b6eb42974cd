"""Inference speed of one architecture in four runtimes, in alternating rounds in one
process (each round: every runtime warm, one after the other):

    python -m research.bench.inference [--model efficientnet_lite0] [--rounds 5]
        [--batches 1,32]

prints one JSON line per round, batch and runtime: images/s, the median of `calls` timed
calls after 2 warm-up calls (measure.median_seconds). Every runtime takes uint8 RGB images and returns
probabilities, the normalisation inside: this project's JAX model as `predict` runs it
(jitted, the CPU formulations), its ONNX export (float32, and int8 by onnxruntime's static
quantization) in onnxruntime, and PyTorch eager on the same architecture (eval mode,
channels-last, inference mode), each with all cores.
"""
import argparse
import json
import time

import numpy as np

from research.bench.measure import median_seconds

RUNTIMES = ('PyTorch eager', 'this project (JAX)', 'ONNX float32 (onnxruntime)',
            'ONNX int8 (onnxruntime)')


def images_per_second(fn, images: np.ndarray, calls: int) -> float:
  return len(images) / median_seconds(lambda: fn(images), calls)


def jax_and_onnx(model_name: str, size: int, calibration: np.ndarray) -> dict:
  """The JAX serving function and its ONNX exports, the ImageNet-pretrained backbone
  (random where no weights ship) with a one-logit head."""
  import jax  # pylint: disable=import-outside-toplevel
  import jax.numpy as jnp  # pylint: disable=import-outside-toplevel
  import ml_collections  # pylint: disable=import-outside-toplevel

  from research.export import graph, onnx  # pylint: disable=import-outside-toplevel
  from research.models import Task, create_model  # pylint: disable=import-outside-toplevel
  from research.models.layers import portable_formulations  # pylint: disable=import-outside-toplevel
  task = Task(2)
  model = create_model(ml_collections.ConfigDict(dict(
      name=model_name, pooling='avg', hidden=(), dropout=0.2, dtype='float32')), task.outputs)
  variables = jax.jit(model.init)(jax.random.key(0), jnp.zeros((1, size, size, 3), jnp.uint8))
  variables = {k: variables[k] for k in ('params', 'batch_stats') if k in variables}
  serve = graph.serving_fn(model, task, variables)
  jitted = jax.jit(serve)
  with portable_formulations():
    data = onnx.export(serve, (size, size, 3))
  return {RUNTIMES[1]: lambda x: jax.block_until_ready(jitted(x)),
          RUNTIMES[2]: onnx.load(data),
          RUNTIMES[3]: onnx.load(onnx.quantize(data, calibration))}


def pytorch(model_name: str):
  """PyTorch eager: the same architecture, uint8 NHWC in, normalised inside, sigmoid out."""
  import torch  # pylint: disable=import-outside-toplevel

  from research.bench.torch_models import with_one_logit  # pylint: disable=import-outside-toplevel
  from research.models import get_spec  # pylint: disable=import-outside-toplevel
  torch.manual_seed(0)
  net = with_one_logit(model_name)[0].eval().to(memory_format=torch.channels_last)
  spec = get_spec(model_name)
  mean = torch.tensor(spec.mean).view(1, 3, 1, 1)
  std = torch.tensor(spec.std).view(1, 3, 1, 1)

  def classify(images):
    with torch.inference_mode():
      x = torch.from_numpy(images).permute(0, 3, 1, 2).float()
      x = ((x - mean) / std).contiguous(memory_format=torch.channels_last)
      p = torch.sigmoid(net(x))
      return torch.cat([1 - p, p], 1).numpy()
  return classify


def main() -> None:
  parser = argparse.ArgumentParser()
  parser.add_argument('--model', default='efficientnet_lite0')
  parser.add_argument('--size', type=int, default=224)
  parser.add_argument('--rounds', type=int, default=5)
  parser.add_argument('--batches', default='1,32')
  args = parser.parse_args()
  rng = np.random.default_rng(0)
  calibration = rng.integers(0, 256, (32, args.size, args.size, 3), np.uint8)
  runtimes = {RUNTIMES[0]: pytorch(args.model),
              **jax_and_onnx(args.model, args.size, calibration)}
  for round_ in range(args.rounds):
    for batch in map(int, args.batches.split(',')):
      images = rng.integers(0, 256, (batch, args.size, args.size, 3), np.uint8)
      for name, fn in runtimes.items():
        time.sleep(0.5)  # idle worker threads of the runtime before park
        print(json.dumps({'round': round_, 'batch': batch, 'runtime': name,
                          'images_per_s': images_per_second(fn, images, 10 if batch == 1
                                                            else 3)}), flush=True)


if __name__ == '__main__':
  main()
