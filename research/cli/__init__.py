"""Command line: `./run.sh CONFIG.py`, `eval`, `gradcam`, `bench` (see main.USAGE)."""
