"""Masked sequence losses and class weights (seed 003, eq. 11; seed 000's categorical loss).

Losses are averaged over the valid steps of the batch (padded steps contribute nothing), with
optional per-class weights multiplying each step's loss, like Keras' ``class_weight``: the sum
of weighted step losses is divided by the number of valid steps, not by the sum of weights.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from numpy.typing import ArrayLike

from affectlab.errors import DatasetError

__all__ = ["class_counts", "class_weights", "masked_bce_with_logits", "masked_cross_entropy"]


def class_counts(labels: ArrayLike, mask: ArrayLike | None = None, *, num_classes: int = 2) -> np.ndarray:
    """Occurrences N_k of each class 0..K-1 among the (valid) labels.

    Args:
        labels: Integer labels of any shape (a torch tensor or array).
        mask: Boolean mask of the same shape (True = count it), or None for all.
        num_classes: K.

    Raises:
        DatasetError: A label is outside 0..K-1.
    """
    arr = _numpy(labels).astype(np.int64)
    if mask is not None:
        arr = arr[_numpy(mask).astype(bool)]
    arr = arr.ravel()
    if arr.size and (arr.min() < 0 or arr.max() >= num_classes):
        raise DatasetError(f"labels must be in 0..{num_classes - 1}, got {arr.min()}..{arr.max()}")
    return np.bincount(arr, minlength=num_classes)


def class_weights(counts: Sequence[int] | np.ndarray) -> np.ndarray:
    """Eq. 11: ``W_k = N / (K * N_k)`` from the class counts N_k (N = Σ N_k, K = len(counts)).

    A class that never occurs gets weight 0 (its weight is never used by a loss over the same
    data, and an infinite weight would poison any other use). All-zero counts give all zeros.

    Returns:
        float64 array of K weights; balanced classes give all ones.
    """
    arr = np.asarray(counts, dtype=np.float64)
    total = arr.sum()
    weights = np.zeros_like(arr)
    present = arr > 0
    weights[present] = total / (len(arr) * arr[present])
    return weights


def _numpy(x: ArrayLike | torch.Tensor) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        return x.detach().cpu().numpy()
    return np.asarray(x)


def _reduce(losses: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    weights = mask.to(losses.dtype)
    return (losses * weights).sum() / weights.sum().clamp_min(1.0)


def masked_bce_with_logits(
    logits: torch.Tensor,
    targets: torch.Tensor,
    mask: torch.Tensor,
    *,
    class_weights: Sequence[float] | torch.Tensor | None = None,
) -> torch.Tensor:
    """Binary cross-entropy over valid steps, optionally class-weighted.

    Args:
        logits: (B, T) logits.
        targets: (B, T) labels in {0, 1} (soft labels in [0, 1] work without class weights;
            with them, a step is weighted by ``W_0 (1 - y) + W_1 y``).
        mask: (B, T) bool, True on valid steps.
        class_weights: ``(W_0, W_1)`` or None.

    Returns:
        Scalar: the mean weighted loss over valid steps (0 if there are none).
    """
    targets = targets.to(logits.dtype)
    losses = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")  # (B, T)
    if class_weights is not None:
        w = torch.as_tensor(class_weights, dtype=logits.dtype, device=logits.device)
        losses = losses * (w[0] * (1 - targets) + w[1] * targets)
    return _reduce(losses, mask)


def masked_cross_entropy(
    logits: torch.Tensor,
    targets: torch.Tensor,
    mask: torch.Tensor,
    *,
    class_weights: Sequence[float] | torch.Tensor | None = None,
    label_smoothing: float = 0.0,
) -> torch.Tensor:
    """Categorical cross-entropy over valid steps (seed 000's ``categorical_crossentropy``).

    Args:
        logits: (B, T, V) logits.
        targets: (B, T) class ids (any value at padded steps).
        mask: (B, T) bool, True on valid steps.
        class_weights: Optional (V,) per-class weights applied to each step's loss.
        label_smoothing: As in ``torch.nn.functional.cross_entropy``.

    Returns:
        Scalar: the mean weighted loss over valid steps (0 if there are none).
    """
    safe = targets.long().masked_fill(~mask, 0)  # padded ids may be out of range
    losses = F.cross_entropy(
        logits.transpose(1, 2), safe, reduction="none", label_smoothing=label_smoothing
    )  # (B, T)
    if class_weights is not None:
        w = torch.as_tensor(class_weights, dtype=logits.dtype, device=logits.device)
        losses = losses * w[safe]
    return _reduce(losses, mask)
