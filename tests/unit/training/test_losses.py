"""Masked losses and eq. 11 class weights."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from sklearn.utils.class_weight import compute_class_weight

from affectlab.errors import DatasetError
from affectlab.training.losses import class_counts, class_weights, masked_bce_with_logits, masked_cross_entropy


def _batch(seed: int = 0, vocab: int | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    gen = torch.Generator().manual_seed(seed)
    shape = (4, 10) if vocab is None else (4, 10, vocab)
    logits = torch.randn(*shape, generator=gen)
    high = 2 if vocab is None else vocab
    targets = torch.randint(0, high, (4, 10), generator=gen)
    mask = torch.arange(10)[None, :] < torch.tensor([10, 7, 3, 1])[:, None]
    return logits, targets, mask


def test_class_weights_equal_sklearn_balanced() -> None:
    rng = np.random.default_rng(0)
    labels = rng.choice(3, size=500, p=[0.7, 0.2, 0.1])
    counts = class_counts(labels, num_classes=3)
    np.testing.assert_array_equal(counts, np.bincount(labels))
    expected = compute_class_weight("balanced", classes=np.arange(3), y=labels)
    np.testing.assert_allclose(class_weights(counts), expected)
    np.testing.assert_allclose(class_weights([5, 5]), [1.0, 1.0])


def test_class_weights_edge_cases() -> None:
    np.testing.assert_allclose(class_weights([10, 0]), [0.5, 0.0])  # absent class: weight 0
    np.testing.assert_allclose(class_weights([0, 0]), [0.0, 0.0])


def test_class_counts_respects_mask_and_range() -> None:
    _, targets, mask = _batch()
    counts = class_counts(targets, mask)
    assert counts.sum() == int(mask.sum())
    assert counts.tolist() == np.bincount(targets[mask].numpy(), minlength=2).tolist()
    with pytest.raises(DatasetError, match="0..1"):
        class_counts(np.array([0, 2]))


def test_masked_bce_equals_bce_on_valid_steps() -> None:
    logits, targets, mask = _batch()
    expected = F.binary_cross_entropy_with_logits(logits[mask], targets[mask].float())
    torch.testing.assert_close(masked_bce_with_logits(logits, targets, mask), expected)
    garbage = logits.masked_fill(~mask, 1e4)
    torch.testing.assert_close(masked_bce_with_logits(garbage, targets, mask), expected)


def test_masked_bce_class_weights_keras_style() -> None:
    logits, targets, mask = _batch()
    w = torch.tensor([0.6, 3.0])
    per_step = F.binary_cross_entropy_with_logits(logits[mask], targets[mask].float(), reduction="none")
    expected = (per_step * w[targets[mask]]).sum() / mask.sum()
    torch.testing.assert_close(masked_bce_with_logits(logits, targets, mask, class_weights=w), expected)
    torch.testing.assert_close(masked_bce_with_logits(logits, targets, mask, class_weights=[0.6, 3.0]), expected)


def test_masked_cross_entropy_equals_ce_on_valid_steps() -> None:
    logits, targets, mask = _batch(vocab=6)
    expected = F.cross_entropy(logits[mask], targets[mask])
    padded = targets.masked_fill(~mask, -5)  # out-of-range ids at padding are fine
    torch.testing.assert_close(masked_cross_entropy(logits, padded, mask), expected)
    w = torch.linspace(0.5, 2.0, 6)
    per_step = F.cross_entropy(logits[mask], targets[mask], reduction="none")
    torch.testing.assert_close(
        masked_cross_entropy(logits, targets, mask, class_weights=w), (per_step * w[targets[mask]]).mean()
    )


def test_losses_with_no_valid_steps_are_zero_and_differentiable() -> None:
    logits, targets, mask = _batch()
    logits.requires_grad_(True)
    loss = masked_bce_with_logits(logits, targets, torch.zeros_like(mask))
    loss.backward()
    assert loss.item() == 0.0 and logits.grad is not None
