"""Intra-attention (eqs. 3-4, local window) and additive inter-attention (eqs. 5-7)."""

from __future__ import annotations

import pytest
import torch

from affectlab.models.attention import AdditiveAttention, IntraAttention, window_offsets


@pytest.mark.parametrize(
    ("window", "mode", "expected"),
    [
        (15, "bi", (-7, 7)), (5, "bi", (-2, 2)), (4, "bi", (-2, 1)), (1, "bi", (0, 0)),
        (15, "pa", (-14, 0)), (1, "pa", (0, 0)),
    ],
)
def test_window_offsets(window: int, mode: str, expected: tuple[int, int]) -> None:
    assert window_offsets(window, mode) == expected


def _brute_force(att: IntraAttention, h: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Eqs. 3-4 with explicit loops over t and t' (the dense reference)."""
    batch, steps, _ = h.shape
    lo, hi = window_offsets(att.window, att.mode)
    dense = torch.zeros(batch, steps, steps)
    for b in range(batch):
        for t in range(steps):
            if not mask[b, t]:
                continue
            for tp in range(max(0, t + lo), min(steps, t + hi + 1)):
                if mask[b, tp]:
                    g = torch.tanh(att.w_t(h[b, t]) + att.w_x(h[b, tp]))
                    dense[b, t, tp] = torch.sigmoid(att.w_a(g)).squeeze()
    dense = dense / (dense.sum(-1, keepdim=True) + 1e-7)
    return dense @ h, dense


@pytest.mark.parametrize(("window", "mode"), [(5, "bi"), (4, "bi"), (3, "pa"), (1, "pa"), (40, "bi")])
def test_intra_attention_matches_dense_definition(make_batch, window: int, mode: str) -> None:
    torch.manual_seed(0)
    h, mask = make_batch(batch=3, steps=9, dim=4)
    att = IntraAttention(4, units=6, window=window, mode=mode)
    out = att(h, mask)
    expected_out, expected_a = _brute_force(att, h, mask)
    torch.testing.assert_close(out, expected_out, atol=1e-5, rtol=1e-4)
    torch.testing.assert_close(att.dense_weights(), expected_a, atol=1e-6, rtol=1e-4)
    gram = expected_a @ expected_a.transpose(1, 2)
    penalty = (gram - torch.diag_embed(mask.float())).pow(2).sum((1, 2)).mean()
    torch.testing.assert_close(att.penalty(), penalty, atol=1e-5, rtol=1e-4)


@pytest.mark.parametrize(
    ("mode", "inside", "outside"), [("pa", [-2, -1, 0], [1, -3, 4]), ("bi", [-1, 0, 1], [-2, 2, 3])]
)
def test_steps_outside_the_window_do_not_matter(
    make_batch, mode: str, inside: list[int], outside: list[int]
) -> None:
    torch.manual_seed(0)
    h, mask = make_batch(batch=1, steps=10, dim=4, lengths=[10])
    att = IntraAttention(4, units=5, window=3, mode=mode)
    t = 5
    base = att(h, mask)[0, t]
    for offset in outside:
        changed = h.clone()
        changed[0, t + offset] += 10.0
        torch.testing.assert_close(att(changed, mask)[0, t], base)
    for offset in inside:  # the same change inside the window does move the output
        changed = h.clone()
        changed[0, t + offset] += 10.0
        assert not torch.allclose(att(changed, mask)[0, t], base)


def test_intra_attention_softmax_normalisation_rows_sum_to_one(make_batch) -> None:
    torch.manual_seed(0)
    h, mask = make_batch(batch=3, steps=8, dim=4)
    att = IntraAttention(4, units=5, window=5, normalise="softmax")
    att(h, mask)
    sums = att.dense_weights().sum(-1)
    torch.testing.assert_close(sums[mask], torch.ones(int(mask.sum())), atol=1e-5, rtol=0)
    assert sums[~mask].abs().sum() == 0


def test_inter_attention_ignores_padded_keys(make_batch) -> None:
    torch.manual_seed(0)
    h, mask = make_batch(batch=3, steps=7, dim=4)
    att = AdditiveAttention(6, 4, units=5)
    query = torch.randn(3, 6)
    context, weights = att(query, h, att.project_keys(h), mask)
    assert weights[~mask].abs().max() == 0
    torch.testing.assert_close(weights.sum(-1), torch.ones(3))
    garbage = h + 100 * (~mask).unsqueeze(-1)
    context2, _ = att(query, garbage, att.project_keys(garbage), mask)
    torch.testing.assert_close(context2, context)
