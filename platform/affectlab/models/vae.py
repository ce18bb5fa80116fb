"""A variational autoencoder over per-clip feature vectors (seed 004: 27 LMA body-motion features).

The seed gives no layer sizes, activations or depth (SEED-NOTES D.2), so both halves are MLPs
with configurable hidden sizes and activation; the decoder mirrors the encoder. ``latent_dim=1``
is the seed's reported model.

>>> from affectlab.models import build_model
>>> vae = build_model("vae_mlp", input_dim=27, latent_dim=3)
>>> recon, mu, logvar = vae(torch.zeros(8, 27))   # (8, 27), (8, 3), (8, 3)
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from affectlab.errors import ConfigError

__all__ = ["ACTIVATIONS", "MlpVae", "vae_mlp"]

ACTIVATIONS: dict[str, type[nn.Module]] = {"relu": nn.ReLU, "tanh": nn.Tanh, "elu": nn.ELU, "gelu": nn.GELU,
                                           "leaky_relu": nn.LeakyReLU}


def _mlp(sizes: Sequence[int], activation: type[nn.Module]) -> nn.Sequential:
    """Linear layers between consecutive ``sizes``, the activation after each one."""
    layers: list[nn.Module] = []
    for a, b in zip(sizes[:-1], sizes[1:], strict=True):
        layers += [nn.Linear(a, b), activation()]
    return nn.Sequential(*layers)


class MlpVae(nn.Module):
    """Encoder ``x (B, D) -> mu, logvar (B, L)``; decoder ``z (B, L) -> x' (B, D)`` (linear output).

    In training mode :meth:`forward` samples ``z = mu + sigma * eps``; in eval mode it decodes ``mu``.
    """

    def __init__(self, input_dim: int, latent_dim: int, hidden: Sequence[int], activation: type[nn.Module]) -> None:
        super().__init__()
        self.input_dim, self.latent_dim = input_dim, latent_dim
        self.encoder = _mlp([input_dim, *hidden], activation)  # (B, D) -> (B, H_last)
        width = hidden[-1] if hidden else input_dim
        self.to_mu = nn.Linear(width, latent_dim)
        self.to_logvar = nn.Linear(width, latent_dim)
        back = list(reversed(hidden))
        self.decoder_body = _mlp([latent_dim, *back], activation)  # (B, L) -> (B, H_first)
        self.decoder_out = nn.Linear(back[-1] if back else latent_dim, input_dim)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``x (B, D)`` -> ``mu, logvar`` (each (B, L))."""
        h = self.encoder(x)
        return self.to_mu(h), self.to_logvar(h)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        """``z (B, L)`` -> reconstruction (B, D)."""
        return self.decoder_out(self.decoder_body(z))

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``x (B, D)`` -> ``(reconstruction (B, D), mu (B, L), logvar (B, L))``."""
        mu, logvar = self.encode(x)
        z = mu + torch.exp(0.5 * logvar) * torch.randn_like(mu) if self.training else mu
        return self.decode(z), mu, logvar


def vae_mlp(input_dim: int, latent_dim: int = 1, hidden: Sequence[int] = (64, 32),
            activation: str = "relu") -> MlpVae:
    """Build an :class:`MlpVae`.

    Args:
        input_dim: Features per example (27 LMA features; comes from the data).
        latent_dim: Size of the latent code (1 = seed 004's reported model).
        hidden: Encoder hidden sizes, first to last (the decoder uses them reversed).
        activation: One of :data:`ACTIVATIONS`.

    Raises:
        ConfigError: A size below 1 or an unknown activation (the valid choices listed).
    """
    if activation not in ACTIVATIONS:
        raise ConfigError(f"model.kwargs.activation {activation!r} is not one of {sorted(ACTIVATIONS)}")
    for key, value in (("input_dim", input_dim), ("latent_dim", latent_dim), *(("hidden", h) for h in hidden)):
        if int(value) < 1:
            raise ConfigError(f"model.kwargs.{key} must be >= 1, got {value!r}")
    return MlpVae(int(input_dim), int(latent_dim), [int(h) for h in hidden], ACTIVATIONS[activation])
