"""Seed 000: F0 -> AU intensity tokens with a seq2seq model (``data.task: f0_to_au``).

Teacher-forced categorical cross-entropy (decoder input ``[SOS, y]``, target ``[y, EOS]``);
evaluation decodes *without* the targets (greedy, median or beam) and scores the decoded tokens:
token UAR and accuracy, and MAE / CCC of the intensities they stand for.

Unlabelled steps (label -1) inside a window: the decoder still needs an input token there, so
the teacher-forced *input* holds the intensity-0 token, but the step is left out of the loss
target and of every metric, exactly as the constant baseline leaves it out (both are scored on
the same labelled steps).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import torch
from torch import nn

from affectlab.training import metrics as M
from affectlab.training.losses import masked_cross_entropy
from affectlab.training.tasks.base import Batch, SingleModelTask, as_tensor
from affectlab.training.tasks.frame import concat

__all__ = ["Seq2SeqTask"]


class Seq2SeqTask(SingleModelTask):
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
        config: The experiment, or None for defaults.
    """

    metrics = ("loss", "uar", "accuracy", "mae", "ccc")
    higher_is_better = frozenset({"uar", "accuracy", "ccc"})

    def __init__(self, id_values: np.ndarray, sos_id: int, eos_id: int, *, teacher_forcing_ratio: float = 1.0,
                 beam_width: int = 1, class_weights: np.ndarray | None = None,
                 pick: str = "mode", config: Any = None) -> None:
        super().__init__(config)
        self.id_values = np.asarray(id_values, dtype=np.float64)
        zero = np.flatnonzero(self.id_values == 0.0)
        self.zero_id = int(zero[0]) if zero.size else eos_id
        self.sos_id, self.eos_id = sos_id, eos_id
        self.sampling_prob = 1.0 - teacher_forcing_ratio
        self.beam_width = beam_width
        self.pick = pick
        self.weights = None if class_weights is None else torch.as_tensor(class_weights, dtype=torch.float32)

    def to_device(self, batch: Batch, device: str) -> dict[str, torch.Tensor]:
        """x: F0 tokens or Hz (B, T); y: AU token ids (B, T) with unlabelled steps set to the
        intensity-0 token (decoder input only); mask (B, T); ``target_mask`` (B, T): labelled steps."""
        x = batch["x"]
        floating = x.is_floating_point() if isinstance(x, torch.Tensor) else np.asarray(x).dtype.kind == "f"
        y = as_tensor(batch["y"], device, torch.int64)
        mask = as_tensor(batch["mask"], device, torch.bool)
        return {"x": as_tensor(x, device, torch.float32 if floating else torch.int64),
                "y": torch.where(y < 0, torch.full_like(y, self.zero_id), y),
                "mask": mask, "target_mask": mask & (y >= 0)}

    def _forced_loss(self, model: nn.Module, batch: dict[str, torch.Tensor], sampling_prob: float) -> torch.Tensor:
        from affectlab.models.f0_to_au import teacher_forcing_io

        dec_in, target, tmask = teacher_forcing_io(batch["y"], batch["mask"], sos_id=self.sos_id, eos_id=self.eos_id)
        steps = batch["target_mask"].shape[1]
        tmask = torch.cat([tmask[:, :steps] & batch["target_mask"], tmask[:, steps:]], dim=1)  # EOS stays
        logits = model(batch["x"], batch["mask"], dec_in, sampling_prob=sampling_prob)  # (B, T+1, V)
        w = None if self.weights is None else self.weights.to(logits.device)
        return masked_cross_entropy(logits.float(), target, tmask, class_weights=w)

    def train_loss(self, model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Categorical cross-entropy of the teacher-forced decoder on the labelled steps + EOS."""
        return self._forced_loss(model, batch, self.sampling_prob)

    @torch.no_grad()
    def predict(self, model: nn.Module, batches: Iterable[Batch], device: str) -> dict[str, Any]:
        """Teacher-forced loss, and tokens decoded without targets (labelled steps only)."""
        model.eval()
        preds, trues, total, count = [], [], 0.0, 0.0
        for batch in batches:
            b = self.to_device(batch, device)
            n = float(b["target_mask"].sum() + b["mask"].shape[0])  # labelled tokens + one EOS per window
            total += float(self._forced_loss(model, b, 0.0)) * n
            count += n
            decoded = model.generate(b["x"], b["mask"], beam_width=self.beam_width, pick=self.pick)
            preds.append(M.valid_steps(decoded.ids, b["target_mask"]))
            trues.append(M.valid_steps(b["y"], b["target_mask"]))
        return {"pred": concat(preds), "true": concat(trues), "loss": total / max(count, 1.0)}

    def scores(self, pred: np.ndarray, true: np.ndarray, *, prefix: str) -> dict[str, float]:
        """Token UAR / accuracy and intensity MAE / CCC of decoded vs true tokens."""
        acc = M.ConfusionAccumulator(len(self.id_values))
        acc.update(pred, true)
        pv, tv = self.id_values[pred], self.id_values[true]
        pv = np.where(np.isnan(pv), 0.0, pv)  # a special token decoded inside a sequence: intensity 0
        return {f"{prefix}uar": acc.compute()["uar"], f"{prefix}accuracy": M.accuracy(true, pred),
                f"{prefix}mae": M.mae(tv, pv), f"{prefix}ccc": M.ccc(tv, pv)}

    def evaluate(self, modules: dict[str, nn.Module], batches: Iterable[Batch], device: str, *,
                 prefix: str) -> dict[str, float]:
        """``loss`` (teacher-forced), then ``uar``, ``accuracy``, ``mae``, ``ccc`` of decoded tokens."""
        out = self.predict(modules["model"], batches, device)
        return {f"{prefix}loss": out["loss"], **self.scores(out["pred"], out["true"], prefix=prefix)}
