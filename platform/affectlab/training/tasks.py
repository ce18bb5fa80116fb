"""What is trained: the loss and the evaluation of one task, independent of runner and model.

* :class:`FrameTask` (seed 003): per-step binary logits (B, T) for one AU class; masked,
  class-weighted binary cross-entropy (eq. 11); UAR / F1 / accuracy on the valid steps, with a
  step predicted active when its logit is > 0.
* :class:`Seq2SeqTask` (seed 000, ``f0_to_au``): AU intensity tokens from F0; teacher-forced
  categorical cross-entropy (decoder input ``[SOS, y]``, target ``[y, EOS]``); evaluation
  decodes *without* the targets (greedy or beam) and scores the decoded tokens: token UAR and
  accuracy, and MAE / CCC of the intensities they stand for.

Metric names (stable; a prefix such as ``val_`` or ``test_`` is added): ``loss``, ``uar``,
``accuracy``, ``f1`` (frame task), ``mae`` and ``ccc`` (seq2seq task).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol

import numpy as np
import torch
from torch import nn

from affectlab.training import metrics as M
from affectlab.training.losses import class_weights as eq11_weights
from affectlab.training.losses import masked_bce_with_logits, masked_cross_entropy

__all__ = ["FrameTask", "Seq2SeqTask", "Task", "make_task"]


class Task(Protocol):
    """The interface :func:`affectlab.training.loop.fit` uses."""

    def to_device(self, batch: dict[str, Any], device: str) -> dict[str, torch.Tensor]: ...

    def train_loss(self, model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor: ...

    def evaluate(self, model: nn.Module, batches: Iterable[dict[str, Any]], device: str, *, prefix: str) -> dict[str, float]: ...


def _tensor(value: Any, device: str, dtype: torch.dtype) -> torch.Tensor:
    return torch.as_tensor(np.asarray(value) if not isinstance(value, torch.Tensor) else value).to(device=device, dtype=dtype)


class FrameTask:
    """Per-step binary classification (see module docstring).

    Args:
        class_weights: ``(W_0, W_1)`` for the loss, or None.
    """

    def __init__(self, class_weights: np.ndarray | None) -> None:
        self.weights = None if class_weights is None else torch.as_tensor(class_weights, dtype=torch.float32)

    def to_device(self, batch: dict[str, Any], device: str) -> dict[str, torch.Tensor]:
        """Tensors: x float32 (B, T, D), mask bool (B, T) of the steps, y int64 (B, T) in {0, 1}
        and ``target_mask`` (B, T): the steps that have a label (y = -1 marks none)."""
        y = _tensor(batch["y"], device, torch.int64)
        mask = _tensor(batch["mask"], device, torch.bool)
        return {"x": _tensor(batch["x"], device, torch.float32), "y": y.clamp_min(0), "mask": mask,
                "target_mask": mask & (y >= 0)}

    def _loss(self, logits: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        w = None if self.weights is None else self.weights.to(logits.device)
        return masked_bce_with_logits(logits.float(), batch["y"], batch["target_mask"], class_weights=w)

    def train_loss(self, model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Class-weighted masked BCE of the model's logits (B, T)."""
        return self._loss(model(batch["x"], batch["mask"]), batch)

    @torch.no_grad()
    def predict(self, model: nn.Module, batches: Iterable[dict[str, Any]], device: str) -> dict[str, Any]:
        """Run the model in eval mode; returns valid-step predictions, targets and the loss."""
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
        return {"pred": _cat(preds), "true": _cat(trues), "loss": total / max(steps, 1.0)}

    def evaluate(self, model: nn.Module, batches: Iterable[dict[str, Any]], device: str, *, prefix: str) -> dict[str, float]:
        """``loss``, ``uar``, ``accuracy``, ``f1`` on the valid steps."""
        out = self.predict(model, batches, device)
        acc = M.ConfusionAccumulator(2)
        acc.update(out["pred"], out["true"])
        scores = acc.compute()
        return {f"{prefix}loss": out["loss"], f"{prefix}uar": scores["uar"],
                f"{prefix}accuracy": scores["accuracy"], f"{prefix}f1": scores["f1"]}


class Seq2SeqTask:
    """F0 -> AU tokens with teacher forcing (see module docstring).

    Args:
        id_values: Intensity of each AU token id (NaN for SOS/EOS), shape (V,).
        sos_id: Start token id.
        eos_id: End token id.
        teacher_forcing_ratio: Probability of feeding the true previous token at each training
            step (1 = teacher forcing; otherwise the model's own token: scheduled sampling).
        beam_width: 1 for greedy decoding at evaluation, more for beam search.
        pick: Greedy decoding's per-step choice, ``"mode"`` or ``"median"``.
        class_weights: Optional (V,) weights of the cross-entropy.
    """

    def __init__(self, id_values: np.ndarray, sos_id: int, eos_id: int, *, teacher_forcing_ratio: float = 1.0,
                 beam_width: int = 1, class_weights: np.ndarray | None = None,
                 pick: str = "mode") -> None:
        self.id_values = np.asarray(id_values, dtype=np.float64)
        zero = np.flatnonzero(self.id_values == 0.0)
        self.zero_id = int(zero[0]) if zero.size else eos_id
        self.sos_id, self.eos_id = sos_id, eos_id
        self.sampling_prob = 1.0 - teacher_forcing_ratio
        self.beam_width = beam_width
        self.pick = pick
        self.weights = None if class_weights is None else torch.as_tensor(class_weights, dtype=torch.float32)

    def to_device(self, batch: dict[str, Any], device: str) -> dict[str, torch.Tensor]:
        """x: F0 tokens or Hz (B, T); y: AU token ids (B, T); mask (B, T)."""
        x = batch["x"]
        floating = x.is_floating_point() if isinstance(x, torch.Tensor) else np.asarray(x).dtype.kind == "f"
        y = _tensor(batch["y"], device, torch.int64)
        y = torch.where(y < 0, torch.full_like(y, self.zero_id), y)  # unlabelled step inside: intensity 0
        return {"x": _tensor(x, device, torch.float32 if floating else torch.int64), "y": y,
                "mask": _tensor(batch["mask"], device, torch.bool)}

    def _forced_loss(self, model: nn.Module, batch: dict[str, torch.Tensor], sampling_prob: float) -> torch.Tensor:
        from affectlab.models.f0_to_au import teacher_forcing_io

        dec_in, target, tmask = teacher_forcing_io(batch["y"], batch["mask"], sos_id=self.sos_id, eos_id=self.eos_id)
        logits = model(batch["x"], batch["mask"], dec_in, sampling_prob=sampling_prob)  # (B, T+1, V)
        w = None if self.weights is None else self.weights.to(logits.device)
        return masked_cross_entropy(logits.float(), target, tmask, class_weights=w)

    def train_loss(self, model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Categorical cross-entropy of the teacher-forced decoder."""
        return self._forced_loss(model, batch, self.sampling_prob)

    @torch.no_grad()
    def predict(self, model: nn.Module, batches: Iterable[dict[str, Any]], device: str) -> dict[str, Any]:
        """Teacher-forced loss, and tokens decoded without targets (valid steps only)."""
        model.eval()
        preds, trues, total, count = [], [], 0.0, 0.0
        for batch in batches:
            b = self.to_device(batch, device)
            n = float(b["mask"].sum() + b["mask"].shape[0])  # tokens + one EOS per window
            total += float(self._forced_loss(model, b, 0.0)) * n
            count += n
            decoded = model.generate(b["x"], b["mask"], beam_width=self.beam_width, pick=self.pick)
            preds.append(M.valid_steps(decoded.ids, b["mask"]))
            trues.append(M.valid_steps(b["y"], b["mask"]))
        return {"pred": _cat(preds), "true": _cat(trues), "loss": total / max(count, 1.0)}

    def scores(self, pred: np.ndarray, true: np.ndarray, *, prefix: str) -> dict[str, float]:
        """Token UAR / accuracy and intensity MAE / CCC of decoded vs true tokens."""
        acc = M.ConfusionAccumulator(len(self.id_values))
        acc.update(pred, true)
        pv, tv = self.id_values[pred], self.id_values[true]
        pv = np.where(np.isnan(pv), 0.0, pv)  # a special token decoded inside a sequence: intensity 0
        return {f"{prefix}uar": acc.compute()["uar"], f"{prefix}accuracy": M.accuracy(true, pred),
                f"{prefix}mae": M.mae(tv, pv), f"{prefix}ccc": M.ccc(tv, pv)}

    def evaluate(self, model: nn.Module, batches: Iterable[dict[str, Any]], device: str, *, prefix: str) -> dict[str, float]:
        """``loss`` (teacher-forced), then ``uar``, ``accuracy``, ``mae``, ``ccc`` of decoded tokens."""
        out = self.predict(model, batches, device)
        return {f"{prefix}loss": out["loss"], **self.scores(out["pred"], out["true"], prefix=prefix)}


def _cat(parts: list[np.ndarray]) -> np.ndarray:
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)


def make_task(task: str, *, class_counts: np.ndarray, use_class_weights: bool, vocab: dict[str, Any] | None,
              teacher_forcing_ratio: float = 1.0, beam_width: int = 1, pick: str = "mode") -> FrameTask | Seq2SeqTask:
    """Build the task object for ``data.task`` (``au`` or ``f0_to_au``)."""
    weights = eq11_weights(class_counts) if use_class_weights else None
    if task == "au":
        return FrameTask(weights)
    if vocab is None:
        raise ValueError("task 'f0_to_au' needs the AU vocabulary")
    if weights is not None:
        weights = np.where(np.asarray(class_counts) > 0, weights, 1.0)  # EOS / unseen tokens: weight 1
    return Seq2SeqTask(np.asarray(vocab["id_values"]), int(vocab["sos_id"]), int(vocab["eos_id"]),
                       teacher_forcing_ratio=teacher_forcing_ratio, beam_width=beam_width,
                       class_weights=weights, pick=pick)
