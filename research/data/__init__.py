"""Data: sources, the split (before augmenting), augmentation and grain pipelines."""
from research.data.images import SCAN_CACHE, load_image, resize, scan_images, unreadable
from research.data.leakage import find_leaks
from research.data.augment import augments
from research.data.pipeline import (cached_batches, epoch_seed, run_batches,
                                     steps_per_epoch, train_batches, view_batches, worker_count)
from research.data.sources import load_source
from research.data.types import DataError, Source, is_image
from research.data.split import (load_split, make_split, save_split, split_records,
                                 stratified_split)
