"""The data side of a new run: usable images, the split (before augmenting), leakage, and
the files that define the run."""
import dataclasses
from pathlib import Path

from research import cache, rundir
from research.data import (SCAN_CACHE, DataError, Source, find_leaks, load_source, make_split,
                           save_split, scan_images, split_records)


def usable_source(config, log) -> tuple[Source, dict[str, str], dict]:
  """The configured source without its unreadable images, {path: reason} for those, and
  the others' fingerprints (for `find_leaks`)."""
  source = load_source(config.data)
  log(f'data:    {source.description}')
  if not config.data.path and not config.data.tfds:
    log('         the embedded default; for your own images: --config.data.path=FOLDER (one '
        'sub-folder per class) or a CSV of path,label')
  bad, fingerprints = scan_images(source.paths, config.data.on_bad_image,
                                  cache=cache.directory(SCAN_CACHE))
  keep = [i for i, p in enumerate(source.paths) if p not in bad]
  if bad:
    log(f'         skipping {len(bad)} unreadable images (listed in {rundir.BAD_IMAGES})')
  return dataclasses.replace(
      source, paths=tuple(source.paths[i] for i in keep),
      labels=tuple(source.labels[i] for i in keep),
      given=tuple(source.given[i] for i in keep) if source.given else ()), bad, fingerprints


def check_leakage(split: dict, fingerprints: dict, data_config, log) -> list[dict]:
  """The same image in two splits (see research.data.leakage); an error if the config says."""
  leaks = find_leaks(split, fingerprints, data_config.near_duplicate_bits)
  if not leaks:
    return leaks
  first = leaks[0]
  example = (f'{first["a"]} ({first["split_a"]}) and {first["b"]} ({first["split_b"]}), '
             f'{first["kind"]} copy')
  if data_config.leakage == 'error':
    raise DataError(f'{len(leaks)} pairs of images are the same image in two splits, e.g. '
                    f'{example}: remove the copies, or set --config.data.leakage=warn')
  log(f'leakage: {len(leaks)} pairs of images are the same image in two splits (listed in '
      f'{rundir.LEAKAGE}), e.g. {example}')
  return leaks


@dataclasses.dataclass
class Prepared:
  """A new run's data, checked, not yet written."""
  source: Source
  split: dict
  bad: dict
  leaks: list


def prepare(config, log) -> Prepared:
  source, bad, fingerprints = usable_source(config, log)
  split = split_records(source, make_split(source, tuple(config.data.split), config.data.split_seed))
  return Prepared(source, split, bad, check_leakage(split, fingerprints, config.data, log))


def write_leaks(directory: Path, leaks: list[dict]) -> None:
  """leakage.txt: one tab-separated line per pair of the same image in two splits."""
  if leaks:
    (directory / rundir.LEAKAGE).write_text(''.join(
        f'{l["kind"]}\t{l["bits"]}\t{l["split_a"]}\t{l["a"]}\t{l["split_b"]}\t{l["b"]}\n'
        for l in leaks))


def start_run(run_dir: Path, config, prepared: Prepared) -> None:
  """Writes what defines a new run: its split, skipped images, leaks, and last its config
  (a directory with a config.json is a run that can be resumed)."""
  run_dir.mkdir(parents=True, exist_ok=True)
  save_split(run_dir / rundir.SPLIT, prepared.source, prepared.split)
  if prepared.bad:
    (run_dir / rundir.BAD_IMAGES).write_text(''.join(
        f'{p}\t{r}\n' for p, r in prepared.bad.items()))
  write_leaks(run_dir, prepared.leaks)
  rundir.save_config(run_dir, config)
