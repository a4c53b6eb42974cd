"""Test-split metrics (scikit-learn) with their intervals and calibration (research.evaluate.
stats), written as report.json, report.md, PNGs and the per-image predictions that paired
comparisons read (test_predictions.npz)."""
import io
import json
from pathlib import Path

import numpy as np
from sklearn.metrics import (accuracy_score, balanced_accuracy_score, confusion_matrix,
                             precision_recall_fscore_support, roc_auc_score)

from research import rundir
from research.evaluate import plots, stats

PREDICTIONS = 'test_predictions.npz'


def balanced_accuracy(labels: np.ndarray, preds: np.ndarray) -> float:
  """The mean of the per-class accuracies (recalls): a model that ignores a rare class
  cannot hide behind the common ones."""
  return float(balanced_accuracy_score(labels, preds))


def metrics(labels: np.ndarray, probs: np.ndarray, class_names) -> dict:
  """Accuracy, balanced (macro-averaged) accuracy, macro F1, loss, ROC AUC, per-class
  accuracy (recall), precision, F1 and one-vs-rest ROC AUC, confusion matrix; their 95%
  intervals (stats.intervals); calibration (ECE, NLL, Brier); the smallest difference a
  paired test on these images could detect."""
  k = len(class_names)
  preds = probs.argmax(-1)
  matrix = confusion_matrix(labels, preds, labels=range(k))
  precision, recall, f1, _ = precision_recall_fscore_support(labels, preds, labels=range(k),
                                                             zero_division=0)
  auc = {}
  for c in range(k):
    present = 0 < (labels == c).sum() < len(labels)
    auc[class_names[c]] = float(roc_auc_score(labels == c, probs[:, c])) if present else None
  accuracy = float(accuracy_score(labels, preds))
  return {
      'num_images': int(len(labels)),
      'accuracy': accuracy,
      'balanced_accuracy': balanced_accuracy(labels, preds),
      'macro_f1': float(f1.mean()),
      'loss': stats.nll(labels, probs),
      'roc_auc': stats.roc_auc(labels, probs),
      'per_class_accuracy': {class_names[c]: float(recall[c]) for c in range(k)},
      'per_class_precision': {class_names[c]: float(precision[c]) for c in range(k)},
      'per_class_f1': {class_names[c]: float(f1[c]) for c in range(k)},
      'per_class_roc_auc': auc,
      'confusion_matrix': matrix.tolist(),
      'class_names': list(class_names),
      'intervals': stats.intervals(labels, probs, class_names),
      'interval_method': {
          'confidence': stats.CONFIDENCE,
          'accuracy': 'Wilson score interval (accuracy and per-class accuracy)',
          'bootstrap': f'percentile bootstrap over test images, {stats.RESAMPLES} resamples, '
                       f'seed {stats.SEED} (balanced accuracy, macro F1, ROC AUC)'},
      'detectable_difference': detectable(len(labels), accuracy),
  }


def detectable(n: int, accuracy: float) -> dict:
  """The smallest accuracy difference a paired test on these `n` images detects (80% power,
  alpha 0.05) against a rival that disagrees with this model on as many images as this one
  gets wrong (no rival is known to a single run; `compare` uses the observed rate)."""
  rate = 1 - accuracy
  return {'difference': stats.detectable_difference(n, rate), 'disagreement': rate,
          'assumed': 'a rival model disagrees on as many images as this one gets wrong',
          'power': stats.POWER, 'alpha': stats.ALPHA}


def calibration(labels: np.ndarray, logits: np.ndarray, probs: np.ndarray,
                temperature: dict | None, applied: bool) -> tuple[dict, dict]:
  """(report['calibration'], reliability bins per curve for the plot): ECE, NLL and Brier of
  the reported probabilities, and of the unscaled and temperature-scaled ones."""
  unscaled = stats.scaled_probabilities(logits) if applied else probs
  curves = {'as trained': stats.reliability(labels, unscaled)}
  result = {'bins': stats.BINS, 'binning': 'top-label confidence, equal width',
            'unscaled': stats.calibration(labels, unscaled), 'temperature': None,
            'applied': bool(applied and temperature)}
  if temperature:
    scaled = stats.scaled_probabilities(logits, temperature['temperature'])
    curves[f'temperature {temperature["temperature"]:.3f}'] = stats.reliability(labels, scaled)
    result.update(temperature=temperature['temperature'], fitted_on=temperature,
                  scaled=stats.calibration(labels, scaled))
  return {**result, **stats.calibration(labels, probs)}, curves


def save_predictions(run_dir: Path, records, labels, logits, probs) -> None:
  """Every test image's path, label, logits and reported probabilities (read by compare)."""
  buffer = io.BytesIO()
  np.savez(buffer, paths=np.asarray([str(p) for p, _ in records]), labels=labels,
           logits=logits, probs=probs)
  rundir.write_whole(run_dir / PREDICTIONS, buffer.getvalue())


def load_predictions(run_dir: Path) -> dict | None:
  """A run's test predictions ({'paths', 'labels', 'logits', 'probs'}), None if it has none."""
  path = Path(run_dir) / PREDICTIONS
  if not path.exists():
    return None
  with np.load(path) as f:
    return {k: f[k] for k in f.files}


def interval(pair, digits: int = 3) -> str:
  low, high = pair
  return 'n/a' if low is None else f'{low:.{digits}f}–{high:.{digits}f}'


def detectable_text(report: dict) -> str:
  d = report['detectable_difference']
  found = (f'**{d["difference"]:.3f}**' if d['difference'] is not None
           else 'none (too few images)')
  return (f'Smallest accuracy difference these {report["num_images"]} test images could '
          f'detect: {found} (paired test, {d["power"]:.0%} power, alpha {d["alpha"]}, '
          f'assuming {d["assumed"]}: disagreement {d["disagreement"]:.3f}). Two runs closer '
          f'than that get "no detectable difference" from `./run.sh compare`.')


def calibration_text(report: dict) -> list[str]:
  c = report['calibration']
  rows = [('as trained', c['unscaled'])]
  if c['temperature'] is not None:
    rows.append((f'temperature {c["temperature"]:.3f}', c['scaled']))
  lines = ['## Calibration', '',
           f'Expected calibration error over {c["bins"]} equal-width bins of the top-label '
           f'confidence, negative log-likelihood (natural log) and Brier score (half the summed '
           f'squared error over classes), on the test split:', '',
           '| probabilities | ECE | NLL | Brier |', '|---|---|---|---|']
  lines += [f'| {name} | {v["ece"]:.4f} | {v["nll"]:.4f} | {v["brier"]:.4f} |'
            for name, v in rows]
  lines.append('')
  if c['temperature'] is None:
    lines.append('No temperature: the run has no validation split to fit one on.')
  else:
    f = c['fitted_on']
    lines.append(f'The temperature was fitted on the validation split ({f["val_images"]} '
                 f'images; NLL {f["val_nll_before"]:.4f} -> {f["val_nll_after"]:.4f}); it '
                 f'divides the logits and changes no prediction. This report '
                 + ('**uses** it (config evaluation.temperature_scaling).' if c['applied'] else
                    'does not use it (set --config.evaluation.temperature_scaling=True to '
                    'have eval and predict use it).'))
  return lines + ['', '![reliability diagram](reliability.png)', '']


def markdown(report: dict, extra: dict, run_dir: Path) -> str:
  class_names, ci = report['class_names'], report['intervals']
  number = lambda x: 'n/a' if x is None else f'{x:.3f}'
  rows = '\n'.join(f'| {c} | {number(report["per_class_accuracy"][c])} '
                   f'({interval(ci["per_class_accuracy"][c])}) | '
                   f'{number(report["per_class_precision"][c])} | '
                   f'{number(report["per_class_f1"][c])} | '
                   f'{number(report["per_class_roc_auc"][c])} |' for c in class_names)
  gradcams = sorted((run_dir / 'gradcam').glob('*.png')) if (run_dir / 'gradcam').exists() else []
  method = report['interval_method']
  md = [f'# {extra.get("run", run_dir.name)}: test report', '',
        f'{report["num_images"]} test images (weights of epoch {extra.get("epoch")}, '
        f'{extra.get("checkpoint", "last")}); 95% intervals in brackets:', '',
        f'- accuracy **{report["accuracy"]:.4f}** [{interval(ci["accuracy"])}]',
        f'- balanced accuracy {report["balanced_accuracy"]:.4f} '
        f'[{interval(ci["balanced_accuracy"])}]',
        f'- macro F1 {report["macro_f1"]:.4f} [{interval(ci["macro_f1"])}]',
        f'- ROC AUC {number(report["roc_auc"])} [{interval(ci["roc_auc"])}]',
        f'- loss (NLL) {report["loss"]:.4f}', '',
        f'Intervals: {method["accuracy"]}; {method["bootstrap"]}.', '',
        detectable_text(report), '',
        '| class | accuracy (recall) [95%] | precision | F1 | ROC AUC |', '|---|---|---|---|---|',
        rows, '', *calibration_text(report),
        '![curves](curves.png)', '', '![ROC](roc.png) ![confusion matrix](confusion.png)', '']
  md += [f'![Grad-CAM](gradcam/{p.name})' for p in gradcams]
  return '\n'.join(md) + '\n'


def build(records, logits: np.ndarray, probs: np.ndarray, class_names, extra: dict,
          temperature: dict | None = None, applied: bool = False) -> tuple[dict, dict]:
  """(the report dict, the reliability bins to draw) for the test `records` ((path, label)
  pairs) and the model's `logits` and reported `probs` on them."""
  labels = np.asarray([label for _, label in records], np.int32)
  report = {**extra, **metrics(labels, probs, class_names)}
  report['calibration'], curves = calibration(labels, logits, probs, temperature, applied)
  return report, curves


def write(run_dir: Path, records, logits: np.ndarray, probs: np.ndarray, class_names,
          extra: dict, temperature: dict | None = None, applied: bool = False) -> dict:
  """Writes the report files (`build`'s report) and the per-image predictions; returns the
  report dict."""
  report, curves = build(records, logits, probs, class_names, extra, temperature, applied)
  labels = np.asarray([label for _, label in records], np.int32)
  plots.roc(labels, probs, class_names, run_dir / 'roc.png')
  plots.confusion(np.asarray(report['confusion_matrix']), class_names, run_dir / 'confusion.png')
  plots.reliability(curves, run_dir / 'reliability.png')
  save_predictions(run_dir, records, labels, logits, probs)
  rundir.write_whole(run_dir / 'report.json', json.dumps(report, indent=1))
  (run_dir / 'report.md').write_text(markdown(report, extra, run_dir))
  return report
