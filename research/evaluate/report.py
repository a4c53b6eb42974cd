"""Test-split metrics (scikit-learn) written as report.json, report.md and PNGs."""
import json
from pathlib import Path

import numpy as np
from sklearn.metrics import accuracy_score, confusion_matrix, log_loss, roc_auc_score

from research.evaluate import plots


def metrics(labels: np.ndarray, probs: np.ndarray, class_names) -> dict:
  """Accuracy, loss, per-class accuracy (recall), per-class one-vs-rest ROC AUC, confusion."""
  k = len(class_names)
  preds = probs.argmax(-1)
  matrix = confusion_matrix(labels, preds, labels=range(k))
  auc = {}
  for c in range(k):
    present = 0 < (labels == c).sum() < len(labels)
    auc[class_names[c]] = float(roc_auc_score(labels == c, probs[:, c])) if present else None
  return {
      'num_images': int(len(labels)),
      'accuracy': float(accuracy_score(labels, preds)),
      'loss': float(log_loss(labels, np.clip(probs, 1e-7, 1), labels=range(k))),
      'per_class_accuracy': {class_names[c]: float(matrix[c, c] / max(1, matrix[c].sum()))
                             for c in range(k)},
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
  (run_dir / 'report.json').write_text(json.dumps(report, indent=1))
  number = lambda x: 'n/a' if x is None else f'{x:.3f}'
  rows = '\n'.join(f'| {c} | {number(report["per_class_accuracy"][c])} | '
                   f'{number(report["per_class_roc_auc"][c])} |' for c in class_names)
  gradcams = sorted((run_dir / 'gradcam').glob('*.png')) if (run_dir / 'gradcam').exists() else []
  md = [f'# {extra.get("run", run_dir.name)}: test report', '',
        f'{report["num_images"]} test images, accuracy **{report["accuracy"]:.4f}**, '
        f'loss {report["loss"]:.4f} (checkpoint of epoch {extra.get("epoch")}).', '',
        '| class | accuracy | ROC AUC |', '|---|---|---|', rows, '',
        '![curves](curves.png)', '', '![ROC](roc.png) ![confusion matrix](confusion.png)', '']
  md += [f'![Grad-CAM](gradcam/{p.name})' for p in gradcams]
  (run_dir / 'report.md').write_text('\n'.join(md) + '\n')
  return report
