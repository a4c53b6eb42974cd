"""Per-epoch metrics: a JSON-lines file (the record) and TensorBoard (for browsing)."""
import json
from pathlib import Path

from tensorboardX import SummaryWriter

from research import rundir


def read(path: Path) -> list[dict]:
  if not path.exists():
    return []
  return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


class History:
  """Appends one record per epoch; on resume, forgets epochs after the restored one. Every
  process keeps the records; only the one that `writes` writes them."""

  def __init__(self, path: Path, tensorboard_dir: Path, last_epoch: int, writes: bool = True):
    self.path, self.writes = path, writes
    self.records = [r for r in read(path) if r['epoch'] <= last_epoch]
    self.writer = SummaryWriter(str(tensorboard_dir)) if writes else None
    if writes:
      rundir.write_whole(path, ''.join(json.dumps(r) + '\n' for r in self.records))

  def append(self, record: dict) -> None:
    self.records.append(record)
    if not self.writes:
      return
    with open(self.path, 'a') as f:
      f.write(json.dumps(record) + '\n')
    for key, value in record.items():
      if key != 'epoch':
        self.writer.add_scalar(key, value, record['epoch'])
    self.writer.flush()

  def close(self) -> None:
    if self.writer:
      self.writer.close()
