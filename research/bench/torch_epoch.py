"""The end-to-end reference: what a PyTorch user writes for the main config's job, on the
images of a run this project made (its split.json), so both sides train and validate on the
same files:

    python -m research.bench.torch_epoch RUN_DIR [--epochs 2] [--workers N]

A `Dataset` of (path, label) with PIL decoding, torchvision transforms (resize, the Keras
augmentation's RandomAffine + RandomHorizontalFlip, normalisation), a shuffling
`DataLoader` with worker processes, EfficientNet-Lite0 with its ImageNet weights and a
one-logit head, the modules before `_blocks.12` frozen (in eval mode), Adam at 1e-3 and
binary cross-entropy, batch 20; each epoch validates, the test split is scored at the end.
Prints one JSON line: seconds per epoch (train + validation), the whole process, images.
"""
import argparse
import json
import os
import time
from pathlib import Path

START = time.time()

# pylint: disable=wrong-import-position
import numpy as np
import torch
from PIL import Image

from research.bench import torch_models
from research.data.split import load_split
from research.models import get_spec
from research.weights.files import resolve


class Files(torch.utils.data.Dataset):
  def __init__(self, records, transform):
    self.records, self.transform = records, transform

  def __len__(self):
    return len(self.records)

  def __getitem__(self, i):
    path, label = self.records[i]
    with Image.open(path) as image:
      return self.transform(image.convert('RGB')), np.float32(label)


def transforms(size: int, mean, std, augment: bool):
  T = torch_models.torchvision().transforms  # pylint: disable=invalid-name
  steps = [T.Resize((size, size))]
  if augment:  # Keras's rotation 40, shear 0.2 (degrees), zoom 0.2, horizontal flip
    steps += [T.RandomAffine(degrees=40, shear=0.2, scale=(0.8, 1.2)), T.RandomHorizontalFlip()]
  return T.Compose([*steps, T.ToTensor(), T.Normalize([m / 255 for m in mean],
                                                      [s / 255 for s in std])])


def evaluate(net, loader) -> tuple[float, float]:
  net.eval()
  losses, correct, count = 0.0, 0, 0
  with torch.no_grad():
    for images, labels in loader:
      logits = net(images.contiguous(memory_format=torch.channels_last))[:, 0]
      losses += float(torch.nn.functional.binary_cross_entropy_with_logits(
          logits, labels, reduction='sum'))
      correct += int(((logits > 0).float() == labels).sum())
      count += len(labels)
  return losses / count, correct / count


def main() -> None:
  parser = argparse.ArgumentParser(prog='python -m research.bench.torch_epoch')
  parser.add_argument('run_dir')
  parser.add_argument('--epochs', type=int, default=2)
  parser.add_argument('--workers', type=int, default=os.cpu_count())
  parser.add_argument('--batch', type=int, default=20)
  parser.add_argument('--model', default='efficientnet_lite0')
  parser.add_argument('--before', default='_blocks.12')
  args = parser.parse_args()
  torch.set_num_threads(os.cpu_count())
  torch.set_flush_denormal(True)
  torch.manual_seed(0)
  spec = get_spec(args.model)
  size = spec.input_size
  _, split = load_split(Path(args.run_dir) / 'split.json')
  loader = lambda records, augment, shuffle: torch.utils.data.DataLoader(
      Files(records, transforms(size, spec.mean, spec.std, augment)), batch_size=args.batch,
      shuffle=shuffle, drop_last=shuffle, num_workers=args.workers)
  train = loader(split['train'], True, True)
  val, test = loader(split['val'], False, False), loader(split['test'], False, False)

  net = torch_models.reference(args.model, size, args.before)
  state = torch.load(resolve(spec.weights), map_location='cpu', weights_only=True)
  missing = net.load_state_dict({k: v for k, v in state.items() if not k.startswith('_fc.')},
                                strict=False).missing_keys
  assert sorted(missing) == ['_fc.bias', '_fc.weight'], missing
  frozen = torch_models.frozen_modules(net, size, args.before, '_fc')
  optimizer = torch.optim.Adam([p for p in net.parameters() if p.requires_grad], 1e-3)
  loss_fn = torch.nn.BCEWithLogitsLoss()
  epochs = []
  for epoch in range(args.epochs):
    began = time.time()
    net.train()
    torch_models.freeze(net, frozen)  # train() put the frozen modules back in train mode
    for images, labels in train:
      optimizer.zero_grad(set_to_none=True)
      loss_fn(net(images.contiguous(memory_format=torch.channels_last))[:, 0],
              labels).backward()
      optimizer.step()
    val_loss, val_accuracy = evaluate(net, val)
    epochs.append(time.time() - began)
    print(f'epoch {epoch + 1}: val loss {val_loss:.4f} acc {val_accuracy:.4f}, '
          f'{epochs[-1]:.1f} s', flush=True)
  test_loss, test_accuracy = evaluate(net, test)
  print(json.dumps({'epoch_s': epochs, 'total_s': time.time() - START,
                    'train_images': len(train) * args.batch, 'val_images': len(split['val']),
                    'test_accuracy': test_accuracy, 'test_loss': test_loss,
                    'trainable': torch_models.trainable_parameters(net)}))


if __name__ == '__main__':
  main()
