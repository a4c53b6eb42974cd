"""JAX's persistent compilation cache: a second run of a configuration (same model, batch,
freezing, devices) loads its compiled steps instead of compiling them again.

The cache lives in `jax/` of this project's cache directory (research.cache:
~/.cache/research/jax by default); JAX's own `JAX_COMPILATION_CACHE_DIR`, when set, chooses
another directory.
"""
import os

import jax

from research import cache


def enable() -> None:
  if 'JAX_COMPILATION_CACHE_DIR' not in os.environ:  # else JAX reads it itself
    jax.config.update('jax_compilation_cache_dir', str(cache.directory('jax')))
  # the train, eval and feature steps take seconds to compile; tiny helpers are not kept
  # (JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS, when set, decides: JAX reads it itself)
  if 'JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS' not in os.environ:
    jax.config.update('jax_persistent_cache_min_compile_time_secs', 0.2)
