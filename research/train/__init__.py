"""Training: freezing rules, optimizer, train state, the sharded step, checkpoints, the loop."""
