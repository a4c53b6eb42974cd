"""Runs `research.cli.main ARGS` and SIGKILLs itself at a checkpoint given by $KILL_AT:
'during:N' inside orbax's finalize of checkpoint N (its temporary directory written, not yet
renamed), 'after:N' right after checkpoint N is complete. Kills at known points, not races
against a poll. Best checkpoints finish a second late, as a slow disk would have them."""
import asyncio
import os
import signal
import sys

from orbax.checkpoint._src.path import atomicity

from research.cli.main import main

WHEN, STEP = os.environ['KILL_AT'].split(':')
finalize = atomicity.AtomicRenameTemporaryPath.finalize


async def finalize_or_die(self):
  final = self._final_path  # pylint: disable=protected-access
  if final.parent.name == 'best':  # a best save finishing late: the last must wait for it
    await asyncio.sleep(1.0)
    return await finalize(self)
  ours = final.name == STEP
  if ours and WHEN == 'during':
    os.kill(os.getpid(), signal.SIGKILL)
  result = await finalize(self)
  if ours and WHEN == 'after':
    os.kill(os.getpid(), signal.SIGKILL)
  return result


atomicity.AtomicRenameTemporaryPath.finalize = finalize_or_die
sys.exit(main(sys.argv[1:]))
