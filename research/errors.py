"""The one base class of errors a user can fix: the CLI prints them as one line, exit code 2.

Each stage raises its own subclass (ConfigError, DataError, ...), whose message
names the thing that is wrong and the fix.
"""


class UserError(Exception):
  """Bad input: a config, a file, a path. Its message is the whole story, in one line."""
