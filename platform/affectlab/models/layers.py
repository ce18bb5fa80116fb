"""Building blocks shared by the sequence models: masks, packed RNNs, masked batch norm, penalties.

Every block takes a boolean ``mask`` of shape ``(B, T)`` that is True on real steps. Masks must
be left-aligned (the valid steps of a sequence come first, padding after), which is what
zero-padding to a fixed length produces. The blocks are written so that the outputs at valid
steps never depend on what the padded steps contain, nor on how many padded steps there are:

* recurrent layers run on packed sequences, so a backward direction starts at the last *real*
  step, not at the end of the padding;
* :class:`MaskedBatchNorm` computes its batch statistics over valid steps only (in training as
  well as in eval mode), and zeroes the padded steps;
* attention layers (see :mod:`affectlab.models.attention`) give padded keys zero weight.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from affectlab.errors import DatasetError

__all__ = [
    "MERGE_MODES",
    "RNN_CELLS",
    "MaskedBatchNorm",
    "SeqRNN",
    "lengths_from_mask",
    "weight_penalty",
]

MERGE_MODES = ("sum", "mean", "concat")
RNN_CELLS = ("lstm", "gru")


def lengths_from_mask(mask: torch.Tensor) -> torch.Tensor:
    """Sequence lengths (B,) from a left-aligned boolean mask (B, T).

    Raises:
        DatasetError: The mask is not 2-D boolean or has a valid step after a padded one.
    """
    if mask.dim() != 2 or mask.dtype != torch.bool:
        raise DatasetError(
            f"mask must be a (B, T) bool tensor, got {mask.dtype} of shape {tuple(mask.shape)}"
        )
    lengths = mask.sum(dim=1)  # (B,)
    steps = torch.arange(mask.shape[1], device=mask.device)
    if not torch.equal(mask, steps[None, :] < lengths[:, None]):
        raise DatasetError("mask must be left-aligned: valid steps first, padding after")
    return lengths


class SeqRNN(nn.Module):
    """A (bi)directional LSTM/GRU over packed sequences, with the directions merged.

    Args:
        input_size: Feature size D of the input.
        hidden_size: Hidden size H per direction.
        cell: ``"lstm"`` or ``"gru"``.
        bidirectional: Run a backward direction too.
        merge: How to merge the directions: ``"sum"`` (the paper's choice), ``"mean"`` or
            ``"concat"`` (output size 2H).
        num_layers: Stacked layers inside the one cuDNN-style module.
    """

    def __init__(
        self,
        input_size: int,
        hidden_size: int,
        *,
        cell: str = "lstm",
        bidirectional: bool = True,
        merge: str = "sum",
        num_layers: int = 1,
    ) -> None:
        super().__init__()
        rnn_cls = nn.LSTM if cell == "lstm" else nn.GRU
        self.rnn = rnn_cls(
            input_size, hidden_size, num_layers=num_layers, batch_first=True, bidirectional=bidirectional
        )
        self.hidden_size = hidden_size
        self.bidirectional = bidirectional
        self.merge = merge
        self.output_size = 2 * hidden_size if (bidirectional and merge == "concat") else hidden_size

    def forward(
        self, x: torch.Tensor, lengths: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor | tuple[torch.Tensor, torch.Tensor]]:
        """Run the RNN on the valid steps of ``x``.

        Args:
            x: Inputs (B, T, D).
            lengths: Valid lengths (B,); zero lengths are run as length 1 (callers mask them).

        Returns:
            ``(outputs, final_state)``: outputs (B, T, output_size), zero at padded steps;
            final_state as returned by torch (h_n, or (h_n, c_n) for an LSTM), each
            (num_layers * directions, B, H), in the original batch order.
        """
        total = x.shape[1]
        packed = pack_padded_sequence(
            x, lengths.clamp_min(1).cpu(), batch_first=True, enforce_sorted=False
        )
        out, state = self.rnn(packed)
        out, _ = pad_packed_sequence(out, batch_first=True, total_length=total)  # (B, T, dirs*H)
        if self.bidirectional and self.merge != "concat":
            fwd, bwd = out[..., : self.hidden_size], out[..., self.hidden_size :]  # (B, T, H) each
            out = fwd + bwd if self.merge == "sum" else 0.5 * (fwd + bwd)
        return out, state


class MaskedBatchNorm(nn.Module):
    """Batch normalisation over the feature axis of (B, T, C), using valid steps only.

    In training mode the mean and (biased) variance are computed over the valid steps of the
    whole batch and the running statistics are updated (with the unbiased variance, as
    ``nn.BatchNorm1d`` does); in eval mode the running statistics are used. A batch with fewer
    than two valid steps falls back to the running statistics. Padded outputs are zero.
    """

    def __init__(self, num_features: int, *, momentum: float = 0.1, eps: float = 1e-5) -> None:
        super().__init__()
        self.momentum = momentum
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(num_features))
        self.bias = nn.Parameter(torch.zeros(num_features))
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_var", torch.ones(num_features))

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Normalise ``x`` (B, T, C) over its valid steps; returns (B, T, C)."""
        valid = x[mask]  # (N, C)
        if self.training and valid.shape[0] > 1:
            mean = valid.mean(dim=0)  # (C,)
            var = valid.var(dim=0, unbiased=False)  # (C,)
            with torch.no_grad():
                n = valid.shape[0]
                self.running_mean.lerp_(mean.detach(), self.momentum)
                self.running_var.lerp_(var.detach() * n / (n - 1), self.momentum)
        else:
            mean, var = self.running_mean, self.running_var
        y = (x - mean) * torch.rsqrt(var + self.eps) * self.weight + self.bias  # (B, T, C)
        return y * mask.unsqueeze(-1).to(y.dtype)


def _rnn_params(module: nn.Module) -> Iterable[tuple[str, torch.Tensor]]:
    for name, param in module.named_parameters(recurse=False):
        if name.startswith("weight_ih"):
            yield "kernel", param
        elif name.startswith("weight_hh"):
            yield "recurrent", param
        elif name.startswith("bias"):
            yield "bias", param


def _classified_params(model: nn.Module) -> Iterable[tuple[str, torch.Tensor]]:
    """Yield ("kernel" | "recurrent" | "bias", parameter) in the Keras sense.

    Input-to-hidden matrices of RNNs and the weights of linear layers are kernels; hidden-to-
    hidden matrices (and linear layers flagged ``recurrent_kernel = True``) are recurrent
    kernels; all their biases are biases. Batch-norm scales/shifts and embeddings are none.
    """
    for module in model.modules():
        if isinstance(module, nn.RNNBase | nn.RNNCellBase):
            yield from _rnn_params(module)
        elif isinstance(module, nn.Linear):
            kind = "recurrent" if getattr(module, "recurrent_kernel", False) else "kernel"
            yield kind, module.weight
            if module.bias is not None:
                yield "bias", module.bias


def weight_penalty(
    model: nn.Module, *, l2_kernel: float, l1_bias: float, l2_recurrent: float = 0.0
) -> torch.Tensor:
    """Keras-style weight regularisation: ``l2 * sum(W**2)`` on kernels, ``l1 * sum(|b|)`` on biases.

    Args:
        model: The module whose parameters are penalised.
        l2_kernel: Weight of the L2 penalty on kernels (the paper: 1e-1).
        l1_bias: Weight of the L1 penalty on biases (the paper: 1e-4).
        l2_recurrent: Weight of an L2 penalty on recurrent kernels (Keras' separate
            ``recurrent_regularizer``; 0 by default, as the paper names only a kernel regulariser).

    Returns:
        A scalar tensor (zero when every weight is 0).
    """
    total = torch.zeros(())
    coeff = {"kernel": l2_kernel, "recurrent": l2_recurrent, "bias": l1_bias}
    for kind, param in _classified_params(model):
        weight = coeff[kind]
        if weight == 0.0:
            continue
        term = param.abs().sum() if kind == "bias" else param.pow(2).sum()
        total = total.to(param.device) + weight * term
    return total
