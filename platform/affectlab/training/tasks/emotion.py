"""Categorical emotion per clip (``data.task: emotion``): seed 001's face CNN, and speech.

Face (``data.emotion.modality: face``): a batch holds single frames ``image`` (B, S, S) or
(B, S, S, 3) uint8 with their clip's ``label`` and ``sample_id``. The task scales them to [0, 1],
subtracts the training actors' mean face (``data.emotion.mean_face``; SEED-NOTES B.5.3: ``x -
mean``, both in [0, 1]), resizes to ``data.emotion.input_size`` and, in training only, flips
horizontally (p = 0.5) and zeroes one random square of side ``cutout`` x S (keras_cv
``RandomCutout(0.4, 0.4, fill_value=0)``, inside the seed's model, so active in training only).

Speech (``modality: speech``): a batch holds one openSMILE functionals vector ``x`` (B, D) per
recording, standardised with the training recordings' mean and standard deviation.

Loss: cross-entropy on logits (the seed's run 2 applied ``from_logits=True`` to softmax outputs,
a bug: SEED-NOTES B.5.5). Metrics: ``accuracy`` (single frame), ``video_accuracy`` (each
clip's mean frame probability, then argmax; for speech the same as ``accuracy``), ``uar``
(mean per-class recall of single frames) and ``loss``.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from affectlab.training.tasks.base import Batch, SingleModelTask, as_tensor

__all__ = ["EmotionTask", "clip_probabilities", "softmax_predictions"]


def clip_probabilities(sample_ids: np.ndarray, probs: np.ndarray, labels: np.ndarray,
                       weighting: str = "mean") -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per clip: its id, the mean of its frames' probabilities (``weighting="max"``: weighted by each
    frame's largest probability) and its label. Returns ``(ids, probs (V, K), labels (V,))``."""
    if weighting not in ("mean", "max"):
        raise ValueError(f"weighting {weighting!r} is not one of ['mean', 'max']")
    ids, inverse = np.unique(np.asarray(sample_ids), return_inverse=True)
    weights = probs.max(axis=1) if weighting == "max" else np.ones(len(probs))
    sums = np.zeros((len(ids), probs.shape[1]))
    np.add.at(sums, inverse, probs * weights[:, None])
    totals = np.zeros(len(ids))
    np.add.at(totals, inverse, weights)
    clip_labels = np.zeros(len(ids), dtype=np.int64)
    clip_labels[inverse] = labels
    return ids, sums / totals[:, None], clip_labels


def _recall_mean(pred: np.ndarray, true: np.ndarray, n_classes: int) -> float:
    recalls = [float((pred[true == k] == k).mean()) for k in range(n_classes) if (true == k).any()]
    return float(np.mean(recalls)) if recalls else float("nan")


class EmotionTask(SingleModelTask):
    """Frame (face) or recording (speech) emotion classification; see the module docstring.

    Args:
        config: The experiment (``data.emotion`` settings).
        extra: Data facts: ``mean_face`` (S x S[x3] in [0, 1], or None), ``feature_mean`` /
            ``feature_std`` (speech), ``n_classes``.
    """

    metrics = ("loss", "accuracy", "video_accuracy", "uar")
    higher_is_better = frozenset({"accuracy", "video_accuracy", "uar"})

    def __init__(self, config: Any, extra: dict[str, Any]) -> None:
        super().__init__(config)
        s = config.data.emotion
        self.modality = s.modality
        self.flip, self.cutout, self.input_size = s.flip, s.cutout, s.input_size
        self.weighting = s.video_weighting
        self.n_classes = int(extra["n_classes"])
        mean = extra.get("mean_face")
        self.mean_face = None if mean is None else torch.as_tensor(np.asarray(mean, np.float32))
        self.feature_mean = None if extra.get("feature_mean") is None else \
            torch.as_tensor(np.asarray(extra["feature_mean"], np.float32))
        self.feature_std = None if extra.get("feature_std") is None else \
            torch.as_tensor(np.asarray(extra["feature_std"], np.float32))

    # -- inputs ---------------------------------------------------------------------------------

    def _face_input(self, image: Any, device: str) -> torch.Tensor:
        """uint8 (B, S, S[, 3]) -> float (B, C, S', S') in [0, 1] minus the mean face."""
        x = as_tensor(image, device, torch.float32) / 255.0
        if self.mean_face is not None:
            x = x - self.mean_face.to(device)
        x = x.unsqueeze(1) if x.dim() == 3 else x.permute(0, 3, 1, 2)
        if self.input_size and x.shape[-1] != self.input_size:
            x = F.interpolate(x, size=(self.input_size, self.input_size), mode="area")
        return x

    def to_device(self, batch: Batch, device: str) -> dict[str, torch.Tensor]:
        """``x`` (face: (B, C, S, S); speech: (B, D) standardised) and ``y`` (B,) int64."""
        y = as_tensor(batch["label"], device, torch.int64)
        if self.modality == "face":
            return {"x": self._face_input(batch["image"], device), "y": y}
        x = as_tensor(batch["x"], device, torch.float32)
        if self.feature_mean is not None:
            x = (x - self.feature_mean.to(device)) / self.feature_std.to(device)
        return {"x": x, "y": y}

    def augment(self, x: torch.Tensor) -> torch.Tensor:
        """Training-time flip (p = 0.5 per image) and cutout (one zeroed square per image)."""
        if self.modality != "face":
            return x
        if self.flip:
            flips = torch.rand(x.shape[0], device=x.device) < 0.5
            x = torch.where(flips[:, None, None, None], x.flip(-1), x)
        if self.cutout > 0:
            side = x.shape[-1]
            size = max(1, round(self.cutout * side))
            rows = torch.arange(side, device=x.device)
            top = torch.randint(0, side - size + 1, (x.shape[0],), device=x.device)
            left = torch.randint(0, side - size + 1, (x.shape[0],), device=x.device)
            in_rows = (rows[None, :] >= top[:, None]) & (rows[None, :] < top[:, None] + size)
            in_cols = (rows[None, :] >= left[:, None]) & (rows[None, :] < left[:, None] + size)
            hole = in_rows[:, :, None] & in_cols[:, None, :]
            x = x.masked_fill(hole[:, None], 0.0)
        return x

    # -- training -------------------------------------------------------------------------------

    def train_loss(self, model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Cross-entropy of the model's logits on the augmented inputs."""
        return F.cross_entropy(model(self.augment(batch["x"])).float(), batch["y"])

    def step_weight(self, batch: dict[str, torch.Tensor]) -> float:
        """Each example counts once."""
        return float(batch["y"].shape[0])

    # -- evaluation -----------------------------------------------------------------------------

    @torch.no_grad()
    def predict(self, model: nn.Module, batches: Iterable[Batch], device: str) -> dict[str, np.ndarray]:
        """Eval-mode softmax probabilities with each example's ``sample_id``, ``frame`` and ``label``."""
        model.eval()
        probs, labels, ids, frames, loss_sum = [], [], [], [], 0.0
        for batch in batches:
            b = self.to_device(batch, device)
            logits = model(b["x"]).float()
            loss_sum += float(F.cross_entropy(logits, b["y"], reduction="sum"))
            probs.append(torch.softmax(logits, dim=1).cpu().numpy())
            labels.append(b["y"].cpu().numpy())
            ids.append(np.asarray(batch["sample_id"]).astype(str))
            frames.append(np.asarray(batch.get("frame", np.full(len(b["y"]), -1)), dtype=np.int32))
        if not probs:
            empty = np.zeros(0)
            return {"probs": np.zeros((0, self.n_classes)), "label": empty.astype(np.int64),
                    "sample_id": empty.astype(str), "frame": empty.astype(np.int32), "loss": float("nan")}
        n = sum(len(p) for p in probs)
        return {"probs": np.concatenate(probs), "label": np.concatenate(labels), "sample_id": np.concatenate(ids),
                "frame": np.concatenate(frames), "loss": loss_sum / n}

    def scores(self, out: dict[str, np.ndarray], prefix: str) -> dict[str, float]:
        """``loss``, ``accuracy``, ``video_accuracy`` and ``uar`` of :meth:`predict`'s output."""
        if len(out["label"]) == 0:
            return {f"{prefix}{m}": float("nan") for m in self.metrics}
        pred = out["probs"].argmax(axis=1)
        _, video_probs, video_labels = clip_probabilities(out["sample_id"], out["probs"], out["label"],
                                                          self.weighting)
        return {f"{prefix}loss": out["loss"], f"{prefix}accuracy": float((pred == out["label"]).mean()),
                f"{prefix}video_accuracy": float((video_probs.argmax(axis=1) == video_labels).mean()),
                f"{prefix}uar": _recall_mean(pred, out["label"], self.n_classes)}

    def evaluate(self, modules: dict[str, nn.Module], batches: Iterable[Batch], device: str, *,
                 prefix: str) -> dict[str, float]:
        """See :meth:`scores`."""
        return self.scores(self.predict(modules["model"], batches, device), prefix)


def softmax_predictions(out: dict[str, np.ndarray], subjects: dict[str, str], modality: str) -> dict[str, Any]:
    """:meth:`EmotionTask.predict` output as the columns of a predictions table (``sample_id,
    subject, modality, frame, label, probs``)."""
    return {
        "sample_id": [str(s) for s in out["sample_id"]],
        "subject": [subjects[str(s)] for s in out["sample_id"]],
        "modality": [modality] * len(out["label"]),
        "frame": out["frame"].astype(np.int32),
        "label": out["label"].astype(np.int32),
        "probs": [p.astype(np.float32) for p in out["probs"]],
    }
