"""PNG figures: training curves, ROC curves, confusion matrix, runs compared, learning curves,
a tune's trials and parameter importances."""
from pathlib import Path

import matplotlib

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # pylint: disable=wrong-import-position
import numpy as np  # pylint: disable=wrong-import-position
from matplotlib.ticker import MaxNLocator  # pylint: disable=wrong-import-position
from sklearn.metrics import ConfusionMatrixDisplay, RocCurveDisplay  # pylint: disable=wrong-import-position


def curves(history: list[dict], path: Path) -> None:
  epochs = [r['epoch'] for r in history]
  fig, axes = plt.subplots(1, 2, figsize=(10, 4))
  for ax, metric in zip(axes, ('loss', 'accuracy')):
    for split in ('train', 'val'):
      if f'{split}_{metric}' not in history[0]:
        continue  # no validation split
      ax.plot(epochs, [r[f'{split}_{metric}'] for r in history], 'o-', label=split)
    ax.set(xlabel='epoch', ylabel=metric, title=metric)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(alpha=0.3)
    ax.legend()
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)


def roc(labels: np.ndarray, probs: np.ndarray, class_names, path: Path) -> None:
  """One-vs-rest ROC curve per class (one curve for a binary task)."""
  classes = [1] if len(class_names) == 2 else range(len(class_names))
  fig, ax = plt.subplots(figsize=(5, 5))
  for c in classes:
    if 0 < (labels == c).sum() < len(labels):
      RocCurveDisplay.from_predictions(labels == c, probs[:, c], name=class_names[c], ax=ax)
  ax.plot([0, 1], [0, 1], 'k--', lw=0.8)
  ax.set(title='ROC (test split)')
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)


def confusion(matrix: np.ndarray, class_names, path: Path) -> None:
  fig, ax = plt.subplots(figsize=(1.2 * len(class_names) + 3, 1.2 * len(class_names) + 2.5))
  ConfusionMatrixDisplay(matrix, display_labels=class_names).plot(ax=ax, colorbar=False,
                                                                  cmap='Blues')
  ax.set(title='confusion matrix (test split)')
  plt.setp(ax.get_xticklabels(), rotation=30, ha='right')
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)


def comparison(names: list[str], test_accuracy: list[float], histories: list[list[dict]],
               path: Path) -> None:
  """Runs at a glance: test accuracy per run, and their accuracy and loss curves overlaid
  (validation solid, training dashed)."""
  fig, axes = plt.subplots(1, 3, figsize=(16, 4.8))
  colors = plt.cm.tab10(np.arange(len(names)) % 10)
  axes[0].barh(range(len(names)), test_accuracy, color=colors)
  axes[0].set_yticks(range(len(names)), names, fontsize=8)
  axes[0].invert_yaxis()
  for i, accuracy in enumerate(test_accuracy):
    axes[0].text(accuracy, i, f' {accuracy:.3f}', va='center', fontsize=8)
  axes[0].set(xlabel='test accuracy', xlim=(0, 1.1), title='test accuracy')
  for ax, metric in zip(axes[1:], ('accuracy', 'loss')):
    for name, history, color in zip(names, histories, colors):
      epochs = [r['epoch'] for r in history]
      ax.plot(epochs, [r[f'train_{metric}'] for r in history], '--', color=color, alpha=0.6)
      if f'val_{metric}' in history[0]:
        ax.plot(epochs, [r[f'val_{metric}'] for r in history], 'o-', color=color, label=name)
    ax.set(xlabel='epoch', ylabel=metric, title=f'{metric} (val solid, train dashed)')
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.grid(alpha=0.3)
  axes[1].legend(fontsize=7)
  fig.tight_layout()
  fig.savefig(path, dpi=90)
  plt.close(fig)


def learning_curves(curves: dict, path: Path) -> None:
  """Validation accuracy against train images per class (log x), per model: the measured
  means with std error bars, the fitted curve solid over the measured range and dashed on
  to 4× the data. `curves`: {model: ((n, mean, std) arrays, fitted: n -> accuracy)}."""
  fig, ax = plt.subplots(figsize=(7, 4.8))
  for (name, ((n, mean, std), fitted)), color in zip(curves.items(), plt.cm.tab10.colors * 9):
    ax.errorbar(n, mean, std, fmt='o', color=color, capsize=3, label=name)
    inside, beyond = np.geomspace(n.min(), n.max(), 100), np.geomspace(n.max(), 4 * n.max(), 50)
    ax.plot(inside, fitted(inside), '-', color=color)
    ax.plot(beyond, fitted(beyond), '--', color=color)
  ax.set_xscale('log')
  ax.set(xlabel='train images per class', ylabel='val accuracy',
         title='learning curve (fit solid, extrapolation to 4× dashed)')
  ax.grid(alpha=0.3, which='both')
  ax.legend(fontsize=8)
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)


def tuning(trials: list[int], values: list, states: list[str], metric: str, maximize: bool,
           path: Path) -> None:
  """A tune's validation metric per trial (complete: dots, pruned: crosses at their best
  epoch's value) and the running best of the complete trials."""
  fig, ax = plt.subplots(figsize=(7, 4.2))
  for state, marker, color in (('complete', 'o', 'tab:blue'), ('pruned', 'x', 'tab:gray')):
    points = [(t, v) for t, v, s in zip(trials, values, states) if s == state and v is not None]
    if points:
      ax.plot(*zip(*points), marker, color=color, label=state, linestyle='none')
  complete = [(t, v) for t, v, s in zip(trials, values, states) if s == 'complete']
  if complete:
    best = (np.maximum if maximize else np.minimum).accumulate([v for _, v in complete])
    ax.step([t for t, _ in complete], best, where='post', color='tab:red', label='best so far')
  ax.set(xlabel='trial', ylabel=metric, title=f'tune: {metric} by trial')
  ax.xaxis.set_major_locator(MaxNLocator(integer=True))
  ax.grid(alpha=0.3)
  ax.legend(fontsize=8)
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)


def importance(importances: dict, path: Path) -> None:
  """Parameter importances (fractions of the metric's variance), largest on top."""
  fig, ax = plt.subplots(figsize=(7, 0.5 * len(importances) + 1.5))
  names = list(importances)
  ax.barh(range(len(names)), [importances[n] for n in names], color='tab:blue')
  ax.set_yticks(range(len(names)), names, fontsize=8)
  ax.invert_yaxis()
  ax.set(xlabel='importance (fANOVA)', title='what the validation metric depends on')
  ax.grid(alpha=0.3, axis='x')
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)


def reliability(curves: dict, path: Path) -> None:
  """Reliability diagram: per confidence bin, its accuracy (bars), the gap to its mean
  confidence (hatched; a calibrated model has none, its bars on the diagonal), and below the
  share of images per bin; one column per curve (`curves`: {name: stats.reliability(...)})."""
  fig, axes = plt.subplots(2, len(curves), figsize=(4.5 * len(curves), 6), squeeze=False,
                           gridspec_kw={'height_ratios': (3, 1)}, sharex=True)
  for (name, r), top, bottom in zip(curves.items(), axes[0], axes[1]):
    bins = r['bins']
    edges = np.linspace(0, 1, bins + 1)
    accuracy = np.nan_to_num(np.asarray(r['accuracy'], float))
    confidence = np.where(np.asarray(r['count']) > 0,
                          np.nan_to_num(np.asarray(r['confidence'], float)), accuracy)
    top.bar(edges[:-1], accuracy, width=1 / bins, align='edge', edgecolor='k', lw=0.5,
            color='tab:blue', label='accuracy')
    top.plot([0, 1], [0, 1], 'k--', lw=0.8, label='calibrated')
    top.bar(edges[:-1], confidence - accuracy, bottom=accuracy, width=1 / bins, align='edge',
            color='tab:red', alpha=0.3, edgecolor='tab:red', hatch='//', lw=0.5,
            label='gap to mean confidence')
    top.set(ylim=(0, 1), ylabel='accuracy', title=f'{name}: ECE {r["ece"]:.3f}')
    top.legend(fontsize=7, loc='upper left')
    bottom.bar(edges[:-1], np.asarray(r['count']) / max(sum(r['count']), 1), width=1 / bins,
               align='edge', color='tab:gray')
    bottom.set(xlim=(0, 1), xlabel=f'confidence ({bins} bins)', ylabel='share of images')
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)
