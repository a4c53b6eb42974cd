"""What every data module shares: the error, the source record, split and file names. A leaf:
it imports nothing of the project but the error base."""
import dataclasses
from pathlib import Path

from research.errors import UserError

IMAGE_EXTENSIONS = frozenset({'.jpg', '.jpeg', '.png', '.bmp', '.gif', '.tif', '.tiff', '.webp'})
# Folder and CSV names of the splits (Keras tutorials use validation/, Kaggle valid/).
SPLIT_NAMES = {'train': 'train', 'val': 'val', 'valid': 'val', 'validation': 'val',
               'test': 'test'}


class DataError(UserError, ValueError):
  """The data a config points at cannot be used as it is."""


@dataclasses.dataclass(frozen=True)
class Source:
  """Labelled images, not decoded: each a path (a file, or `scheme:...` read by the
  scheme's reader, research.data.images.READERS) and a class index. A grain random-access
  data source: `source[i]` is (path, label)."""
  paths: tuple[str, ...]
  labels: tuple[int, ...]
  class_names: tuple[str, ...]
  description: str
  given: tuple[str, ...] = ()  # each image's split ('train', 'val', 'test') if the data has one

  def __len__(self) -> int:
    return len(self.paths)

  def __getitem__(self, index: int) -> tuple[str, int]:
    return self.paths[index], self.labels[index]


def is_image(path: Path) -> bool:
  return path.is_file() and path.suffix.lower() in IMAGE_EXTENSIONS
