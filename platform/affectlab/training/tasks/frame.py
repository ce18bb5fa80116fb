"""Seed 003: per-step binary AU activity (``data.task: au``).

Per-step binary logits (B, T) for one AU class; masked, class-weighted binary cross-entropy
(eq. 11); UAR / F1 / accuracy on the labelled steps, with a step predicted active when its logit
is > 0. Unlabelled steps (label -1) count in neither the loss nor the metrics.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import torch
from torch import nn

from affectlab.training import metrics as M
from affectlab.training.losses import masked_bce_with_logits
from affectlab.training.tasks.base import Batch, SingleModelTask, as_tensor

__all__ = ["FrameTask", "concat"]


class FrameTask(SingleModelTask):
    """Per-step binary classification (see module docstring).

    Args:
        class_weights: ``(W_0, W_1)`` for the loss, or None.
        config: The experiment (its ``training.regularisation`` switch), or None for defaults.
    """

    metrics = ("loss", "uar", "accuracy", "f1")
    higher_is_better = frozenset({"uar", "accuracy", "f1"})

    def __init__(self, class_weights: np.ndarray | None, config: Any = None) -> None:
        super().__init__(config)
        self.weights = None if class_weights is None else torch.as_tensor(class_weights, dtype=torch.float32)

    def to_device(self, batch: Batch, device: str) -> dict[str, torch.Tensor]:
        """Tensors: x float32 (B, T, D), mask bool (B, T) of the steps, y int64 (B, T) in {0, 1}
        and ``target_mask`` (B, T): the steps that have a label (y = -1 marks none)."""
        y = as_tensor(batch["y"], device, torch.int64)
        mask = as_tensor(batch["mask"], device, torch.bool)
        return {"x": as_tensor(batch["x"], device, torch.float32), "y": y.clamp_min(0), "mask": mask,
                "target_mask": mask & (y >= 0)}

    def _loss(self, logits: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        w = None if self.weights is None else self.weights.to(logits.device)
        return masked_bce_with_logits(logits.float(), batch["y"], batch["target_mask"], class_weights=w)

    def train_loss(self, model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Class-weighted masked BCE of the model's logits (B, T)."""
        return self._loss(model(batch["x"], batch["mask"]), batch)

    @torch.no_grad()
    def predict(self, model: nn.Module, batches: Iterable[Batch], device: str) -> dict[str, Any]:
        """Run the model in eval mode; returns labelled-step predictions, targets and the loss."""
        model.eval()
        preds, trues, total, steps = [], [], 0.0, 0.0
        for batch in batches:
            b = self.to_device(batch, device)
            logits = model(b["x"], b["mask"])
            valid = float(b["target_mask"].sum())
            total += float(self._loss(logits, b)) * valid
            steps += valid
            preds.append(M.valid_steps((logits > 0).long(), b["target_mask"]))
            trues.append(M.valid_steps(b["y"], b["target_mask"]))
        return {"pred": concat(preds), "true": concat(trues), "loss": total / max(steps, 1.0)}

    def evaluate(self, modules: dict[str, nn.Module], batches: Iterable[Batch], device: str, *,
                 prefix: str) -> dict[str, float]:
        """``loss``, ``uar``, ``accuracy``, ``f1`` on the labelled steps."""
        out = self.predict(modules["model"], batches, device)
        acc = M.ConfusionAccumulator(2)
        acc.update(out["pred"], out["true"])
        scores = acc.compute()
        return {f"{prefix}loss": out["loss"], f"{prefix}uar": scores["uar"],
                f"{prefix}accuracy": scores["accuracy"], f"{prefix}f1": scores["f1"]}


def concat(parts: list[np.ndarray]) -> np.ndarray:
    """Concatenated prediction / target arrays (an empty int64 array for none)."""
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)
