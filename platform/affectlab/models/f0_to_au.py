"""Seed 000: an encoder-decoder that maps an F0 sequence to an AU intensity token sequence.

Input 1 is the F0 sequence, either token ids over an ``ID_to_F0`` vocabulary (embedded) or
continuous Hz (clipped to ``f0_range``, scaled to [-1, 1], plus a voiced flag ``F0 > 0``).
Input 2 (training only, teacher forcing) is the AU token sequence shifted right behind SOS;
the target is the AU token sequence followed by EOS (see :func:`teacher_forcing_io`). The
loss is the categorical cross-entropy over the valid target tokens.

The decoder is an LSTM/GRU cell fed the embedding of the previous AU token and a context:
``"attention"`` (additive attention over the encoder states, query = previous decoder state),
``"aligned"`` (the encoder state at the same step: input and output run at the same rate), or
``"none"`` (only the initial state, bridged from the encoder's final states). Training can mix
in the model's own predictions (scheduled sampling, ``sampling_prob``); :meth:`F0ToAU.generate`
decodes without targets (greedy or beam search).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from affectlab.models.attention import AdditiveAttention
from affectlab.models.decoding import Decoded, State, beam_search, greedy_decode
from affectlab.models.layers import SeqRNN, lengths_from_mask

__all__ = ["CONTEXT_MODES", "INPUT_MODES", "F0ToAU", "teacher_forcing_io"]

CONTEXT_MODES = ("attention", "aligned", "none")
INPUT_MODES = ("tokens", "continuous")


def teacher_forcing_io(
    au_ids: torch.Tensor, mask: torch.Tensor, *, sos_id: int = 0, eos_id: int = 1
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Decoder input, target and target mask for teacher forcing.

    Args:
        au_ids: AU token ids (B, T), valid where ``mask``.
        mask: Left-aligned valid steps (B, T) bool.
        sos_id: Start token id.
        eos_id: End token id (also used as filler at padded positions).

    Returns:
        ``(decoder_input, target, target_mask)``, each (B, T + 1): input ``[SOS, y1..yn]``,
        target ``[y1..yn, EOS]``, mask True on the n + 1 target tokens.
    """
    lengths = lengths_from_mask(mask)  # (B,)
    batch = au_ids.shape[0]
    filled = au_ids.masked_fill(~mask, eos_id)  # (B, T)
    column = au_ids.new_full((batch, 1), eos_id)
    target = torch.cat([filled, column], dim=1)  # (B, T+1): EOS lands at position n
    decoder_input = torch.cat([au_ids.new_full((batch, 1), sos_id), filled], dim=1)  # (B, T+1)
    positions = torch.arange(target.shape[1], device=mask.device)
    target_mask = positions[None, :] <= lengths[:, None]  # (B, T+1)
    return decoder_input, target, target_mask


class _Memory(NamedTuple):
    enc: torch.Tensor  # (B, T, E)
    keys: torch.Tensor | None  # (B, T, U) projected keys for attention
    mask: torch.Tensor  # (B, T)
    lengths: torch.Tensor  # (B,)

    def repeat(self, k: int) -> _Memory:
        rep = [None if t is None else t.repeat_interleave(k, dim=0) for t in self]
        return _Memory(*rep)


class F0ToAU(nn.Module):
    """Seq2seq F0 -> AU tokens (see module docstring); build it with ``build_model("f0_to_au")``."""

    def __init__(
        self,
        *,
        au_vocab_size: int,
        input_mode: str,
        f0_vocab_size: int | None,
        f0_range: tuple[float, float],
        embed_dim: int,
        au_embed_dim: int,
        hidden: int,
        cell: str,
        encoder_layers: int,
        bidirectional: bool,
        context: str,
        attention_units: int,
        dropout: float,
        sos_id: int,
        eos_id: int,
    ) -> None:
        super().__init__()
        self.input_mode, self.context, self.cell_type = input_mode, context, cell
        self.f0_range, self.sos_id, self.eos_id = f0_range, sos_id, eos_id
        self.f0_embed = nn.Embedding(f0_vocab_size, embed_dim) if input_mode == "tokens" else None
        enc_in = embed_dim if input_mode == "tokens" else 2
        self.encoder = SeqRNN(
            enc_in, hidden, cell=cell, bidirectional=bidirectional, merge="concat", num_layers=encoder_layers
        )
        self.directions = 2 if bidirectional else 1
        enc_size = self.encoder.output_size
        self.bridge = nn.Linear(self.directions * hidden, hidden)
        ctx_size = 0 if context == "none" else enc_size
        self.attention = (
            AdditiveAttention(hidden, enc_size, units=attention_units) if context == "attention" else None
        )
        self.au_embed = nn.Embedding(au_vocab_size, au_embed_dim)
        cell_cls = nn.LSTMCell if cell == "lstm" else nn.GRUCell
        self.decoder = cell_cls(au_embed_dim + ctx_size, hidden)
        self.out = nn.Linear(hidden + ctx_size, au_vocab_size)
        self.drop = nn.Dropout(dropout)
        self.vocab_size = au_vocab_size

    # -- encoder -------------------------------------------------------------------------------
    def _features(self, src: torch.Tensor) -> torch.Tensor:
        """(B, T) token ids or Hz -> (B, T, E) encoder inputs."""
        if self.f0_embed is not None:
            return self.f0_embed(src.long())
        low, high = self.f0_range
        hz = src.float()
        scaled = (hz.clamp(low, high) - (low + high) / 2) / ((high - low) / 2)  # [-1, 1]
        return torch.stack([scaled, (hz > 0).float()], dim=-1)  # (B, T, 2)

    def encode(self, src: torch.Tensor, src_mask: torch.Tensor) -> tuple[_Memory, State]:
        """Encode ``src`` (B, T); returns the memory and the initial decoder state."""
        lengths = lengths_from_mask(src_mask)
        x = self.drop(self._features(src)) * src_mask.unsqueeze(-1).float()  # (B, T, E)
        enc, final = self.encoder(x, lengths)  # (B, T, enc_size)
        h_n = final[0] if isinstance(final, tuple) else final  # (layers * dirs, B, H)
        last = h_n[-self.directions :].transpose(0, 1).reshape(src.shape[0], -1)  # (B, dirs * H)
        h0 = torch.tanh(self.bridge(last))  # (B, H)
        state: State = (h0, torch.zeros_like(h0)) if self.cell_type == "lstm" else (h0,)
        keys = self.attention.project_keys(enc) if self.attention is not None else None
        return _Memory(enc, keys, src_mask, lengths), state

    # -- decoder -------------------------------------------------------------------------------
    def _context(self, memory: _Memory, state: State, j: int) -> torch.Tensor | None:
        if self.attention is not None:
            context, _ = self.attention(state[0], memory.enc, memory.keys, memory.mask)
            return context  # (N, E)
        if self.context == "aligned":
            step = min(j, memory.enc.shape[1] - 1)
            inside = (j < memory.lengths).unsqueeze(-1).to(memory.enc.dtype)  # EOS step: no frame
            return memory.enc[:, step] * inside  # (N, E)
        return None

    def _step(self, memory: _Memory, prev: torch.Tensor, state: State, j: int) -> tuple[torch.Tensor, State]:
        """One decoder step: previous tokens (N,) -> logits (N, V) and the new state."""
        context = self._context(memory, state, j)
        emb = self.drop(self.au_embed(prev))  # (N, A)
        inp = emb if context is None else torch.cat([emb, context], dim=-1)
        if self.cell_type == "lstm":
            h, c = self.decoder(inp, (state[0], state[1]))
            new_state: State = (h, c)
        else:
            h = self.decoder(inp, state[0])
            new_state = (h,)
        feats = h if context is None else torch.cat([h, context], dim=-1)
        return self.out(self.drop(feats)), new_state  # (N, V)

    def forward(
        self,
        src: torch.Tensor,
        src_mask: torch.Tensor,
        decoder_input: torch.Tensor,
        *,
        sampling_prob: float = 0.0,
    ) -> torch.Tensor:
        """Teacher-forced decoding (training and validation loss).

        Args:
            src: F0 ids or Hz (B, T).
            src_mask: Valid input steps (B, T) bool.
            decoder_input: ``[SOS, y1..yn]`` (B, L), see :func:`teacher_forcing_io`.
            sampling_prob: Scheduled sampling: at each step j > 0 and for each sequence, the
                probability of feeding the model's own previous prediction (argmax, no
                gradient) instead of ``decoder_input[:, j]``. Uses the global torch RNG.

        Returns:
            Logits (B, L, V).
        """
        memory, state = self.encode(src, src_mask)
        prev = decoder_input[:, 0]
        logits = []
        for j in range(decoder_input.shape[1]):
            if j > 0:
                prev = decoder_input[:, j]
                if sampling_prob > 0.0:
                    own = logits[-1].argmax(dim=-1).detach()  # (B,)
                    use_own = torch.rand(prev.shape[0], device=prev.device) < sampling_prob
                    prev = torch.where(use_own, own, prev)
            step_logits, state = self._step(memory, prev, state, j)
            logits.append(step_logits)
        return torch.stack(logits, dim=1)  # (B, L, V)

    @torch.no_grad()
    def generate(
        self,
        src: torch.Tensor,
        src_mask: torch.Tensor,
        *,
        beam_width: int = 1,
        stop_at_eos: bool = False,
        max_len: int | None = None,
        pick: str = "mode",
    ) -> Decoded:
        """Decode AU tokens without targets (call ``model.eval()`` first to turn dropout off).

        Args:
            src: F0 ids or Hz (B, T).
            src_mask: Valid input steps (B, T) bool.
            beam_width: 1 for greedy decoding, more for beam search.
            stop_at_eos: False: exactly as many AU tokens as input frames (the EOS that follows
                is implied). True: stop at the first EOS or after ``max_len`` tokens.
            max_len: Token budget when ``stop_at_eos`` (default T + 1).
            pick: Greedy decoding's choice per step: ``"mode"`` or ``"median"`` (the token that
                minimises the expected absolute intensity error; see
                :mod:`affectlab.models.decoding`). Beam search always ranks by probability.

        Returns:
            :class:`~affectlab.models.decoding.Decoded`: ids (B, L) with L = T (fixed length) or
            ``max_len``, EOS after each sequence's end, and the mask of real tokens.
        """
        memory, state = self.encode(src, src_mask)
        lengths = None if stop_at_eos else memory.lengths
        steps = (max_len or src.shape[1] + 1) if stop_at_eos else src.shape[1]
        common = dict(steps=steps, sos_id=self.sos_id, eos_id=self.eos_id, lengths=lengths, device=src.device)
        if beam_width <= 1:
            step = lambda prev, st, j: self._step(memory, prev, st, j)  # noqa: E731
            return greedy_decode(step, state, batch=src.shape[0], pick=pick, **common)
        wide = memory.repeat(beam_width)
        state = tuple(t.repeat_interleave(beam_width, dim=0) for t in state)
        step = lambda prev, st, j: self._step(wide, prev, st, j)  # noqa: E731
        return beam_search(step, state, batch=src.shape[0], beam_width=beam_width, **common)
