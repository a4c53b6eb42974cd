"""Where labelled images come from: a class-per-folder tree, a CSV of path,label, or ELPV.

A source is just the list of (path, label) and the class names; nothing is
decoded here. Paths are sorted so a split depends only on the files and the seed.
"""
import csv
import dataclasses
import importlib.util
from pathlib import Path

from research.errors import UserError

IMAGE_EXTENSIONS = frozenset({'.jpg', '.jpeg', '.png', '.bmp', '.gif', '.tif', '.tiff', '.webp'})
ELPV_LICENSE = 'CC BY-NC-SA 4.0 (Buerhop-Lutz et al., Deitsch et al.)'


class DataError(UserError, ValueError):
  """The data a config points at cannot be used as it is."""


@dataclasses.dataclass(frozen=True)
class Source:
  paths: tuple[str, ...]
  labels: tuple[int, ...]
  class_names: tuple[str, ...]
  description: str


def is_image(path: Path) -> bool:
  return path.is_file() and path.suffix.lower() in IMAGE_EXTENSIONS


def from_folder(root: Path) -> Source:
  classes = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith('.'))
  if not classes:
    raise DataError(f'data.path {root} has no class sub-folders: put each class\'s images in '
                    f'its own folder, e.g. {root}/cat/*.jpg, {root}/dog/*.jpg')
  items = []
  for label, folder in enumerate(classes):
    images = sorted(str(p) for p in folder.rglob('*') if is_image(p))
    if not images:
      raise DataError(f'class folder {folder} has no images ({", ".join(sorted(IMAGE_EXTENSIONS))})'
                      f': add images or remove the folder')
    items += [(p, label) for p in images]
  return Source(tuple(p for p, _ in items), tuple(l for _, l in items),
                tuple(c.name for c in classes), f'folder {root}')


def from_csv(path: Path) -> Source:
  """Rows of `path,label` (a header row `path,label` is allowed); paths relative to the CSV."""
  with open(path, newline='') as f:
    rows = [r for r in csv.reader(f) if r]
  if rows and [c.strip().lower() for c in rows[0]] == ['path', 'label']:
    rows = rows[1:]
  bad = next((i for i, r in enumerate(rows) if len(r) != 2), None)
  if bad is not None or not rows:
    raise DataError(f'{path}: expected rows of "path,label"' +
                    (f', row {bad + 1} is {rows[bad]!r}' if bad is not None else ', found none'))
  class_names = tuple(sorted({label.strip() for _, label in rows}))
  index = {c: i for i, c in enumerate(class_names)}
  items = sorted((str((path.parent / p.strip()).resolve()), index[l.strip()]) for p, l in rows)
  missing = next((p for p, _ in items if not Path(p).exists()), None)
  if missing:
    raise DataError(f'{path} lists {missing}, which does not exist: fix the row or the file')
  return Source(tuple(p for p, _ in items), tuple(l for _, l in items), class_names, f'CSV {path}')


def elpv(task: str) -> Source:
  """ELPV: 2,624 solar-cell electroluminescence images (pip package elpv-dataset).

  task 'binary': functional (p=0) vs defective (p>0); 'levels': p in {0, 1/3, 2/3, 1}.
  """
  spec = importlib.util.find_spec('elpv_dataset')
  if spec is None:
    raise DataError('the ELPV default needs the elpv-dataset package: pip install elpv-dataset')
  root = Path(spec.origin).parent / 'data'
  with open(root / 'labels.csv') as f:
    rows = [line.split() for line in f if line.strip()]
  probs = [float(p) for _, p, _ in rows]
  if task == 'binary':
    labels, names = [int(p > 0) for p in probs], ('functional', 'defective')
  elif task == 'levels':
    labels, names = [round(p * 3) for p in probs], ('p=0', 'p=1/3', 'p=2/3', 'p=1')
  else:
    raise DataError(f'data.elpv_task {task!r} is not one of: binary, levels')
  return Source(tuple(str(root / p) for p, _, _ in rows), tuple(labels), names,
                f'ELPV solar cells ({task}, {len(rows)} images, licence {ELPV_LICENSE})')


def load_source(data_config) -> Source:
  """`data.path` empty: ELPV; a folder: class-per-folder; a .csv file: path,label rows."""
  if not data_config.path:
    return elpv(data_config.elpv_task)
  path = Path(data_config.path).expanduser()
  if not path.exists():
    raise DataError(f'data.path {path} does not exist: point --config.data.path at a folder '
                    f'with one sub-folder per class, or at a CSV of path,label')
  if path.is_dir():
    return from_folder(path)
  if path.suffix.lower() == '.csv':
    return from_csv(path)
  raise DataError(f'data.path {path} is neither a folder nor a .csv file')
