"""Transfer learning on custom image datasets with JAX/Flax."""
