"""Seed-003 models: forward/backward, masking, determinism, regularisation, tiny overfit."""

from __future__ import annotations

import pytest
import torch

from affectlab.models import build_model
from affectlab.models.attention import IntraAttention
from affectlab.models.layers import weight_penalty
from affectlab.training.losses import masked_bce_with_logits

SEED_003 = [
    "stacked", "stacked_intraatt", "stacked2_intraatt", "encdec", "enc_interatt_dec", "enc_interatt_dec_intraatt",
]


def _build(name: str, **kwargs):  # noqa: ANN202
    kwargs.setdefault("input_dim", 5)
    kwargs.setdefault("hidden", 6)
    if "intra" in name:
        kwargs.setdefault("window", 3)
    return build_model(name, **kwargs)


@pytest.mark.parametrize("name", SEED_003)
def test_forward_backward_on_padded_batch(make_batch, name: str) -> None:
    torch.manual_seed(0)
    x, mask = make_batch()
    model = _build(name)
    logits = model(x, mask)
    assert logits.shape == mask.shape and logits.dtype == torch.float32
    assert torch.isfinite(logits).all() and logits[~mask].abs().sum() == 0
    targets = (x[..., 0] > 0).float()
    loss = masked_bce_with_logits(logits, targets, mask) + model.regularization_loss()
    loss.backward()
    grads = [p.grad for p in model.parameters() if p.requires_grad]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert sum(g.abs().sum() for g in grads) > 0


@pytest.mark.parametrize("merge", ["concat", "mean"])
@pytest.mark.parametrize("name", ["stacked2_intraatt", "enc_interatt_dec_intraatt"])
def test_other_merge_modes(make_batch, name: str, merge: str) -> None:
    x, mask = make_batch()
    assert _build(name, merge=merge)(x, mask).shape == mask.shape


@pytest.mark.parametrize("train", [True, False])
@pytest.mark.parametrize("name", SEED_003)
def test_padding_content_does_not_change_valid_outputs(make_batch, name: str, train: bool) -> None:
    """Masked BN, packed RNNs and masked attention: padding never leaks into valid steps."""
    torch.manual_seed(0)
    x, mask = make_batch()
    model = _build(name).train(train)
    noisy = x + 7.0 * torch.randn_like(x) * (~mask).unsqueeze(-1)
    torch.manual_seed(1)  # same dropout masks for both calls
    reference = model(x, mask)
    torch.manual_seed(1)
    torch.testing.assert_close(model(noisy, mask)[mask], reference[mask], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("name", SEED_003)
def test_extra_padding_steps_do_not_change_valid_outputs(make_batch, name: str) -> None:
    torch.manual_seed(0)
    x, mask = make_batch()
    model = _build(name).eval()
    longer_x = torch.cat([x, torch.randn(x.shape[0], 4, x.shape[2])], dim=1)
    longer_mask = torch.cat([mask, torch.zeros(mask.shape[0], 4, dtype=torch.bool)], dim=1)
    longer = model(longer_x, longer_mask)[:, : x.shape[1]]
    torch.testing.assert_close(longer[mask], model(x, mask)[mask], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("name", SEED_003)
def test_same_seed_same_model_and_outputs(make_batch, name: str) -> None:
    x, mask = make_batch()
    outputs = []
    for _ in range(2):
        torch.manual_seed(123)
        model = _build(name)
        outputs.append(model(x, mask))
    torch.testing.assert_close(outputs[0], outputs[1], atol=0, rtol=0)
    torch.manual_seed(124)
    assert not torch.allclose(_build(name)(x, mask), outputs[0])


def test_regularization_loss_is_weights_plus_attention_penalty(make_batch) -> None:
    torch.manual_seed(0)
    x, mask = make_batch()
    model = _build("stacked2_intraatt", l2_kernel=0.1, l1_bias=1e-3, attention_reg=0.5)
    model(x, mask)
    attention = [m for m in model.modules() if isinstance(m, IntraAttention)]
    assert len(attention) == 2
    expected = weight_penalty(model, l2_kernel=0.1, l1_bias=1e-3) + 0.5 * sum(m.penalty() for m in attention)
    torch.testing.assert_close(model.regularization_loss(), expected)
    silent = _build("stacked", l2_kernel=0.0, l1_bias=0.0, attention_reg=0.0)
    assert float(silent.regularization_loss()) == 0.0


def test_hard_feedback_decoder_runs(make_batch) -> None:
    x, mask = make_batch()
    logits = _build("enc_interatt_dec", feedback="hard")(x, mask)
    assert logits.shape == mask.shape


def _lag_task(lag: int = 2) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """label[t] = feature0[t - lag] > 0 on a small padded batch."""
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(8, 16, 3, generator=gen)
    lengths = torch.tensor([16, 15, 14, 12, 11, 10, 9, 8])
    mask = torch.arange(16)[None, :] < lengths[:, None]
    y = torch.zeros(8, 16)
    y[:, lag:] = (x[:, :-lag, 0] > 0).float()
    return x * mask.unsqueeze(-1), mask, y


def _fit(model: torch.nn.Module, x: torch.Tensor, mask: torch.Tensor, y: torch.Tensor, steps: int) -> float:
    opt = torch.optim.Adam(model.parameters(), lr=0.03)
    acc = 0.0
    for step in range(steps):
        opt.zero_grad()
        masked_bce_with_logits(model(x, mask), y, mask).backward()
        opt.step()
        if step % 5 == 4:
            with torch.no_grad():
                acc = float(((model.eval()(x, mask) > 0).float() == y)[mask].float().mean())
            model.train()
            if acc > 0.95:
                break
    return acc


@pytest.mark.parametrize("name", SEED_003)
def test_overfits_a_lagged_rule(name: str) -> None:
    """Each model learns label[t] = x[t-2, 0] > 0 on 8 sequences (no dropout or penalties).

    The inter-attention models get ``aligned_input=True``: with eqs. 8-10 verbatim the decoder
    has to locate step j through attention alone, which takes far more steps to learn.
    """
    torch.manual_seed(0)
    x, mask, y = _lag_task()
    extra = {"aligned_input": True} if "interatt" in name else {}
    model = _build(name, input_dim=3, hidden=16, dropout=0.0, **extra)
    assert _fit(model, x, mask, y, steps=150) > 0.9


def test_paper_decoder_without_aligned_input_learns_something() -> None:
    torch.manual_seed(0)
    x, mask, y = _lag_task()
    model = _build("enc_interatt_dec", input_dim=3, hidden=16, dropout=0.0)
    opt = torch.optim.Adam(model.parameters(), lr=0.03)
    losses = []
    for _ in range(25):
        opt.zero_grad()
        loss = masked_bce_with_logits(model(x, mask), y, mask)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert min(losses[-5:]) < 0.85 * losses[0]
