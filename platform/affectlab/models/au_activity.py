"""Seed 003: per-step binary AU activity classifiers (one model per AU and per class).

Input features x (B, T, D) with a left-aligned mask (B, T); output logits (B, T) for one class
(onset, apex, offset or occurrence of one AU). Apply a sigmoid for probabilities.

Architectures (Section II and IV-A of the paper):

* ``stacked``: BiLSTM -> BiLSTM -> per-step linear classifier.
* ``stacked_intraatt``: one IntraAtt component between the two BiLSTM layers.
* ``stacked2_intraatt``: two IntraAtt components, one on the "encoding" (after the first
  BiLSTM) and one on the "decoding" sequence (after the second BiLSTM).
* ``encdec``: BiLSTM encoder -> recurrent decoder without attention; step j of the decoder sees
  the aligned encoder state h[j] (eq. 2, T_e = T_d) and its own previous prediction.
* ``enc_interatt_dec``: BiLSTM encoder -> additive inter-attention (eqs. 5-7) -> GRU-style
  decoder (eqs. 8-10) fed its previous prediction ŷ[j-1]. ``aligned_input=True`` also feeds
  the aligned encoder state h[j] (eqs. 8-10 verbatim give the decoder no direct view of step
  j, so it must find it through attention; that learns position-locked rules slowly).
* ``enc_interatt_dec_intraatt``: as above with IntraAtt on the encoded sequence before the
  inter-attention. (Our reading of the name: an IntraAtt *after* the decoder could not feed
  its output back into the decoder's ŷ[j-1] loop, so it is applied to the encoder output.)

Decoders use the *predicted* previous label ŷ[j-1] = sigmoid(logit[j-1]) in training and
inference (Section IV-A); ŷ[0] = 0 and s[0] = tanh(W_s h[1]). The feedback is differentiable
unless ``feedback="hard"`` (a detached 0/1 decision).

Advanced settings (Section II-C / IV-C): bidirectional merge by sum (default; ``mean`` and
``concat`` available), masked batch normalisation after every recurrent/attention layer,
dropout 0.2 after every layer, hidden size 20, and :meth:`AUActivityModel.regularization_loss`
= L2 1e-1 on kernels + L1 1e-4 on biases + 1e-4 x the IntraAtt penalty (see
:mod:`affectlab.models.attention`). Batch norm is not applied inside the decoder loop.
"""

from __future__ import annotations

import torch
from torch import nn

from affectlab.models.attention import AdditiveAttention, IntraAttention
from affectlab.models.layers import MaskedBatchNorm, SeqRNN, lengths_from_mask, weight_penalty

__all__ = ["AUActivityModel", "EncDecNet", "FeedbackGRUCell", "StackedNet"]


class AUActivityModel(nn.Module):
    """Base of the seed-003 models: holds the regularisation weights.

    Args:
        l2_kernel: L2 weight on kernels.
        l1_bias: L1 weight on biases.
        attention_reg: Weight of the IntraAtt penalty ``||AAᵀ - I||²``.
    """

    def __init__(self, *, l2_kernel: float, l1_bias: float, attention_reg: float) -> None:
        super().__init__()
        self.l2_kernel, self.l1_bias, self.attention_reg = l2_kernel, l1_bias, attention_reg

    def regularization_loss(self) -> torch.Tensor:
        """Weight penalties plus the attention penalty of the most recent forward pass.

        Call it after ``forward`` and add it to the data loss (Keras adds its regularisation
        losses the same way).
        """
        total = weight_penalty(self, l2_kernel=self.l2_kernel, l1_bias=self.l1_bias)
        if self.attention_reg:
            for module in self.modules():
                if isinstance(module, IntraAttention):
                    total = total + self.attention_reg * module.penalty().to(total.device)
        return total


class _Block(nn.Module):
    """One layer with its batch norm and dropout: (B, T, D) -> (B, T, out_size)."""

    def __init__(self, layer: nn.Module, out_size: int, *, batch_norm: bool, dropout: float) -> None:
        super().__init__()
        self.layer = layer
        self.norm = MaskedBatchNorm(out_size) if batch_norm else None
        self.drop = nn.Dropout(dropout)
        self.out_size = out_size

    def forward(self, x: torch.Tensor, mask: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        if isinstance(self.layer, SeqRNN):
            y, _ = self.layer(x, lengths)
        else:
            y = self.layer(x, mask)
        if self.norm is not None:
            y = self.norm(y, mask)
        return self.drop(y) * mask.unsqueeze(-1).to(y.dtype)


def _rnn_block(in_size: int, hidden: int, merge: str, batch_norm: bool, dropout: float) -> _Block:
    rnn = SeqRNN(in_size, hidden, cell="lstm", bidirectional=True, merge=merge)
    return _Block(rnn, rnn.output_size, batch_norm=batch_norm, dropout=dropout)


def _intra_block(size: int, intra: dict, batch_norm: bool, dropout: float) -> _Block:
    return _Block(IntraAttention(size, **intra), size, batch_norm=batch_norm, dropout=dropout)


class StackedNet(AUActivityModel):
    """Stacked BiLSTMs with optional IntraAtt after chosen layers and a per-step classifier.

    Args:
        input_dim: Feature size D.
        hidden: Hidden units per direction.
        num_layers: Number of BiLSTM layers.
        intra_after: Indices of the BiLSTM layers followed by an IntraAtt component.
        intra: Keyword arguments of :class:`IntraAttention` (units, window, mode, normalise).
        merge: Bidirectional merge (``sum``, ``mean``, ``concat``).
        batch_norm: Masked batch norm after every layer.
        dropout: Dropout after every layer.
        **reg: ``l2_kernel``, ``l1_bias``, ``attention_reg``.
    """

    def __init__(
        self,
        input_dim: int,
        *,
        hidden: int,
        num_layers: int,
        intra_after: tuple[int, ...],
        intra: dict,
        merge: str,
        batch_norm: bool,
        dropout: float,
        **reg: float,
    ) -> None:
        super().__init__(**reg)
        blocks: list[_Block] = []
        size = input_dim
        for index in range(num_layers):
            blocks.append(_rnn_block(size, hidden, merge, batch_norm, dropout))
            size = blocks[-1].out_size
            if index in intra_after:
                blocks.append(_intra_block(size, intra, batch_norm, dropout))
        self.blocks = nn.ModuleList(blocks)
        self.classifier = nn.Linear(size, 1)

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Per-step logits (B, T) for features x (B, T, D) and mask (B, T); padded steps are 0."""
        lengths = lengths_from_mask(mask)
        h = x * mask.unsqueeze(-1).to(x.dtype)  # (B, T, D)
        for block in self.blocks:
            h = block(h, mask, lengths)  # (B, T, H')
        return self.classifier(h).squeeze(-1) * mask.to(h.dtype)  # (B, T)


class FeedbackGRUCell(nn.Module):
    """The decoder of eqs. 8-10: a GRU cell driven by ŷ[j-1] and a context c[j].

    ``r = σ(W_r ŷ + U_r s + C_r c)``, ``z = σ(W_z ŷ + U_z s + C_z c)``,
    ``ŝ = tanh(W_p ŷ + U_p (r * s) + C_p c)``, ``s' = (1 - z) s + z ŝ`` and the output logit
    ``W_o ŷ + U_o s' + C_o c`` (eq. 10 before its sigmoid).
    """

    def __init__(self, ctx_dim: int, hidden: int) -> None:
        super().__init__()
        self.from_y = nn.Linear(1, 3 * hidden)  # W_r, W_z, W_p (+ the gate biases)
        self.from_c = nn.Linear(ctx_dim, 3 * hidden, bias=False)  # C_r, C_z, C_p
        self.from_s = nn.Linear(hidden, 2 * hidden, bias=False)  # U_r, U_z
        self.u_p = nn.Linear(hidden, hidden, bias=False)
        self.from_s.recurrent_kernel = self.u_p.recurrent_kernel = True
        self.out = nn.Linear(1 + hidden + ctx_dim, 1)  # [W_o, U_o, C_o]

    def forward(
        self, y_prev: torch.Tensor, s_prev: torch.Tensor, context: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """y_prev (B, 1), s_prev (B, S), context (B, C) -> (logit (B, 1), s (B, S))."""
        y_r, y_z, y_p = self.from_y(y_prev).chunk(3, dim=-1)  # (B, S) each
        c_r, c_z, c_p = self.from_c(context).chunk(3, dim=-1)
        s_r, s_z = self.from_s(s_prev).chunk(2, dim=-1)
        reset = torch.sigmoid(y_r + s_r + c_r)
        update = torch.sigmoid(y_z + s_z + c_z)
        proposal = torch.tanh(y_p + self.u_p(reset * s_prev) + c_p)  # eq. 8
        state = (1 - update) * s_prev + update * proposal  # eq. 9
        logit = self.out(torch.cat([y_prev, state, context], dim=-1))  # eq. 10
        return logit, state


class EncDecNet(AUActivityModel):
    """BiLSTM encoder (+ optional IntraAtt) and a feedback decoder (+ optional inter-attention).

    Args:
        input_dim: Feature size D.
        hidden: Hidden units per direction (encoder) and decoder state size.
        encoder_layers: Number of BiLSTM layers in the encoder.
        inter_attention: Use additive inter-attention for the context; else the aligned h[j].
        intra: IntraAtt keyword arguments, or None for no IntraAtt on the encoder output.
        attention_units: Size of the inter-attention scoring space.
        feedback: ``"prob"`` (ŷ = sigmoid(logit), differentiable) or ``"hard"`` (0/1, detached).
        aligned_input: With inter-attention, also give the decoder the aligned encoder state
            h[j] (context ``[c_j, h_j]``; eq. 2 read literally). Off by default (eqs. 8-10
            verbatim), where the decoder must locate step j by attention alone.
        merge, batch_norm, dropout, **reg: as in :class:`StackedNet`.
    """

    def __init__(
        self,
        input_dim: int,
        *,
        hidden: int,
        encoder_layers: int,
        inter_attention: bool,
        intra: dict | None,
        attention_units: int,
        feedback: str,
        aligned_input: bool,
        merge: str,
        batch_norm: bool,
        dropout: float,
        **reg: float,
    ) -> None:
        super().__init__(**reg)
        blocks: list[_Block] = []
        size = input_dim
        for _ in range(encoder_layers):
            blocks.append(_rnn_block(size, hidden, merge, batch_norm, dropout))
            size = blocks[-1].out_size
        if intra is not None:
            blocks.append(_intra_block(size, intra, batch_norm, dropout))
        self.encoder = nn.ModuleList(blocks)
        self.init_state = nn.Linear(size, hidden)  # W_s: s[0] = tanh(W_s h[1])
        self.attention = AdditiveAttention(hidden, size, units=attention_units) if inter_attention else None
        self.aligned_input = aligned_input and inter_attention
        self.cell = FeedbackGRUCell(2 * size if self.aligned_input else size, hidden)
        self.feedback = feedback

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Per-step logits (B, T) for features x (B, T, D) and mask (B, T); padded steps are 0."""
        lengths = lengths_from_mask(mask)
        h = x * mask.unsqueeze(-1).to(x.dtype)
        for block in self.encoder:
            h = block(h, mask, lengths)  # (B, T, H')
        logits = self._decode(h, mask)  # (B, T)
        return logits * mask.to(logits.dtype)

    def _decode(self, h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Run the decoder over all T steps of the encoded sequence h (B, T, H')."""
        state = torch.tanh(self.init_state(h[:, 0]))  # (B, S)
        y_prev = h.new_zeros(h.shape[0], 1)  # (B, 1)
        keys_proj = self.attention.project_keys(h) if self.attention is not None else None
        logits = []
        for j in range(h.shape[1]):
            if self.attention is not None:
                context, _ = self.attention(state, h, keys_proj, mask)  # (B, H')
                if self.aligned_input:
                    context = torch.cat([context, h[:, j]], dim=-1)  # (B, 2H')
            else:
                context = h[:, j]  # (B, H'): eq. 2 with T_e = T_d
            logit, state = self.cell(y_prev, state, context)  # (B, 1), (B, S)
            logits.append(logit)
            y_prev = torch.sigmoid(logit) if self.feedback == "prob" else (logit > 0).to(h.dtype)
        return torch.cat(logits, dim=1)  # (B, T)
