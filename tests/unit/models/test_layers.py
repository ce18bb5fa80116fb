"""Masks, packed RNNs, masked batch norm and weight penalties."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from affectlab.errors import DatasetError
from affectlab.models.layers import MaskedBatchNorm, SeqRNN, lengths_from_mask, weight_penalty


def test_lengths_from_mask_and_left_alignment() -> None:
    mask = torch.tensor([[True, True, False], [True, False, False]])
    assert lengths_from_mask(mask).tolist() == [2, 1]
    with pytest.raises(DatasetError, match="left-aligned"):
        lengths_from_mask(torch.tensor([[True, False, True]]))
    with pytest.raises(DatasetError, match="bool"):
        lengths_from_mask(torch.ones(2, 3))


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_bidirectional_rnn_matches_unpadded_run(make_batch, cell: str) -> None:
    """Each sequence's outputs equal a run on that sequence alone (backward starts at its end)."""
    torch.manual_seed(0)
    x, mask = make_batch()
    rnn = SeqRNN(5, 6, cell=cell, merge="concat")
    out, _ = rnn(x, lengths_from_mask(mask))
    for b in range(x.shape[0]):
        n = int(mask[b].sum())
        alone, _ = rnn.rnn(x[b : b + 1, :n])  # (1, n, 12)
        torch.testing.assert_close(out[b, :n], alone[0])
        assert out[b, n:].abs().sum() == 0


@pytest.mark.parametrize("merge", ["sum", "mean"])
def test_direction_merge(make_batch, merge: str) -> None:
    torch.manual_seed(0)
    x, mask = make_batch()
    lengths = lengths_from_mask(mask)
    concat = SeqRNN(5, 6, merge="concat")
    merged = SeqRNN(5, 6, merge=merge)
    merged.load_state_dict(concat.state_dict())
    both, _ = concat(x, lengths)
    expected = both[..., :6] + both[..., 6:]
    if merge == "mean":
        expected = expected / 2
    torch.testing.assert_close(merged(x, lengths)[0], expected)
    assert merged.output_size == 6 and concat.output_size == 12


def test_masked_batch_norm_matches_batchnorm_on_valid_steps(make_batch) -> None:
    x, mask = make_batch(dim=3)
    masked, reference = MaskedBatchNorm(3), nn.BatchNorm1d(3)
    with torch.no_grad():
        masked.weight.copy_(torch.tensor([1.0, 2.0, 0.5]))
        reference.weight.copy_(masked.weight)
    garbage = x + 50.0 * (~mask).unsqueeze(-1)
    out = masked(garbage, mask)
    torch.testing.assert_close(out[mask], reference(x[mask]))
    assert out[~mask].abs().sum() == 0
    torch.testing.assert_close(masked.running_mean, reference.running_mean)
    torch.testing.assert_close(masked.running_var, reference.running_var)
    masked.eval(), reference.eval()
    torch.testing.assert_close(masked(garbage, mask)[mask], reference(x[mask]))


def test_weight_penalty_keras_semantics() -> None:
    torch.manual_seed(0)
    model = nn.ModuleDict(
        {"rnn": nn.LSTM(3, 4, bidirectional=True), "out": nn.Linear(4, 1), "norm": MaskedBatchNorm(4)}
    )
    params = dict(model.named_parameters())
    kernels = ["rnn.weight_ih_l0", "rnn.weight_ih_l0_reverse", "out.weight"]
    biases = [n for n in params if "bias" in n and not n.startswith("norm")]
    expected = 0.1 * sum(params[n].pow(2).sum() for n in kernels)
    expected = expected + 1e-4 * sum(params[n].abs().sum() for n in biases)
    torch.testing.assert_close(weight_penalty(model, l2_kernel=0.1, l1_bias=1e-4), expected)
    recurrent = sum(params[n].pow(2).sum() for n in ("rnn.weight_hh_l0", "rnn.weight_hh_l0_reverse"))
    torch.testing.assert_close(
        weight_penalty(model, l2_kernel=0.1, l1_bias=1e-4, l2_recurrent=0.5), expected + 0.5 * recurrent
    )
    assert weight_penalty(model, l2_kernel=0.0, l1_bias=0.0) == 0
