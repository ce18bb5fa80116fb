"""Evaluation metrics, flat and sequence-aware (valid steps only).

Classification: UAR (unweighted average recall = macro recall), F1, accuracy, confusion
matrices. Regression: CCC, MSE, MAE. Transcripts / token sequences: WER, CER (jiwer).

Sequence helpers take (B, T) predictions, targets and a (B, T) mask and use the valid steps
only: seed 003's UAR is "calculated on the real length of the sequence". Over a dataset,
accumulate a :class:`ConfusionAccumulator` batch by batch (or concatenate valid steps) and
compute once: UAR is not an average of per-batch UARs.

Conventions (each one tested against scikit-learn or a hand computation in
``tests/unit/training/test_metrics.py``):

* Inputs are flattened; ``y_true`` and ``y_pred`` must hold the same number of values
  (:class:`~affectlab.errors.DatasetError` otherwise; numpy would silently broadcast).
* Classification metrics ignore steps whose *true* label is negative: -1 marks an unannotated
  step, which no metric scores. Class labels are otherwise non-negative integers.
* UAR averages the recall of the classes that occur in ``y_true``; a class that is only
  predicted has no recall and is not averaged (its false positives lower the other classes'
  recall). This is sklearn's ``balanced_accuracy_score``; sklearn's
  ``recall_score(average="macro")`` differs exactly there (it scores a predicted-only class 0).
  With a single class present UAR is that class's recall (the CV tables flag such folds).
  With no labelled sample it is NaN.
* F1 is sklearn's ``f1_score`` with ``zero_division=0``. Binary F1 scores class ``pos_label``
  (1) and is 0 when it is undefined (no true and no predicted positive). Macro F1 averages the
  per-class F1 over the classes that occur in ``y_true`` *or* ``y_pred`` (sklearn's default
  label set): a class absent from both is not averaged, a class present in only one of them
  scores 0. Passing ``labels`` to :func:`f1` averages over exactly those classes instead (an
  absent one then scores 0). :class:`ConfusionAccumulator` follows the default rule. F1 of
  nothing is NaN, as is accuracy of nothing.
* CCC is Lin's concordance correlation with population (1/N) moments; two constant, equal
  sequences score 1, two constant, different ones 0; CCC of nothing is NaN.
* WER / CER are corpus-level by default (total edits / total reference words or characters,
  as lip-reading papers report them); ``average="utterance"`` gives the mean of per-utterance
  rates instead. No case or punctuation normalisation is applied beyond stripping and
  collapsing whitespace for words (CER counts inner spaces as characters). An empty
  hypothesis is all deletions (rate 1); an empty reference is an error (its rate is undefined).
  Rates can exceed 1 (insertions).
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
    "f1_macro_from_confusion",
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


def _pair(y_true: ArrayLike | torch.Tensor, y_pred: ArrayLike | torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Both inputs flattened; raises unless they hold the same number of values."""
    true, pred = _np(y_true).ravel(), _np(y_pred).ravel()
    if true.size != pred.size:
        raise DatasetError(f"y_true has {true.size} values but y_pred has {pred.size}")
    return true, pred


def _labelled(y_true: ArrayLike | torch.Tensor, y_pred: ArrayLike | torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Class labels at the annotated steps (true label >= 0), flattened."""
    true, pred = _pair(y_true, y_pred)
    keep = true >= 0
    return true[keep], pred[keep]


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

    Steps with a negative true label (unannotated) are left out. ``labels`` defaults to the
    sorted union of both inputs.

    Raises:
        DatasetError: Inputs of different sizes, or a value outside the given ``labels``
            (sklearn would drop such samples silently).
    """
    true, pred = _labelled(y_true, y_pred)
    if labels is None:
        labels = np.union1d(true, pred).tolist()
    else:
        outside = sorted(set(np.union1d(true, pred).tolist()) - set(labels))
        if outside:
            raise DatasetError(f"label value(s) {outside} are not among the classes {list(labels)}")
    # counted here rather than with sklearn's confusion_matrix (same numbers, tested), which
    # warns on every single-class input: a single-class subject is a case we flag, not an accident
    classes = np.asarray(list(labels))
    k = classes.size
    if k == 0:
        return np.zeros((0, 0), dtype=np.int64)
    order = np.argsort(classes, kind="stable")
    row = order[np.searchsorted(classes[order], true)]
    col = order[np.searchsorted(classes[order], pred)]
    return np.bincount(row * k + col, minlength=k * k).reshape(k, k).astype(np.int64)


def uar_from_confusion(matrix: np.ndarray) -> float:
    """Mean recall over the classes (rows) with at least one true sample; NaN if none."""
    support = matrix.sum(axis=1)
    present = support > 0
    if not present.any():
        return float("nan")
    return float(np.mean(np.diag(matrix)[present] / support[present]))


def _f1_per_class(matrix: np.ndarray) -> np.ndarray:
    """F1 of each class of a confusion matrix (0 where tp + fp + fn = 0)."""
    tp = np.diag(matrix).astype(np.float64)
    denom = matrix.sum(axis=0) + matrix.sum(axis=1)  # 2 tp + fp + fn
    return np.divide(2 * tp, denom, out=np.zeros_like(tp), where=denom > 0)


def f1_macro_from_confusion(matrix: np.ndarray) -> float:
    """Mean F1 over the classes that occur as a true or a predicted label; NaN if none."""
    occurs = (matrix.sum(axis=0) + matrix.sum(axis=1)) > 0
    if not occurs.any():
        return float("nan")
    return float(_f1_per_class(matrix)[occurs].mean())


def uar(y_true: ArrayLike, y_pred: ArrayLike, *, labels: Sequence[int] | None = None) -> float:
    """Unweighted average recall (macro recall over the classes present in ``y_true``)."""
    return uar_from_confusion(confusion(y_true, y_pred, labels=labels))


F1_AVERAGES = ("binary", "macro")


def f1(y_true: ArrayLike, y_pred: ArrayLike, *, average: str = "binary", pos_label: int = 1,
       labels: Sequence[int] | None = None) -> float:
    """F1 score (sklearn ``f1_score`` with ``zero_division=0``; see the module's conventions).

    Args:
        y_true, y_pred: Class labels (negative true labels are left out).
        average: ``binary`` (F1 of ``pos_label``) or ``macro`` (mean over classes).
        pos_label: The positive class of binary F1.
        labels: Classes to average over (macro; default: those in either input).

    Raises:
        ValueError: An unknown ``average``.
        DatasetError: Inputs of different sizes.
    """
    from sklearn.metrics import f1_score

    if average not in F1_AVERAGES:
        raise ValueError(f"average={average!r}: choose from {', '.join(F1_AVERAGES)}")
    true, pred = _labelled(y_true, y_pred)
    if true.size == 0:
        return float("nan")
    return float(f1_score(true, pred, average=average, pos_label=pos_label, labels=labels, zero_division=0))


def accuracy(y_true: ArrayLike, y_pred: ArrayLike) -> float:
    """Fraction of equal entries over the annotated steps (NaN when there are none)."""
    true, pred = _labelled(y_true, y_pred)
    return float(np.mean(true == pred)) if true.size else float("nan")


def _values(y_true: ArrayLike, y_pred: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    true, pred = _pair(y_true, y_pred)
    return true.astype(np.float64), pred.astype(np.float64)


def ccc(y_true: ArrayLike, y_pred: ArrayLike) -> float:
    """Lin's concordance correlation coefficient with population (biased) moments.

    ``2 cov(x, y) / (var(x) + var(y) + (mean(x) - mean(y))**2)``; 1 for two constant, equal
    inputs (perfect agreement), NaN for empty ones.
    """
    x, y = _values(y_true, y_pred)
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
    x, y = _values(y_true, y_pred)
    return float(np.mean((x - y) ** 2)) if x.size else float("nan")


def mae(y_true: ArrayLike, y_pred: ArrayLike) -> float:
    """Mean absolute error (NaN when empty)."""
    x, y = _values(y_true, y_pred)
    return float(np.mean(np.abs(x - y))) if x.size else float("nan")


ERROR_RATE_AVERAGES = ("corpus", "utterance")


def _texts(references: str | Sequence[str], hypotheses: str | Sequence[str],
           average: str) -> tuple[list[str], list[str]]:
    if average not in ERROR_RATE_AVERAGES:
        raise ValueError(f"average={average!r}: choose from {', '.join(ERROR_RATE_AVERAGES)}")
    refs = [references] if isinstance(references, str) else list(references)
    hyps = [hypotheses] if isinstance(hypotheses, str) else list(hypotheses)
    if not refs:
        raise DatasetError("WER/CER need at least one reference text")
    empty = [i for i, r in enumerate(refs) if not r.strip()]
    if empty:
        raise DatasetError(f"WER/CER: empty reference text at position(s) {empty[:10]} (the rate is undefined)")
    if len(refs) != len(hyps):
        raise DatasetError(f"{len(refs)} reference(s) but {len(hyps)} hypothesis text(s)")
    return refs, hyps


def _rate(measure: Any, refs: list[str], hyps: list[str], average: str) -> float:
    if average == "utterance":
        return float(np.mean([measure(r, h) for r, h in zip(refs, hyps, strict=True)]))
    return float(measure(refs, hyps))


def wer(references: str | Sequence[str], hypotheses: str | Sequence[str], *, average: str = "corpus") -> float:
    """Word error rate: (substitutions + deletions + insertions) / reference words, via jiwer.

    Args:
        references, hypotheses: One text or one per utterance.
        average: ``corpus`` (total edits / total reference words) or ``utterance`` (mean of the
            per-utterance rates).

    Raises:
        DatasetError: No reference, an empty reference, or different numbers of texts.
        ValueError: An unknown ``average``.
    """
    import jiwer

    return _rate(jiwer.wer, *_texts(references, hypotheses, average), average)


def cer(references: str | Sequence[str], hypotheses: str | Sequence[str], *, average: str = "corpus") -> float:
    """Character error rate (character edits / reference characters, spaces included), via jiwer.

    Arguments and errors as in :func:`wer`.
    """
    import jiwer

    return _rate(jiwer.cer, *_texts(references, hypotheses, average), average)


def token_error_rate(references: Sequence[Sequence[int]], hypotheses: Sequence[Sequence[int]], *,
                     average: str = "corpus") -> float:
    """WER where the "words" are token ids (e.g. quantized AU intensities)."""
    refs = [" ".join(f"t{t}" for t in seq) for seq in references]
    hyps = [" ".join(f"t{t}" for t in seq) for seq in hypotheses]
    return wer(refs, hyps, average=average)


class ConfusionAccumulator:
    """Confusion counts over the valid steps of many batches (and workers, via :meth:`merge`).

    Args:
        num_classes: K; labels must be 0..K-1 (a true label of -1, unannotated, is skipped).

    Raises:
        ValueError: ``num_classes`` below 1.
    """

    def __init__(self, num_classes: int = 2) -> None:
        if num_classes < 1:
            raise ValueError(f"num_classes={num_classes}: needs at least one class")
        self.num_classes = num_classes
        self.matrix = np.zeros((num_classes, num_classes), dtype=np.int64)

    def update(self, predictions: Any, targets: Any, mask: Any | None = None) -> None:
        """Add (B, T) predicted and true labels at the valid steps of ``mask`` (all if None).

        Raises:
            DatasetError: Shapes that do not match, or a label outside 0..K-1 (other than a
                true -1).
        """
        pred, true = _np(predictions), _np(targets)
        if mask is not None:
            pred, true = valid_steps(pred, mask), valid_steps(true, mask)
        self.matrix += confusion(true, pred, labels=range(self.num_classes))

    def merge(self, other: ConfusionAccumulator) -> None:
        """Add another accumulator's counts.

        Raises:
            ValueError: The other accumulator has a different number of classes.
        """
        if other.num_classes != self.num_classes:
            raise ValueError(f"cannot merge {other.num_classes} classes into {self.num_classes}")
        self.matrix += other.matrix

    def compute(self) -> dict[str, float]:
        """``uar``, ``accuracy``, ``f1_macro`` and, for two classes, ``f1`` (positive class 1).

        Same conventions as :func:`uar`, :func:`accuracy` and :func:`f1` (macro over the classes
        that occur as a true or predicted label); every value is NaN when nothing was counted.
        """
        cm = self.matrix
        total = cm.sum()
        out = {
            "uar": uar_from_confusion(cm),
            "accuracy": float(np.trace(cm) / total) if total else float("nan"),
            "f1_macro": f1_macro_from_confusion(cm),
        }
        if self.num_classes == 2:
            out["f1"] = float(_f1_per_class(cm)[1]) if total else float("nan")
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
