"""Evaluation: predictions, scikit-learn metrics, report and plots."""
