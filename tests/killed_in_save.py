"""Runs `research.cli.main ARGS` and SIGKILLs itself at a checkpoint given by $KILL_AT:
'during:N' inside orbax's finalize of checkpoint N (its temporary directory written, not yet
renamed), 'after:N' right after checkpoint N is complete. Kills at known points, not races
against a poll."""
import os
import signal
import sys

from orbax.checkpoint._src.path import atomicity

from research.cli.main import main

WHEN, STEP = os.environ['KILL_AT'].split(':')
finalize = atomicity.AtomicRenameTemporaryPath.finalize


async def finalize_or_die(self):
  ours = self._final_path.name == STEP  # pylint: disable=protected-access
  if ours and WHEN == 'during':
    os.kill(os.getpid(), signal.SIGKILL)
  result = await finalize(self)
  if ours and WHEN == 'after':
    os.kill(os.getpid(), signal.SIGKILL)
  return result


atomicity.AtomicRenameTemporaryPath.finalize = finalize_or_die
sys.exit(main(sys.argv[1:]))
