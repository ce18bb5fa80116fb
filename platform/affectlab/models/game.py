"""Two players of a quadratic game: the smallest model with two networks and two optimizers.

Each player is a learnable vector (D,); ``forward()`` returns it. The game and its known
equilibrium are in :mod:`affectlab.training.tasks.game`; the model exists so that the
training loop's multi-module machinery (several optimizers, an update-rate schedule, DDP per
module, checkpoints of every module) can be tested against an answer known in closed form.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["Player", "quadratic_game"]


class Player(nn.Module):
    """A learnable vector (D,), initialised from N(0, ``init_std``)."""

    def __init__(self, dim: int, init_std: float = 1.0) -> None:
        super().__init__()
        self.value = nn.Parameter(torch.randn(dim) * init_std)

    def forward(self) -> torch.Tensor:
        """The player's vector (D,)."""
        return self.value


def quadratic_game(input_dim: int, init_std: float = 1.0) -> nn.ModuleDict:
    """The minimising player ``x`` and the maximising player ``y``, each (input_dim,)."""
    if input_dim < 1:
        raise ValueError(f"input_dim must be >= 1, got {input_dim}")
    return nn.ModuleDict({"x": Player(input_dim, init_std), "y": Player(input_dim, init_std)})
