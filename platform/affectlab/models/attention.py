"""Attention components of seed 003: local intra-attention (eqs. 3-4) and inter-attention (5-7).

Intra-attention (IntraAtt) re-encodes every step ``t`` as a weighted sum of the steps ``t'`` in
a local window around it::

    g[t, t'] = tanh(W_t h[t] + W_x h[t'] + b_h)          # eq. 3
    α[t, t'] = sigmoid(W_a g[t, t'] + b_a) * L[t, t']     # eq. 4, L = window AND valid key
    a[t, t'] = α[t, t'] / Σ_t' α[t, t']                   # "the usual normalisation"
    out[t]   = Σ_t' a[t, t'] h[t']

Window ``w`` (as in keras-self-attention, which the paper's hyper-parameter names follow):
mode ``"bi"`` covers ``t - w//2 .. t + (w-1)//2`` (w steps centred on t: 7 past and 7 future
steps for w = 15); mode ``"pa"`` covers ``t - (w-1) .. t`` (the w-1 past steps and t itself).
The window is evaluated as a band of ``w`` neighbours, O(B·T·w·U) memory, never T x T.

``normalise="softmax"`` instead exponentiates the sigmoid scores before normalising
(exactly what keras-self-attention's ``attention_activation='sigmoid'`` computes).

Attention regulariser (our reading of the paper's "attention regulariser weight 1e-4 for
IntraAtt"): the penalty of keras-self-attention's ``attention_regularizer_weight``, from Lin et
al. (2017): ``||A Aᵀ - I||_F²`` averaged over the batch, where A (T x T) holds the normalised
weights a[t, t']. Here it is restricted to valid steps (padded rows/columns of A are zero and I
has ones on valid steps only). It pushes each step to attend to few positions and different
steps to attend to different positions. :meth:`IntraAttention.penalty` returns it for the
most recent forward pass.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["WINDOW_MODES", "AdditiveAttention", "IntraAttention", "window_offsets"]

WINDOW_MODES = ("bi", "pa")
_NEG = -1e9  # finite "minus infinity": rows whose keys are all padding stay NaN-free


def window_offsets(window: int, mode: str) -> tuple[int, int]:
    """First and last offset ``t' - t`` of the local window (both inclusive)."""
    if mode == "pa":
        return -(window - 1), 0
    return -(window // 2), (window - 1) // 2


def _band(x: torch.Tensor, lo: int, hi: int, fill: float = 0.0) -> torch.Tensor:
    """Neighbours of every step: (B, T, C) -> (B, T, w, C) with [b, t, i] = x[b, t + lo + i]."""
    padded = F.pad(x, (0, 0, -lo, hi), value=fill)  # (B, T + w - 1, C)
    return padded.unfold(1, hi - lo + 1, 1).permute(0, 1, 3, 2)  # (B, T, w, C)


class IntraAttention(nn.Module):
    """Local additive self-attention with sigmoid scores (seed 003, eqs. 3-4).

    Args:
        dim: Feature size D of the input sequence.
        units: Size U of the additive scoring space (W_t, W_x: D -> U; W_a: U -> 1).
        window: Window size ``w`` (>= 1).
        mode: ``"bi"`` (centred) or ``"pa"`` (past steps only).
        normalise: ``"sum"`` (divide sigmoid scores by their sum) or ``"softmax"``.
    """

    def __init__(
        self, dim: int, *, units: int = 32, window: int = 15, mode: str = "bi", normalise: str = "sum"
    ) -> None:
        super().__init__()
        self.w_t = nn.Linear(dim, units, bias=False)
        self.w_x = nn.Linear(dim, units)  # its bias is b_h
        self.w_a = nn.Linear(units, 1)
        self.window, self.mode, self.normalise = window, mode, normalise
        self._last: tuple[torch.Tensor, torch.Tensor] | None = None

    def forward(self, h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Attend over the window of each step.

        Args:
            h: Sequence (B, T, D).
            mask: Valid steps (B, T) bool.

        Returns:
            (B, T, D), zero at padded steps.
        """
        lo, hi = window_offsets(self.window, self.mode)
        query = self.w_t(h).unsqueeze(2)  # (B, T, 1, U)
        keys = _band(self.w_x(h), lo, hi)  # (B, T, w, U)
        scores = self.w_a(torch.tanh(query + keys)).squeeze(-1)  # (B, T, w)
        key_ok = _band(mask.unsqueeze(-1).to(h.dtype), lo, hi).squeeze(-1)  # (B, T, w), 0 outside
        alpha = torch.sigmoid(scores)
        if self.normalise == "softmax":
            alpha = torch.exp(alpha - alpha.max(dim=-1, keepdim=True).values)
        alpha = alpha * key_ok * mask.unsqueeze(-1).to(h.dtype)  # (B, T, w); padded queries -> 0
        weights = alpha / (alpha.sum(dim=-1, keepdim=True) + 1e-7)  # (B, T, w)
        self._last = (weights, mask)
        values = _band(h, lo, hi)  # (B, T, w, D)
        return torch.einsum("btw,btwd->btd", weights, values)  # (B, T, D)

    def dense_weights(self) -> torch.Tensor:
        """The last forward pass's weights as a dense (B, T, T) matrix A[b, t, t']."""
        if self._last is None:
            raise RuntimeError("IntraAttention.dense_weights() called before any forward pass")
        weights, _ = self._last
        batch, steps, width = weights.shape
        lo, _ = window_offsets(self.window, self.mode)
        device = weights.device
        cols = torch.arange(steps, device=device)[:, None] + torch.arange(width, device=device)  # (T, w)
        dense = weights.new_zeros(batch, steps, steps + width - 1)  # column c <-> t' = c + lo
        dense.scatter_(2, cols.expand(batch, steps, width), weights)
        return dense[:, :, -lo : -lo + steps]  # (B, T, T)

    def penalty(self) -> torch.Tensor:
        """``mean_b ||A Aᵀ - I_valid||_F²`` for the last forward pass (0 before any pass)."""
        if self._last is None:
            return torch.zeros(())
        _, mask = self._last
        dense = self.dense_weights()  # (B, T, T)
        gram = dense @ dense.transpose(1, 2)  # (B, T, T)
        eye = torch.diag_embed(mask.to(gram.dtype))  # (B, T, T), ones on valid steps
        return (gram - eye).pow(2).sum(dim=(1, 2)).mean()


class AdditiveAttention(nn.Module):
    """Additive (Bahdanau) inter-attention over encoder states (seed 003, eqs. 5-7).

    ``e[j, t] = V_a tanh(W_a s[j-1] + U_a h[t])``, a softmax over the valid ``t``, and the
    context ``c[j] = Σ_t α[j, t] h[t]``.

    Args:
        query_dim: Size of the decoder state s.
        key_dim: Size of the encoder states h.
        units: Size of the scoring space.
    """

    def __init__(self, query_dim: int, key_dim: int, *, units: int = 32) -> None:
        super().__init__()
        self.w_a = nn.Linear(query_dim, units, bias=False)
        self.w_a.recurrent_kernel = True  # acts on the decoder's own state
        self.u_a = nn.Linear(key_dim, units)
        self.v_a = nn.Linear(units, 1, bias=False)

    def project_keys(self, keys: torch.Tensor) -> torch.Tensor:
        """``U_a h`` for all steps, computed once per sequence: (B, T, K) -> (B, T, U)."""
        return self.u_a(keys)

    def forward(
        self, query: torch.Tensor, keys: torch.Tensor, keys_proj: torch.Tensor, mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One attention step.

        Args:
            query: Previous decoder state s[j-1] (B, Q).
            keys: Encoder states h (B, T, K).
            keys_proj: ``project_keys(keys)`` (B, T, U).
            mask: Valid encoder steps (B, T) bool.

        Returns:
            ``(context (B, K), weights (B, T))``.
        """
        energy = self.v_a(torch.tanh(self.w_a(query).unsqueeze(1) + keys_proj)).squeeze(-1)  # (B, T)
        weights = torch.softmax(energy.masked_fill(~mask, _NEG), dim=-1)  # (B, T)
        context = torch.bmm(weights.unsqueeze(1), keys).squeeze(1)  # (B, K)
        return context, weights
