"""Orchestration above the stages: one experiment (train -> explain -> evaluate), restoring a
finished run, a sweep of experiments, a comparison of runs."""
