"""Classify images with a model from `./run.sh export RUN --format tflite`, with the LiteRT
interpreter, numpy and Pillow only (no JAX, no TensorFlow, no code of this repository): copy
it into your app.

    pip install ai-edge-litert numpy pillow
    python classify_tflite.py checkpoints/<run>/export photos/ [more.jpg ...] > out.csv
"""
import csv
import json
import os
import sys
from pathlib import Path

import numpy as np
from ai_edge_litert.interpreter import Interpreter
from PIL import Image, ImageOps

EXTENSIONS = {'.jpg', '.jpeg', '.png', '.bmp', '.gif', '.tif', '.tiff', '.webp'}


def load(path: Path, size: int) -> np.ndarray:
  """8-bit RGB, upright, resized as training saw it (model.json's caller_must)."""
  with Image.open(path) as image:
    image = ImageOps.exif_transpose(image).convert('RGB')
    return np.asarray(image.resize((size, size), Image.BILINEAR))


def main(export_dir: str, *inputs: str) -> None:
  model = json.loads((Path(export_dir) / 'model.json').read_text())
  interpreter = Interpreter(model_path=str(Path(export_dir) / model['files']['tflite']),
                            num_threads=os.cpu_count())
  classify = interpreter.get_signature_runner('serving_default')
  size, channels_first = model['input']['shape'][2], model['input']['layout'] == 'NCHW'
  files = sorted(p for i in map(Path, inputs)
                 for p in ([i] if i.is_file() else i.rglob('*'))
                 if p.suffix.lower() in EXTENSIONS)
  writer = csv.writer(sys.stdout)
  writer.writerow(['path', 'predicted', *(f'p({c})' for c in model['class_names'])])
  for start in range(0, len(files), 32):
    batch = files[start:start + 32]
    images = np.stack([load(p, size) for p in batch])  # (batch, size, size, 3) uint8 RGB
    if channels_first:
      images = images.transpose(0, 3, 1, 2)
    probabilities = classify(images=images)['probabilities']
    for path, p in zip(batch, probabilities):
      writer.writerow([path, model['class_names'][int(p.argmax())], *(f'{x:.6f}' for x in p)])


if __name__ == '__main__':
  main(*sys.argv[1:])
