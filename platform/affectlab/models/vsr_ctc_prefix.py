"""CTC prefix scores for joint CTC / attention decoding of the lip reader (Watanabe et al., 2017).

The decoder's attention can drift on long utterances (skip or repeat words); the CTC head's
per-frame outputs are monotonic by construction. In joint decoding a hypothesis is ranked by
``(1 - w) * decoder + w * CTC (+ lm_weight * LM)``, where the CTC term of a prefix ``g`` is the
log-probability that the CTC output *starts with* ``g`` (its prefix probability), and of ``g``
followed by EOS, that the CTC output *is* ``g``. :class:`CTCPrefixScorer` gives, per step, the
increment ``log p_ctc(g + c ...) - log p_ctc(g ...)`` for every next token ``c`` in the
:data:`~affectlab.models.vsr_decoding.ScoreFn` form the beam search calls, so greedy and beam
decoding take it like any other scorer.

The recursion (the prefix forward variables ``r^n_t(g)`` / ``r^b_t(g)``: CTC paths over frames
``0..t`` that emit ``g`` ending in a non-blank / blank) runs once per frame over all hypotheses
and next tokens together. Padded frames of shorter clips get blank probability 1 and nothing
else, which leaves every prefix probability unchanged.
"""

from __future__ import annotations

import torch

from affectlab.models.vsr_vocab import BLANK_ID, EOS_ID, PAD_ID, SOS_ID

__all__ = ["CTCPrefixScorer"]

NEG_INF = float("-inf")


class CTCPrefixScorer:
    """Scorer of CTC prefix log-probability increments over per-frame log-probabilities.

    Args:
        log_probs: (B, T, V) per-frame log-probabilities of B utterances (log-softmax of the CTC head).
        lengths: (B,) frames of each utterance (None: all T).

    Calling it with ``prefix`` (N, L) (each starting with SOS, extended by one token per call as
    the beam search does) and ``rows`` (N,) returns (N, V): for each next token the increment of
    the CTC prefix log-probability; EOS gets the probability that the output is the prefix
    exactly; PAD, SOS and BLANK get -inf; prefixes already ended by EOS get 0.
    """

    def __init__(self, log_probs: torch.Tensor, lengths: torch.Tensor | None = None) -> None:
        x = log_probs.detach().float().clone()  # (B, T, V)
        if lengths is not None:
            padded = torch.arange(x.shape[1], device=x.device)[None, :] >= lengths.to(x.device)[:, None]  # (B, T)
            only_blank = x.new_full((x.shape[2],), NEG_INF)
            only_blank[BLANK_ID] = 0.0
            x[padded] = only_blank
        self.x = x
        self._keys: dict[tuple[int, tuple[int, ...]], int] = {}
        self._r_n = self._r_b = self._psi = None  # states of every extension of the last call's prefixes

    def _start(self, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """States of the empty prefix: no non-blank path, all-blank paths, prefix probability 1."""
        blank = self.x[rows, :, BLANK_ID]  # (N, T)
        return torch.full_like(blank, NEG_INF), blank.cumsum(dim=1), torch.zeros(len(rows), device=blank.device)

    def _parents(self, prefix: torch.Tensor, rows: torch.Tensor
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """(r_n, r_b) (N, T), prefix log-probability (N,) and ended-by-EOS flags (N,) of each prefix."""
        ended = (prefix == EOS_ID).any(dim=1)
        if prefix.shape[1] == 1:
            return (*self._start(rows), ended)
        n, t = prefix.shape[0], self.x.shape[1]
        r_n, r_b = self.x.new_full((n, t), NEG_INF), self.x.new_full((n, t), NEG_INF)
        psi = self.x.new_zeros(n)
        for i, (row, ids) in enumerate(zip(rows.tolist(), prefix.tolist(), strict=True)):
            if ended[i]:
                continue
            k = self._keys.get((row, tuple(ids[:-1])))
            if k is None:
                raise ValueError(f"CTC prefix scorer: prefix {ids} of utterance {row} does not extend a prefix of "
                                 "the previous call (the scorer follows a search one token per call)")
            c = ids[-1]
            r_n[i], r_b[i], psi[i] = self._r_n[k, :, c], self._r_b[k, :, c], self._psi[k, c]
        return r_n, r_b, psi, ended

    def __call__(self, prefix: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        """Per-token CTC prefix log-probability increments (N, V) (class docstring)."""
        r_n, r_b, psi, ended = self._parents(prefix, rows)
        x = self.x[rows]  # (N, T, V)
        n, t, v = x.shape
        last = prefix[:, -1]
        # phi_t: paths over frames 0..t that emit g and may be followed by c in frame t+1 (no merge with a repeat)
        repeat = torch.arange(v, device=x.device)[None, None, :] == last[:, None, None]  # (N, 1, V)
        phi = torch.where(repeat, r_b[:, :, None], torch.logaddexp(r_b, r_n)[:, :, None])  # (N, T, V)
        new_n, new_b = x.new_full((n, t, v), NEG_INF), x.new_full((n, t, v), NEG_INF)
        empty = prefix.shape[1] == 1
        if empty:
            new_n[:, 0] = x[:, 0]
        for frame in range(1, t):
            new_n[:, frame] = torch.logaddexp(new_n[:, frame - 1], phi[:, frame - 1]) + x[:, frame]
            new_b[:, frame] = torch.logaddexp(new_b[:, frame - 1], new_n[:, frame - 1]) + x[:, frame, BLANK_ID, None]
        start = x[:, 0] if empty else x.new_full((n, v), NEG_INF)
        new_psi = torch.logaddexp(start, torch.logsumexp(phi[:, :-1] + x[:, 1:], dim=1)) if t > 1 else start
        new_psi[:, EOS_ID] = torch.logaddexp(r_n[:, -1], r_b[:, -1])
        new_psi[:, [PAD_ID, SOS_ID, BLANK_ID]] = NEG_INF
        self._r_n, self._r_b, self._psi = new_n, new_b, new_psi
        self._keys = {(row, tuple(ids)): i for i, (row, ids) in enumerate(zip(rows.tolist(), prefix.tolist(),
                                                                                strict=True))}
        out = new_psi - psi[:, None]
        out[ended] = 0.0
        return out
