"""Transfer learning on custom image datasets with JAX/Flax.

From Python (a notebook): `research.fit(CONFIG, **keys)`, `research.load_run(DIR)`; see
research/api.py. From a shell: ./run.sh (research/cli/main.py)."""

API = ('fit', 'load_run', 'Run')  # not 'train': research.train is the training stage


def __getattr__(name):
  if name in API:  # imported on first use: `import research.config` stays light
    from research import api  # pylint: disable=import-outside-toplevel
    return getattr(api, name)
  raise AttributeError(f'module {__name__!r} has no attribute {name!r}')
