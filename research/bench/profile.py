"""Where a benchmark row's train step spends its time, by kind of XLA operation:

    python -m research.bench.profile ROW_INDEX [--steps 3] [--top 8]

traces `steps` steps of this project's step (research.bench.measure) with jax.profiler and
sums the time of the XLA:CPU thunks of every thread by name, numbered copies together
(`fusion.12` and `fusion.7` are `fusion`); prints one JSON line: {kind: ms per step}, the
largest first.
"""
import argparse
import collections
import json
import re
import tempfile
from pathlib import Path

import jax

from research import compile_cache, parallel
from research.bench.measure import jax_step
from research.bench.rows import ROWS


def kinds(trace_dir: Path, steps: int) -> dict[str, float]:
  """{op kind: ms per step} from the XLA:CPU thunk events of a jax.profiler trace."""
  from jax.profiler import ProfileData  # pylint: disable=import-outside-toplevel
  [path] = Path(trace_dir).rglob('*.xplane.pb')
  totals = collections.Counter()
  for plane in ProfileData.from_file(str(path)).planes:
    for line in plane.lines:
      if line.name.startswith('python') or 'Steps' in line.name:
        continue
      for event in line.events:
        if event.name.startswith(('jit_', 'Thunk', 'PjRt', 'ThreadpoolListener')):
          continue
        totals[re.sub(r'\.\d+$', '', event.name)] += event.duration_ns / 1e6 / steps
  return dict(totals.most_common())


def main() -> None:
  parser = argparse.ArgumentParser(prog='python -m research.bench.profile')
  parser.add_argument('row', type=int)
  parser.add_argument('--steps', type=int, default=3)
  parser.add_argument('--top', type=int, default=8)
  args = parser.parse_args()
  parallel.use_cpu_cores()
  compile_cache.enable()
  step, block, _ = jax_step(ROWS[args.row], 20, {})
  block(step())  # compiled
  with tempfile.TemporaryDirectory() as trace:
    with jax.profiler.trace(trace):
      for _ in range(args.steps):
        block(step())
    found = kinds(Path(trace), args.steps)
  print(json.dumps({k: round(v, 1) for k, v in list(found.items())[:args.top]}))


if __name__ == '__main__':
  main()
