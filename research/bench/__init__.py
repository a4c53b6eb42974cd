"""`./run.sh bench`: this project and a PyTorch reference, side by side, one process per row."""
