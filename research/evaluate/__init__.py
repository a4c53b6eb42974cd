"""Evaluation: predictions, scikit-learn metrics, report and plots."""
from research.evaluate.run import EvaluationError, evaluate
