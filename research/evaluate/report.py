"""Test-split metrics (scikit-learn) written as report.json, report.md and PNGs."""
import json
from pathlib import Path

import numpy as np
from sklearn.metrics import (accuracy_score, balanced_accuracy_score, confusion_matrix,
                             log_loss, precision_recall_fscore_support, roc_auc_score)

from research import rundir
from research.evaluate import plots


def balanced_accuracy(labels: np.ndarray, preds: np.ndarray) -> float:
  """The mean of the per-class accuracies (recalls): a model that ignores a rare class
  cannot hide behind the common ones."""
  return float(balanced_accuracy_score(labels, preds))


def metrics(labels: np.ndarray, probs: np.ndarray, class_names) -> dict:
  """Accuracy, balanced (macro-averaged) accuracy, macro F1, loss, per-class accuracy
  (recall), precision, F1 and one-vs-rest ROC AUC, confusion matrix."""
  k = len(class_names)
  preds = probs.argmax(-1)
  matrix = confusion_matrix(labels, preds, labels=range(k))
  precision, recall, f1, _ = precision_recall_fscore_support(labels, preds, labels=range(k),
                                                             zero_division=0)
  auc = {}
  for c in range(k):
    present = 0 < (labels == c).sum() < len(labels)
    auc[class_names[c]] = float(roc_auc_score(labels == c, probs[:, c])) if present else None
  return {
      'num_images': int(len(labels)),
      'accuracy': float(accuracy_score(labels, preds)),
      'balanced_accuracy': balanced_accuracy(labels, preds),
      'macro_f1': float(f1.mean()),
      'loss': float(log_loss(labels, np.clip(probs, 1e-7, 1), labels=range(k))),
      'per_class_accuracy': {class_names[c]: float(recall[c]) for c in range(k)},
      'per_class_precision': {class_names[c]: float(precision[c]) for c in range(k)},
      'per_class_f1': {class_names[c]: float(f1[c]) for c in range(k)},
      'per_class_roc_auc': auc,
      'confusion_matrix': matrix.tolist(),
      'class_names': list(class_names),
  }


def write(run_dir: Path, labels: np.ndarray, probs: np.ndarray, class_names,
          extra: dict) -> dict:
  """Writes the report files; returns the report dict."""
  report = {**extra, **metrics(labels, probs, class_names)}
  plots.roc(labels, probs, class_names, run_dir / 'roc.png')
  plots.confusion(np.asarray(report['confusion_matrix']), class_names, run_dir / 'confusion.png')
  rundir.write_whole(run_dir / 'report.json', json.dumps(report, indent=1))
  number = lambda x: 'n/a' if x is None else f'{x:.3f}'
  rows = '\n'.join(f'| {c} | {number(report["per_class_accuracy"][c])} | '
                   f'{number(report["per_class_precision"][c])} | '
                   f'{number(report["per_class_f1"][c])} | '
                   f'{number(report["per_class_roc_auc"][c])} |' for c in class_names)
  gradcams = sorted((run_dir / 'gradcam').glob('*.png')) if (run_dir / 'gradcam').exists() else []
  md = [f'# {extra.get("run", run_dir.name)}: test report', '',
        f'{report["num_images"]} test images, accuracy **{report["accuracy"]:.4f}**, '
        f'balanced accuracy {report["balanced_accuracy"]:.4f}, macro F1 '
        f'{report["macro_f1"]:.4f}, loss {report["loss"]:.4f} (weights of epoch '
        f'{extra.get("epoch")}, {extra.get("checkpoint", "last")}).', '',
        '| class | accuracy (recall) | precision | F1 | ROC AUC |', '|---|---|---|---|---|', rows,
        '',
        '![curves](curves.png)', '', '![ROC](roc.png) ![confusion matrix](confusion.png)', '']
  md += [f'![Grad-CAM](gradcam/{p.name})' for p in gradcams]
  (run_dir / 'report.md').write_text('\n'.join(md) + '\n')
  return report
