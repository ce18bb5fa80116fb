"""Model tests run torch on one thread: tiny models are faster so, and timings stay stable on
a shared 2-core machine (torch's intra-op threads spin against other processes)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch


@pytest.fixture(autouse=True)
def _one_torch_thread() -> Iterator[None]:
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def padded_batch(
    batch: int = 4, steps: int = 12, dim: int = 5, *, seed: int = 0, lengths: list[int] | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """Random features (B, T, D) and a left-aligned mask with varied lengths (first is full)."""
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, steps, dim, generator=gen)
    if lengths is None:
        lengths = [steps] + [max(1, steps - 3 * i - 2) for i in range(1, batch)]
    mask = torch.arange(steps)[None, :] < torch.tensor(lengths)[:, None]
    return x * mask.unsqueeze(-1), mask


@pytest.fixture
def make_batch():  # noqa: ANN201 - returns the helper above
    """The :func:`padded_batch` helper, as a fixture (conftest modules are not importable)."""
    return padded_batch
