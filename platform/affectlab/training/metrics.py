"""Evaluation metrics, flat and sequence-aware (valid steps only).

Classification: UAR (unweighted average recall = macro recall), F1, accuracy, confusion
matrices. Regression: CCC, MSE, MAE. Transcripts / token sequences: WER, CER (jiwer).

Sequence helpers take (B, T) predictions, targets and a (B, T) mask and use the valid steps
only: seed 003's UAR is "calculated on the real length of the sequence". Over a dataset,
accumulate a :class:`ConfusionAccumulator` batch by batch (or concatenate valid steps) and
compute once: UAR is not an average of per-batch UARs.

Edge cases (defined here, tested):

* UAR averages the recall of the classes that occur in ``y_true`` (a class with no true
  sample has no recall). With a single class present, UAR is that class's recall. This is
  sklearn's ``balanced_accuracy_score``. With no samples at all it is NaN.
* F1 is 0 when it is undefined (no true and no predicted positives: sklearn's
  ``zero_division=0``); accuracy of nothing is NaN.
* CCC of two constant, equal sequences is 1 (perfect agreement); CCC of nothing is NaN.
* WER/CER need a non-empty reference text.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from numpy.typing import ArrayLike

from affectlab.errors import DatasetError

__all__ = [
    "ConfusionAccumulator",
    "accuracy",
    "binary_sequence_metrics",
    "ccc",
    "cer",
    "confusion",
    "f1",
    "mae",
    "mse",
    "token_error_rate",
    "uar",
    "uar_from_confusion",
    "valid_steps",
    "wer",
]


def _np(x: ArrayLike | torch.Tensor) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    return np.asarray(x)


def valid_steps(values: ArrayLike | torch.Tensor, mask: ArrayLike | torch.Tensor) -> np.ndarray:
    """The entries of ``values`` (B, T, ...) at valid steps of ``mask`` (B, T), flattened (N, ...).

    Raises:
        DatasetError: Shapes do not match.
    """
    arr, m = _np(values), _np(mask).astype(bool)
    if arr.shape[: m.ndim] != m.shape:
        raise DatasetError(f"values of shape {arr.shape} do not match mask of shape {m.shape}")
    return arr[m]


def confusion(y_true: ArrayLike, y_pred: ArrayLike, *, labels: Sequence[int] | None = None) -> np.ndarray:
    """Confusion matrix ``C[i, j]`` = samples of true class ``labels[i]`` predicted ``labels[j]``.

    ``labels`` defaults to the sorted union of both inputs.
    """
    from sklearn.metrics import confusion_matrix

    true, pred = _np(y_true).ravel(), _np(y_pred).ravel()
    if labels is None:
        labels = np.union1d(true, pred).tolist()
    if not len(labels):
        return np.zeros((0, 0), dtype=np.int64)
    return confusion_matrix(true, pred, labels=list(labels))


def uar_from_confusion(matrix: np.ndarray) -> float:
    """Mean recall over the classes (rows) with at least one true sample; NaN if none."""
    support = matrix.sum(axis=1)
    present = support > 0
    if not present.any():
        return float("nan")
    return float(np.mean(np.diag(matrix)[present] / support[present]))


def uar(y_true: ArrayLike, y_pred: ArrayLike, *, labels: Sequence[int] | None = None) -> float:
    """Unweighted average recall (macro recall over the classes present in ``y_true``)."""
    return uar_from_confusion(confusion(y_true, y_pred, labels=labels))


def f1(y_true: ArrayLike, y_pred: ArrayLike, *, average: str = "binary", pos_label: int = 1,
       labels: Sequence[int] | None = None) -> float:
    """F1 score (sklearn ``f1_score`` with ``zero_division=0``); ``average``: binary or macro."""
    from sklearn.metrics import f1_score

    true, pred = _np(y_true).ravel(), _np(y_pred).ravel()
    if true.size == 0:
        return float("nan")
    return float(f1_score(true, pred, average=average, pos_label=pos_label, labels=labels, zero_division=0))


def accuracy(y_true: ArrayLike, y_pred: ArrayLike) -> float:
    """Fraction of equal entries (NaN when empty)."""
    true, pred = _np(y_true).ravel(), _np(y_pred).ravel()
    return float(np.mean(true == pred)) if true.size else float("nan")


def ccc(y_true: ArrayLike, y_pred: ArrayLike) -> float:
    """Lin's concordance correlation coefficient with population (biased) moments."""
    x, y = _np(y_true).astype(np.float64).ravel(), _np(y_pred).astype(np.float64).ravel()
    if x.size == 0:
        return float("nan")
    mx, my = x.mean(), y.mean()
    cov = np.mean((x - mx) * (y - my))
    denom = x.var() + y.var() + (mx - my) ** 2
    if denom == 0.0:
        return 1.0  # both constant and equal
    return float(2.0 * cov / denom)


def mse(y_true: ArrayLike, y_pred: ArrayLike) -> float:
    """Mean squared error (NaN when empty)."""
    x, y = _np(y_true).astype(np.float64).ravel(), _np(y_pred).astype(np.float64).ravel()
    return float(np.mean((x - y) ** 2)) if x.size else float("nan")


def mae(y_true: ArrayLike, y_pred: ArrayLike) -> float:
    """Mean absolute error (NaN when empty)."""
    x, y = _np(y_true).astype(np.float64).ravel(), _np(y_pred).astype(np.float64).ravel()
    return float(np.mean(np.abs(x - y))) if x.size else float("nan")


def _texts(references: str | Sequence[str], hypotheses: str | Sequence[str]) -> tuple[list[str], list[str]]:
    refs = [references] if isinstance(references, str) else list(references)
    hyps = [hypotheses] if isinstance(hypotheses, str) else list(hypotheses)
    if not refs or any(not r.strip() for r in refs):
        raise DatasetError("WER/CER need at least one reference and no empty reference text")
    if len(refs) != len(hyps):
        raise DatasetError(f"{len(refs)} reference(s) but {len(hyps)} hypothesis text(s)")
    return refs, hyps


def wer(references: str | Sequence[str], hypotheses: str | Sequence[str]) -> float:
    """Word error rate over a corpus (total edits / total reference words), via jiwer."""
    import jiwer

    return float(jiwer.wer(*_texts(references, hypotheses)))


def cer(references: str | Sequence[str], hypotheses: str | Sequence[str]) -> float:
    """Character error rate over a corpus, via jiwer."""
    import jiwer

    return float(jiwer.cer(*_texts(references, hypotheses)))


def token_error_rate(references: Sequence[Sequence[int]], hypotheses: Sequence[Sequence[int]]) -> float:
    """WER where the "words" are token ids (e.g. quantized AU intensities)."""
    refs = [" ".join(f"t{t}" for t in seq) for seq in references]
    hyps = [" ".join(f"t{t}" for t in seq) for seq in hypotheses]
    return wer(refs, hyps)


class ConfusionAccumulator:
    """Confusion counts over the valid steps of many batches (and workers, via :meth:`merge`).

    Args:
        num_classes: K; labels must be 0..K-1.
    """

    def __init__(self, num_classes: int = 2) -> None:
        self.num_classes = num_classes
        self.matrix = np.zeros((num_classes, num_classes), dtype=np.int64)

    def update(self, predictions: Any, targets: Any, mask: Any | None = None) -> None:
        """Add (B, T) predicted and true labels at the valid steps of ``mask`` (all if None)."""
        pred, true = _np(predictions), _np(targets)
        if mask is not None:
            pred, true = valid_steps(pred, mask), valid_steps(true, mask)
        self.matrix += confusion(true, pred, labels=range(self.num_classes))

    def merge(self, other: ConfusionAccumulator) -> None:
        """Add another accumulator's counts."""
        self.matrix += other.matrix

    def compute(self) -> dict[str, float]:
        """``uar``, ``accuracy``, ``f1_macro`` and, for two classes, ``f1`` (positive class 1)."""
        cm = self.matrix
        total = cm.sum()
        tp = np.diag(cm).astype(np.float64)
        denom = cm.sum(axis=0) + cm.sum(axis=1)
        per_class = np.divide(2 * tp, denom, out=np.zeros_like(tp), where=denom > 0)
        out = {
            "uar": uar_from_confusion(cm),
            "accuracy": float(tp.sum() / total) if total else float("nan"),
            "f1_macro": float(per_class.mean()) if total else float("nan"),
        }
        if self.num_classes == 2:
            out["f1"] = float(per_class[1]) if total else float("nan")
        return out


def binary_sequence_metrics(
    logits: Any, targets: Any, mask: Any, *, threshold: float = 0.5
) -> dict[str, float]:
    """UAR, accuracy and F1 of per-step binary logits (B, T) over the valid steps.

    A step is predicted positive when ``sigmoid(logit) > threshold``.
    """
    probs = torch.sigmoid(torch.as_tensor(_np(logits), dtype=torch.float64)).numpy()
    acc = ConfusionAccumulator(2)
    acc.update((probs > threshold).astype(np.int64), _np(targets).astype(np.int64), mask)
    return acc.compute()
