"""A two-player game with a known equilibrium (``data.task: game``): the training loop's check.

For data ``d`` with mean ``mu`` (D,), player ``x`` minimises and player ``y`` maximises

    f(x, y) = 1/2 * mean_b ||x - d_b||^2 + x . y - 1/2 * ||y||^2,

a strongly convex-concave game whose unique equilibrium is ``x* = y* = mu / 2`` (from
``x - mu + y = 0`` and ``x - y = 0``). It exercises what a GAN needs from the shared loop, with
an answer known in closed form: two modules and two optimizers, ``y`` updated on the iterations
that are multiples of ``update_rate + 1`` and ``x`` on the others (``training.update_rate``, the
seed-002 schedule), the other player held fixed (evaluated under ``no_grad``, so its DDP wrapper
expects no gradients that step), and two losses logged separately (``train_x_loss``,
``train_y_loss``). The players take plain SGD steps with ``training.lr``.

Metrics: ``loss`` (``f`` on the evaluated data) and ``distance``: the Euclidean distance of
``(x, y)`` from the equilibrium ``(mu/2, mu/2)`` of the evaluated data (lower is better).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import torch
from torch import nn

from affectlab.training.tasks.base import Batch, StepContext, StepOutput, Task, as_tensor

__all__ = ["GameTask"]


def game_value(x: torch.Tensor, y: torch.Tensor, data: torch.Tensor) -> torch.Tensor:
    """``f(x, y)`` on a batch of data vectors (B, D)."""
    return 0.5 * ((x[None, :] - data) ** 2).sum(dim=1).mean() + (x * y).sum() - 0.5 * (y**2).sum()


class GameTask(Task):
    """Alternating gradient play of the quadratic game (see module docstring).

    Args:
        update_rate: ``y`` steps on iterations that are multiples of ``update_rate + 1``.
        config: The experiment, or None.
    """

    metrics = ("loss", "distance")
    higher_is_better = frozenset()

    def __init__(self, update_rate: int = 1, config: Any = None) -> None:
        super().__init__(config)
        if update_rate < 0:
            raise ValueError(f"update_rate must be >= 0, got {update_rate}")
        self.update_rate = update_rate

    def configure_optimizers(self, modules: dict[str, nn.Module], lr: float) -> dict[str, torch.optim.Optimizer]:
        """Plain SGD for each player."""
        return {name: torch.optim.SGD(modules[name].parameters(), lr=lr) for name in ("x", "y")}

    def to_device(self, batch: Batch, device: str) -> dict[str, torch.Tensor]:
        """``x``: the data vectors (B, D) float32."""
        return {"x": as_tensor(batch["x"], device, torch.float32)}

    def train_step(self, ctx: StepContext, batch: dict[str, torch.Tensor]) -> StepOutput:
        """One player's gradient step, the other player held fixed."""
        data = batch["x"]
        if ctx.iteration % (self.update_rate + 1) == 0:
            with torch.no_grad():
                x = ctx.modules["x"]()
            loss = -game_value(x, ctx.modules["y"](), data)  # y maximises f
            ctx.optimize("y", loss)
            return StepOutput({"y_loss": float(loss.detach())}, float(data.shape[0]))
        with torch.no_grad():
            y = ctx.modules["y"]()
        loss = game_value(ctx.modules["x"](), y, data)
        ctx.optimize("x", loss)
        return StepOutput({"x_loss": float(loss.detach())}, float(data.shape[0]))

    @torch.no_grad()
    def evaluate(self, modules: dict[str, nn.Module], batches: Iterable[Batch], device: str, *,
                 prefix: str) -> dict[str, float]:
        """``f`` and the distance to the equilibrium of the evaluated data."""
        data = torch.cat([self.to_device(b, device)["x"] for b in batches])
        x, y = modules["x"](), modules["y"]()
        target = data.mean(dim=0) / 2
        distance = torch.sqrt(((x - target) ** 2).sum() + ((y - target) ** 2).sum())
        return {f"{prefix}loss": float(game_value(x, y, data)), f"{prefix}distance": float(distance)}
