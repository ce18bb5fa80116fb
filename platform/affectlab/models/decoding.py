"""Greedy and beam-search decoding for token decoders (used by the seed-000 F0 -> AU model).

A decoder is given as a step function ``step(prev_tokens (N,), state, j) -> (logits (N, V),
state)`` where ``state`` is a tuple of tensors whose first dimension is N (beam search reorders
them with ``index_select``). Two output-length policies:

* fixed length (``lengths`` given): sequence b gets exactly ``lengths[b]`` non-special tokens
  (SOS and EOS are forbidden before that; the EOS that follows is implied, not decoded);
* stop at EOS (``lengths`` None): decode up to ``steps`` tokens; a sequence ends at its first
  EOS. SOS is never produced.

Both return the tokens (B, steps), with EOS at every position after a sequence's end, and a
mask (B, steps) of the real tokens. Beam search keeps, per input, the ``beam_width`` best
partial sequences by summed log-probability (no length penalty); with width 1 it is greedy.

Greedy decoding picks per step either the most probable token (``pick="mode"``) or the
*median* token (``pick="median"``): when the token ids are ordered like the values they stand
for (the AU vocabulary: ids 2.. are intensities 0, step, ..., 5), the median of the step's
distribution minimises the expected absolute error of that step, whereas the mode minimises
the token error rate. Special tokens keep their place in the id order; they are forbidden
inside fixed-length outputs, so there the median is one of the value tokens.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import torch

__all__ = ["PICKS", "Decoded", "State", "StepFn", "beam_search", "greedy_decode", "median_token"]

PICKS = ("mode", "median")

State = tuple[torch.Tensor, ...]
StepFn = Callable[[torch.Tensor, State, int], tuple[torch.Tensor, State]]


class Decoded(NamedTuple):
    """Decoder output: token ids (B, L) and a mask (B, L) of real (non-EOS-padding) tokens."""

    ids: torch.Tensor
    mask: torch.Tensor


def _constrain(
    logp: torch.Tensor, j: int, done: torch.Tensor, lengths: torch.Tensor | None, sos_id: int, eos_id: int
) -> torch.Tensor:
    """Forbid SOS, forbid EOS before a fixed length, and make finished rows emit EOS at no cost."""
    logp = logp.clone()  # (N, V)
    logp[:, sos_id] = float("-inf")
    if lengths is not None:
        logp[:, eos_id] = float("-inf")
        done = done | (j >= lengths)
    logp[done] = float("-inf")
    logp[done, eos_id] = 0.0
    return logp


def _finish(tokens: torch.Tensor, lengths: torch.Tensor | None, steps: int, eos_id: int) -> Decoded:
    """Pad decoded tokens (B, L') to ``steps`` columns and compute the mask of real tokens."""
    batch = tokens.shape[0]
    if tokens.shape[1] < steps:
        pad = tokens.new_full((batch, steps - tokens.shape[1]), eos_id)
        tokens = torch.cat([tokens, pad], dim=1)
    positions = torch.arange(steps, device=tokens.device)
    if lengths is not None:
        mask = positions[None, :] < lengths[:, None]
    else:
        is_eos = tokens == eos_id
        never = torch.full((batch,), steps, dtype=torch.long, device=tokens.device)
        first_eos = torch.where(is_eos.any(dim=1), is_eos.int().argmax(dim=1), never)  # (B,)
        mask = positions[None, :] < first_eos[:, None]
    return Decoded(tokens.masked_fill(~mask, eos_id), mask)


def median_token(logp: torch.Tensor) -> torch.Tensor:
    """Per row of log-probabilities (N, V), the first id whose cumulative probability reaches 1/2."""
    cdf = torch.cumsum(torch.softmax(logp, dim=-1), dim=-1)
    return torch.searchsorted(cdf, torch.full((logp.shape[0], 1), 0.5, dtype=cdf.dtype, device=cdf.device)).squeeze(1).clamp(
        max=logp.shape[-1] - 1)


@torch.no_grad()
def greedy_decode(
    step: StepFn,
    state: State,
    *,
    batch: int,
    steps: int,
    sos_id: int,
    eos_id: int,
    lengths: torch.Tensor | None = None,
    device: torch.device | str = "cpu",
    pick: str = "mode",
) -> Decoded:
    """Pick the most probable (or the median) token at every step.

    Args:
        step: The decoder's step function (see module docstring).
        state: Initial decoder state (tensors with first dimension ``batch``).
        batch: Batch size B.
        steps: Maximum number of tokens to decode.
        sos_id: Start token, fed at step 0 and never produced.
        eos_id: End token.
        lengths: Fixed output lengths (B,), or None to stop at EOS.
        device: Device of the token tensors.
        pick: ``"mode"`` (most probable token) or ``"median"`` (see module docstring).

    Returns:
        :class:`Decoded` with ids and mask of shape (B, steps).

    Raises:
        ValueError: Unknown ``pick``.
    """
    if pick not in PICKS:
        raise ValueError(f"pick: {pick!r} is not one of {', '.join(PICKS)}")
    prev = torch.full((batch,), sos_id, dtype=torch.long, device=device)
    done = torch.zeros(batch, dtype=torch.bool, device=device)
    out = []
    for j in range(steps):
        logits, state = step(prev, state, j)
        logp = _constrain(torch.log_softmax(logits, dim=-1), j, done, lengths, sos_id, eos_id)  # (B, V)
        prev = logp.argmax(dim=-1) if pick == "mode" else median_token(logp)  # (B,)
        out.append(prev)
        if lengths is None:
            done = done | (prev == eos_id)
            if bool(done.all()):
                break
    return _finish(torch.stack(out, dim=1), lengths, steps, eos_id)


@torch.no_grad()
def beam_search(
    step: StepFn,
    state: State,
    *,
    batch: int,
    beam_width: int,
    steps: int,
    sos_id: int,
    eos_id: int,
    lengths: torch.Tensor | None = None,
    device: torch.device | str = "cpu",
) -> Decoded:
    """Beam search over ``beam_width`` hypotheses per input.

    ``state`` (and whatever the step function closes over, such as encoder outputs) must
    already be repeated ``beam_width`` times per input, in the order ``b * K + k`` (use
    ``repeat_interleave(K, dim=0)``). Arguments otherwise as in :func:`greedy_decode`;
    ``lengths`` is given per input (B,).

    Returns:
        :class:`Decoded` for the best hypothesis of each input, shape (B, steps).
    """
    width = beam_width
    rows = batch * width
    row_lengths = lengths.repeat_interleave(width) if lengths is not None else None  # (N,)
    prev = torch.full((rows,), sos_id, dtype=torch.long, device=device)
    done = torch.zeros(rows, dtype=torch.bool, device=device)
    scores = torch.full((batch, width), float("-inf"), device=device)
    scores[:, 0] = 0.0  # all beams start identical: keep one so the first step has no duplicates
    offsets = (torch.arange(batch, device=device) * width)[:, None]  # (B, 1)
    tokens_hist, parents_hist = [], []
    for j in range(steps):
        logits, state = step(prev, state, j)
        logp = _constrain(torch.log_softmax(logits, dim=-1), j, done, row_lengths, sos_id, eos_id)  # (N, V)
        vocab = logp.shape[1]
        total = (scores.reshape(rows, 1) + logp).reshape(batch, width * vocab)  # (B, K*V)
        scores, flat = total.topk(width, dim=1)  # (B, K)
        parents, tokens = flat // vocab, flat % vocab  # (B, K)
        order = (offsets + parents).reshape(rows)  # (N,)
        state = tuple(t.index_select(0, order) for t in state)
        prev = tokens.reshape(rows)
        done = done.index_select(0, order)
        tokens_hist.append(tokens)
        parents_hist.append(parents)
        if lengths is None:
            done = done | (prev == eos_id)
            if bool(done.all()):
                break
    return _finish(_backtrack(tokens_hist, parents_hist), lengths, steps, eos_id)


def _backtrack(tokens_hist: list[torch.Tensor], parents_hist: list[torch.Tensor]) -> torch.Tensor:
    """Follow the parent pointers from the best final beam (index 0 after topk): (B, L)."""
    batch = tokens_hist[0].shape[0]
    beam = torch.zeros(batch, dtype=torch.long, device=tokens_hist[0].device)  # (B,)
    out = []
    for tokens, parents in zip(reversed(tokens_hist), reversed(parents_hist), strict=True):
        out.append(tokens.gather(1, beam[:, None]).squeeze(1))
        beam = parents.gather(1, beam[:, None]).squeeze(1)
    return torch.stack(out[::-1], dim=1)
