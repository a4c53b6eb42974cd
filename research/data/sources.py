"""Where labelled images come from: a class-per-folder tree (optionally already split into
train/, val/, test/), a CSV of path,label[,split], a tfds dataset (tfds_source), or ELPV.

A source is just the list of (path, label), the class names and, when the data
comes split, each image's split; nothing is decoded here. Paths are sorted so a
split depends only on the files and the seed.
"""
import csv
import importlib.util
from pathlib import Path

from research.data import tfds_source
from research.data.types import IMAGE_EXTENSIONS, SPLIT_NAMES, DataError, Source, is_image

ELPV_LICENSE = 'CC BY-NC-SA 4.0 (Buerhop-Lutz et al., Deitsch et al.)'


def class_images(folder: Path) -> list[str]:
  images = sorted(str(p) for p in folder.rglob('*') if is_image(p))
  if not images:
    raise DataError(f'class folder {folder} has no images ({", ".join(sorted(IMAGE_EXTENSIONS))})'
                    f': add images or remove the folder')
  return images


def subfolders(root: Path) -> list[Path]:
  return sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith('.'))


def from_folder(root: Path) -> Source:
  """root/<class>/*, or already split: root/train/<class>/*, root/val/<class>/* (or valid/,
  validation/), root/test/<class>/*."""
  folders = subfolders(root)
  if not folders:
    raise DataError(f'data.path {root} has no class sub-folders: put each class\'s images in '
                    f'its own folder, e.g. {root}/cat/*.jpg, {root}/dog/*.jpg')
  names = [f.name.lower() for f in folders]
  if 'train' in names and set(names) <= set(SPLIT_NAMES):
    return from_split_folders(root, folders)
  items = [(p, label) for label, folder in enumerate(folders) for p in class_images(folder)]
  return Source(tuple(p for p, _ in items), tuple(l for _, l in items),
                tuple(c.name for c in folders), f'folder {root}')


def from_split_folders(root: Path, folders: list[Path]) -> Source:
  splits = {}
  for folder in folders:
    split = SPLIT_NAMES[folder.name.lower()]
    if split in splits:
      raise DataError(f'{root} has both {splits[split].name}/ and {folder.name}/ for the {split} '
                      f'split: merge them into one folder')
    splits[split] = folder
  class_names = tuple(sorted({c.name for f in splits.values() for c in subfolders(f)}))
  index = {c: i for i, c in enumerate(class_names)}
  items = sorted((p, index[c.name], split) for split, folder in splits.items()
                 for c in subfolders(folder) for p in class_images(c))
  return Source(tuple(p for p, _, _ in items), tuple(l for _, l, _ in items), class_names,
                f'folder {root} (split as given: {", ".join(f.name for f in splits.values())})',
                tuple(s for _, _, s in items))


def from_csv(path: Path) -> Source:
  """Rows of `path,label` or `path,label,split` (a header row of those names is allowed);
  paths relative to the CSV; split is train, val (valid, validation) or test."""
  with open(path, newline='') as f:
    rows = [[c.strip() for c in r] for r in csv.reader(f) if r]
  if rows and [c.lower() for c in rows[0]] in (['path', 'label'], ['path', 'label', 'split']):
    rows = rows[1:]
  width = len(rows[0]) if rows else 0
  bad = next((i for i, r in enumerate(rows) if len(r) != width or width not in (2, 3)), None)
  if bad is not None or not rows:
    raise DataError(f'{path}: expected rows of "path,label" or "path,label,split"' +
                    (f', row {bad + 1} is {rows[bad]!r}' if bad is not None else ', found none'))
  unknown = next((r for r in rows if width == 3 and r[2].lower() not in SPLIT_NAMES), None)
  if unknown:
    raise DataError(f'{path}: split {unknown[2]!r} in row {unknown!r} is not one of: '
                    f'{", ".join(SPLIT_NAMES)}')
  class_names = tuple(sorted({r[1] for r in rows}))
  index = {c: i for i, c in enumerate(class_names)}
  items = sorted((str((path.parent / r[0]).resolve()), index[r[1]],
                  SPLIT_NAMES[r[2].lower()] if width == 3 else '') for r in rows)
  missing = next((p for p, _, _ in items if not Path(p).exists()), None)
  if missing:
    raise DataError(f'{path} lists {missing}, which does not exist: fix the row or the file')
  return Source(tuple(p for p, _, _ in items), tuple(l for _, l, _ in items), class_names,
                f'CSV {path}' + (' (split as given)' if width == 3 else ''),
                tuple(s for _, _, s in items) if width == 3 else ())


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
  """`data.tfds`: a TensorFlow Datasets dataset; `data.path` empty: ELPV; a folder:
  class-per-folder; a .csv file: path,label rows."""
  if data_config.tfds:
    if data_config.path:
      raise DataError(f'data.path {data_config.path} and data.tfds {data_config.tfds} both '
                      f'name the data: set only one')
    return tfds_source.from_tfds(data_config.tfds, data_config.tfds_dir)
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
