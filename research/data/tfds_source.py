"""A TensorFlow Datasets dataset by name (`data.tfds`), read without TensorFlow.

A prepared dataset (array_record files) is read through tfds's random-access
data source with the images left encoded. Each image is named
`tfds:<dataset directory>#<split>/<index>`, and `read` returns its encoded
bytes, so the rest of the data stage (the scan, split, leakage check, pipeline
and predictions) treats it like a file. Preparing (downloading) a dataset is
tfds's own `download_and_prepare`, which needs TensorFlow for most datasets:
the optional extra `.[tfds-prepare]`; nothing here imports TensorFlow.
"""
import functools
import importlib.util
from pathlib import Path

from research.data.types import SPLIT_NAMES, DataError, Source

PREFIX = 'tfds:'
PREPARE_HINT = ("pip install -e '.[tfds-prepare]' (TensorFlow, to download and prepare it "
                "once), or point --config.data.tfds_dir at a directory where it is prepared")


def _tfds():
  import tensorflow_datasets  # pylint: disable=import-outside-toplevel  (only when asked for)
  return tensorflow_datasets


def tensorflow_installed() -> bool:
  """Whether tfds can download and prepare a dataset here (it needs TensorFlow for that)."""
  return importlib.util.find_spec('tensorflow') is not None


def builder(name: str, data_dir: str):
  """The prepared dataset `name` in `data_dir` (tfds's default ~/tensorflow_datasets when
  empty); prepared first if TensorFlow is installed, else one line saying how."""
  tfds = _tfds()
  try:
    found = tfds.builder(name, data_dir=data_dir or None)
  except tfds.core.registered.DatasetNotFoundError:
    raise DataError(f'data.tfds {name!r} is not a TensorFlow Datasets name (e.g. cats_vs_dogs, '
                    f'tf_flowers, food101: see tensorflow.org/datasets/catalog)') from None
  where = Path(found.data_dir)
  if not found.is_prepared():
    if not tensorflow_installed():
      raise DataError(f'tfds dataset {name} is not prepared in {where.parent.parent}: '
                      f'{PREPARE_HINT}')
    found.download_and_prepare(file_format='array_record')
  if found.info.file_format.value != 'array_record':
    raise DataError(f'tfds dataset {name} in {where} is stored as '
                    f'{found.info.file_format.value}, which cannot be read without TensorFlow: '
                    f'prepare it again with file_format=array_record')
  return found


@functools.cache
def _split_source(dataset_dir: str, split: str):
  tfds = _tfds()
  found = tfds.builder_from_directory(dataset_dir)
  image_key = found.info.supervised_keys[0]
  return found.as_data_source(split=split, decoders={image_key: tfds.decode.SkipDecoding()})


def from_tfds(name: str, data_dir: str) -> Source:
  """Every image of every split of `name`; the dataset's train/validation/test splits are
  kept as given (a dataset with train only is split as a folder is)."""
  found = builder(name, data_dir)
  if not found.info.supervised_keys:
    raise DataError(f'tfds dataset {name} has no (image, label) supervised keys: it is not an '
                    f'image classification dataset')
  image_key, label_key = found.info.supervised_keys
  class_names = tuple(found.info.features[label_key].names)
  splits = [s for s in found.info.splits if s in SPLIT_NAMES]
  given = splits != ['train']
  paths, labels, split_of = [], [], []
  for split in splits:
    records = _split_source(str(found.data_dir), split)
    for index in range(len(records)):
      paths.append(f'{PREFIX}{found.data_dir}#{split}/{index}')
      labels.append(int(records[index][label_key]))
      split_of.append(SPLIT_NAMES[split])
  return Source(tuple(paths), tuple(labels), class_names,
                f'tfds {name} {found.info.version} in {found.data_dir} '
                f'({", ".join(f"{s}: {found.info.splits[s].num_examples}" for s in splits)}'
                f'{", split as given" if given else ""})',
                tuple(split_of) if given else ())


def read(path: str) -> bytes:
  """The encoded image bytes behind a `tfds:` path."""
  dataset_dir, _, where = path.removeprefix(PREFIX).rpartition('#')
  split, _, index = where.partition('/')
  source = _split_source(dataset_dir, split)
  image_key = source.dataset_info.supervised_keys[0]
  return source[int(index)][image_key]
