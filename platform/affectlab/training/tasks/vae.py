"""A VAE over per-clip feature vectors (``data.task: vae_lma``, seed 004).

A batch holds ``x`` (B, D): the features, already standardised by the data module
(:mod:`affectlab.training.vae_data`). ``extra`` carries the training rows' ``feature_mean`` and
``feature_std`` (D,) so the metrics are in raw units.

Loss (per example, averaged over the batch)::

    reconstruction_weight * sum_d (x'_d - x_d)^2  +  kl_weight * KL(N(mu, sigma^2) || N(0, I))

Metrics: ``loss`` and ``mae`` (the mean over features of each feature's mean absolute
reconstruction error in raw units, decoding ``mu``: the seed's "overall MAE").
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import torch
from torch import nn

from affectlab.training.tasks.base import Batch, SingleModelTask, as_tensor

__all__ = ["VaeTask", "kl_divergence", "vae_loss"]


def kl_divergence(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, exp(logvar)) || N(0, I)) per example: (B, L) -> (B,)."""
    return 0.5 * (mu.pow(2) + logvar.exp() - 1.0 - logvar).sum(dim=1)


def vae_loss(x: torch.Tensor, recon: torch.Tensor, mu: torch.Tensor, logvar: torch.Tensor, *,
             reconstruction_weight: float = 1.0, kl_weight: float = 1.0) -> torch.Tensor:
    """The batch mean of the weighted reconstruction (sum of squares over features) + KL terms."""
    squared = (recon - x).pow(2).sum(dim=1)  # (B,)
    return (reconstruction_weight * squared + kl_weight * kl_divergence(mu, logvar)).mean()


class VaeTask(SingleModelTask):
    """Train a ``vae_mlp``; see the module docstring.

    Args:
        config: The experiment (``data.vae`` weights).
        extra: ``feature_mean`` and ``feature_std`` (D,) of the training rows.
    """

    metrics = ("loss", "mae")
    higher_is_better = frozenset()

    def __init__(self, config: Any, extra: dict[str, Any]) -> None:
        super().__init__(config)
        s = config.data.vae
        self.reconstruction_weight, self.kl_weight = s.reconstruction_weight, s.kl_weight
        self.mean = np.asarray(extra["feature_mean"], np.float64)
        self.std = np.asarray(extra["feature_std"], np.float64)

    def to_device(self, batch: Batch, device: str) -> dict[str, torch.Tensor]:
        """``x`` (B, D) float32."""
        return {"x": as_tensor(batch["x"], device, torch.float32)}

    def train_loss(self, model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """:func:`vae_loss` of the sampled reconstruction."""
        recon, mu, logvar = model(batch["x"])
        return vae_loss(batch["x"], recon.float(), mu.float(), logvar.float(),
                        reconstruction_weight=self.reconstruction_weight, kl_weight=self.kl_weight)

    def step_weight(self, batch: dict[str, torch.Tensor]) -> float:
        """Each example counts once."""
        return float(batch["x"].shape[0])

    def raw(self, scaled: np.ndarray) -> np.ndarray:
        """Standardised features (N, D) back in raw units."""
        return scaled * self.std + self.mean

    @torch.no_grad()
    def predict(self, model: nn.Module, batches: Iterable[Batch], device: str) -> dict[str, np.ndarray]:
        """Eval mode (decoding ``mu``): ``real``, ``regen`` (N, D) raw, ``latent`` (N, L), ``loss``."""
        model.eval()
        real, regen, latent, loss_sum = [], [], [], 0.0
        for batch in batches:
            x = self.to_device(batch, device)["x"]
            recon, mu, logvar = model(x)
            loss_sum += float(vae_loss(x, recon, mu, logvar, reconstruction_weight=self.reconstruction_weight,
                                       kl_weight=self.kl_weight)) * len(x)
            real.append(x.cpu().numpy())
            regen.append(recon.cpu().numpy())
            latent.append(mu.cpu().numpy())
        n = sum(len(r) for r in real)
        if n == 0:
            return {"real": np.zeros((0, len(self.mean))), "regen": np.zeros((0, len(self.mean))),
                    "latent": np.zeros((0, 0)), "loss": float("nan")}
        return {"real": self.raw(np.concatenate(real)), "regen": self.raw(np.concatenate(regen)),
                "latent": np.concatenate(latent), "loss": loss_sum / n}

    def evaluate(self, modules: dict[str, nn.Module], batches: Iterable[Batch], device: str, *,
                 prefix: str) -> dict[str, float]:
        """``loss`` and ``mae`` (raw units, mean of the per-feature MAEs)."""
        out = self.predict(modules["model"], batches, device)
        mae = float(np.abs(out["regen"] - out["real"]).mean(axis=0).mean()) if len(out["real"]) else float("nan")
        return {f"{prefix}loss": out["loss"], f"{prefix}mae": mae}
