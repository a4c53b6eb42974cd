"""Where a benchmark row's train step spends its time, by kind of XLA operation:

    python -m research.bench.profile ROW_INDEX [--steps 3] [--top 8]

traces `steps` steps of this project's step (research.bench.measure) with jax.profiler and
sums the time of the XLA:CPU thunks of every thread by name, numbered copies together
(`fusion.12` and `fusion.7` are `fusion`); prints one JSON line: the wall ms per step, then
{kind: thread ms per step}, the largest first, with the cores' time no event shows
(`UNTRACED`: XLA's own convolutions, research.parallel.use_eigen_convolutions, and idle).
"""
import argparse
import collections
import json
import os
import re
import tempfile
import time
from pathlib import Path

import jax

from research import compile_cache, parallel
from research.bench.measure import jax_step
from research.bench.rows import ROWS

# Every core's time the trace does not show: XLA's own (Eigen) convolutions run in Eigen's
# thread pool, whose work has no trace events; and idle time.
UNTRACED = 'untraced: Eigen convolutions and idle'


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
      began = time.perf_counter()
      for _ in range(args.steps):
        block(step())
      wall = (time.perf_counter() - began) * 1e3 / args.steps
    found = kinds(Path(trace), args.steps)
  shown = {UNTRACED: len(os.sched_getaffinity(0)) * wall - sum(found.values()), **found}
  shown = dict(sorted(shown.items(), key=lambda kv: -kv[1])[:args.top])
  print(json.dumps({'wall ms per step': round(wall, 1), **{k: round(v, 1)
                                                          for k, v in shown.items()}}))


if __name__ == '__main__':
  main()
