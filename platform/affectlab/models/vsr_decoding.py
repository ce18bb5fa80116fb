"""Decoding for the lip reader (seed 001): greedy and left-to-right beam search with an external char LM.

Scores come from *scorers*: ``score(prefix (N, L), rows (N,)) -> log-probabilities (N, V)`` of
the next token after each prefix (which starts with SOS); ``rows[n]`` is the utterance that
prefix ``n`` belongs to (:func:`decoder_scorer` uses it to pick the visual context;
:func:`lm_scorer` ignores it). The decoder has no state cache: every step re-reads the whole
prefix (the seed's greedy loop fed only the last token; SEED-NOTES A.5.11).

Per step a hypothesis is extended by a character or EOS (PAD, SOS and BLANK are never
emitted). Its score is ``decoder + lm_weight * lm`` (sums of log-probabilities, EOS included),
and hypotheses are ranked by ``score / length ** length_penalty`` (length = characters + EOS;
0 disables normalisation). ``lm_weight = 0`` ranks by the decoder alone, exactly as without an
LM, while the LM's score is still reported. The seed's ``beam_search_decoder`` multiplies raw
frame-wise probabilities over a fixed matrix with width 12 and gives no fusion weight or length
penalty (A.5.12); its greedy decoder runs for ``T_video + 20`` steps, the default budget of
:func:`transcribe`.

With ``ctc_weight`` w > 0 (joint CTC / attention decoding, Watanabe et al., 2017; not in the
seed) the visual score of a step is ``(1 - w) * decoder + w * CTC prefix`` (the lip reader's
CTC head, :class:`~affectlab.models.vsr_ctc_prefix.CTCPrefixScorer`); ``decoder_score`` then
holds that mixture. w = 0 is the decoder alone, exactly.

Beam search is batched over utterances: B utterances x ``beam_width`` prefixes are scored in
one call per step. Finished hypotheses stay in the beam (extended by EOS at no cost) so that
they compete with longer ones under the length normalisation.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from affectlab.errors import ConfigError
from affectlab.models.vsr import LipReader
from affectlab.models.vsr_ctc_prefix import CTCPrefixScorer
from affectlab.models.vsr_decoder import CharTransformerDecoder
from affectlab.models.vsr_vocab import BLANK_ID, EOS_ID, PAD_ID, SOS_ID, CharVocab

__all__ = ["METHODS", "Hypothesis", "ScoreFn", "beam_search", "ctc_greedy", "decoder_scorer", "greedy_decode",
           "joint_scorer", "lm_scorer", "transcribe"]

METHODS = ("greedy", "beam")
ScoreFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


@dataclass(frozen=True)
class Hypothesis:
    """One decoded utterance.

    Attributes:
        text: The transcript.
        ids: Its character ids (no SOS / EOS).
        score: Ranking score ``(decoder_score + lm_weight * lm_score) / length ** length_penalty``.
        decoder_score: Sum of the decoder's log-probabilities (EOS included).
        lm_score: Sum of the LM's log-probabilities (EOS included); None without an LM.
        length: Characters + EOS (characters only if the step budget ran out first).
    """

    text: str
    ids: tuple[int, ...]
    score: float
    decoder_score: float
    lm_score: float | None
    length: int


def decoder_scorer(model: LipReader, memory: torch.Tensor, memory_mask: torch.Tensor | None = None) -> ScoreFn:
    """Scorer of the lip reader's decoder over the visual context ``memory`` (B, T, d) of B utterances."""
    def score(prefix: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        mask = None if memory_mask is None else memory_mask[rows]
        logits = model.decoder(prefix, memory[rows], memory_mask=mask)[:, -1]  # (N, V)
        return torch.log_softmax(logits.float(), dim=-1)

    return score


def joint_scorer(decoder: ScoreFn, ctc: ScoreFn, ctc_weight: float) -> ScoreFn:
    """``(1 - ctc_weight) * decoder + ctc_weight * ctc`` (joint CTC / attention decoding)."""
    def score(prefix: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        dec, prefix_ctc = decoder(prefix, rows), ctc(prefix, rows)
        return torch.where(torch.isinf(prefix_ctc) & (prefix_ctc < 0), prefix_ctc,
                           (1 - ctc_weight) * dec + ctc_weight * prefix_ctc)

    return score


def lm_scorer(lm: CharTransformerDecoder) -> ScoreFn:
    """Scorer of a character LM (a decoder run without cross-attention)."""
    def score(prefix: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        return torch.log_softmax(lm(prefix, use_cross_attention=False)[:, -1].float(), dim=-1)

    return score


def _budget(max_steps: int | torch.Tensor, batch: int, device: torch.device) -> torch.Tensor:
    """Per-utterance character budget (B,) long."""
    if isinstance(max_steps, torch.Tensor):
        if max_steps.shape != (batch,):
            raise ConfigError(f"max_steps: expected an int or a ({batch},) tensor, got shape {tuple(max_steps.shape)}")
        return max_steps.to(device=device, dtype=torch.long)
    if isinstance(max_steps, bool) or not isinstance(max_steps, int) or max_steps < 0:
        raise ConfigError(f"max_steps={max_steps!r}: must be an integer >= 0 or a (B,) tensor")
    return torch.full((batch,), max_steps, dtype=torch.long, device=device)


def _step_logp(logp: torch.Tensor, step: int, budget: torch.Tensor, finished: torch.Tensor) -> torch.Tensor:
    """Forbid PAD/SOS/BLANK, force EOS once the budget is spent, make finished rows emit EOS at no cost."""
    logp = logp.clone()  # (N, V)
    logp[:, [PAD_ID, SOS_ID, BLANK_ID]] = float("-inf")
    over = step >= budget  # (N,)
    eos = logp[:, EOS_ID].clone()
    logp[over] = float("-inf")
    logp[:, EOS_ID] = torch.where(over, eos, logp[:, EOS_ID])
    logp[finished] = float("-inf")
    logp[finished, EOS_ID] = 0.0
    return logp


def _lm_step(lm: ScoreFn | None, prefix: torch.Tensor, rows: torch.Tensor, finished: torch.Tensor) -> torch.Tensor:
    """LM log-probabilities (N, V), zero for finished rows (their EOS extension costs nothing)."""
    if lm is None:
        return prefix.new_zeros(prefix.shape[0], 1, dtype=torch.float32)
    lp = lm(prefix, rows).float()
    return lp.masked_fill(finished[:, None], 0.0)


def _normalise(total: torch.Tensor, length: torch.Tensor, penalty: float) -> torch.Tensor:
    return total if penalty == 0 else total / length.clamp_min(1).to(total.dtype) ** penalty


def _check(beam_width: int, lm_weight: float, length_penalty: float) -> None:
    problems = []
    if isinstance(beam_width, bool) or not isinstance(beam_width, int) or beam_width < 1:
        problems.append(f"beam_width={beam_width!r}: must be an integer >= 1")
    for key, value in (("lm_weight", lm_weight), ("length_penalty", length_penalty)):
        if isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0:
            problems.append(f"{key}={value!r}: must be a number >= 0")
    if problems:
        raise ConfigError("decoding: " + "; ".join(problems))


def _hypotheses(vocab: CharVocab, tokens: torch.Tensor, dec: torch.Tensor, lm: torch.Tensor | None,
                length: torch.Tensor, lm_weight: float, penalty: float) -> list[Hypothesis]:
    """Hypotheses from emitted tokens (B, L') (SOS excluded) and per-utterance sums (B,)."""
    total = dec + lm_weight * lm if (lm is not None and lm_weight) else dec
    score = _normalise(total, length, penalty)
    out = []
    for b, row in enumerate(tokens.tolist()):
        ids = tuple(i for i in row[:row.index(EOS_ID)] if i >= len(vocab.special_ids)) if EOS_ID in row else \
            tuple(i for i in row if i >= len(vocab.special_ids))
        out.append(Hypothesis(vocab.decode(ids), ids, float(score[b]), float(dec[b]),
                              None if lm is None else float(lm[b]), int(length[b])))
    return out


@torch.no_grad()
def greedy_decode(score: ScoreFn, *, batch: int, vocab: CharVocab, max_steps: int | torch.Tensor,
                  lm: ScoreFn | None = None, lm_weight: float = 0.0, length_penalty: float = 0.0,
                  device: torch.device | str = "cpu") -> list[Hypothesis]:
    """Pick the best-scoring token (decoder + ``lm_weight`` x LM) at every step.

    Args:
        score: Decoder scorer (see the module docstring).
        batch: Number of utterances B.
        vocab: The token vocabulary.
        max_steps: Character budget per utterance (int or (B,)); EOS is forced after it.
        lm: Optional LM scorer; its score is reported even with ``lm_weight = 0``.
        lm_weight: Weight of the LM log-probability (>= 0).
        length_penalty: Exponent of the length normalisation of the reported score.
        device: Device of the token tensors.

    Returns:
        One :class:`Hypothesis` per utterance.

    Raises:
        ConfigError: Bad ``max_steps``, ``lm_weight`` or ``length_penalty``.
    """
    _check(1, lm_weight, length_penalty)
    budget = _budget(max_steps, batch, torch.device(device))
    rows = torch.arange(batch, device=device)
    prefix = torch.full((batch, 1), SOS_ID, dtype=torch.long, device=device)
    finished = torch.zeros(batch, dtype=torch.bool, device=device)
    dec = torch.zeros(batch, device=device)
    lm_sum = torch.zeros(batch, device=device) if lm is not None else None
    length = torch.zeros(batch, dtype=torch.long, device=device)
    for step in range(int(budget.max()) + 1):
        logp = _step_logp(score(prefix, rows).float(), step, budget, finished)  # (B, V)
        lm_lp = _lm_step(lm, prefix, rows, finished)
        total = logp + lm_weight * lm_lp if (lm is not None and lm_weight) else logp
        token = total.argmax(dim=-1)  # (B,)
        dec += logp.gather(1, token[:, None]).squeeze(1)
        if lm_sum is not None:
            lm_sum += lm_lp.gather(1, token[:, None]).squeeze(1)
        length += (~finished).long()
        finished = finished | (token == EOS_ID)
        prefix = torch.cat([prefix, token[:, None]], dim=1)
        if bool(finished.all()):
            break
    return _hypotheses(vocab, prefix[:, 1:], dec, lm_sum, length, lm_weight, length_penalty)


@torch.no_grad()
def beam_search(score: ScoreFn, *, batch: int, vocab: CharVocab, max_steps: int | torch.Tensor,
                beam_width: int = 12, lm: ScoreFn | None = None, lm_weight: float = 0.0,
                length_penalty: float = 0.0, device: torch.device | str = "cpu") -> list[Hypothesis]:
    """Left-to-right beam search, ``beam_width`` hypotheses per utterance, batched over utterances.

    Arguments as :func:`greedy_decode`; ``beam_width = 1`` gives the greedy result.

    Returns:
        The best :class:`Hypothesis` per utterance.

    Raises:
        ConfigError: Bad ``beam_width``, ``max_steps``, ``lm_weight`` or ``length_penalty``.
    """
    _check(beam_width, lm_weight, length_penalty)
    width, fuse = beam_width, lm is not None and lm_weight != 0
    budget = _budget(max_steps, batch, torch.device(device)).repeat_interleave(width)  # (N,)
    rows = torch.arange(batch, device=device).repeat_interleave(width)  # (N,) utterance of each prefix
    prefix = torch.full((batch * width, 1), SOS_ID, dtype=torch.long, device=device)
    finished = torch.zeros(batch, width, dtype=torch.bool, device=device)
    dec = torch.full((batch, width), float("-inf"), device=device)
    dec[:, 0] = 0.0  # the beams start identical: keep one so that the first step has no duplicates
    lm_sum = torch.zeros(batch, width, device=device)
    length = torch.zeros(batch, width, dtype=torch.long, device=device)
    for step in range(int(budget.max()) + 1):
        flat_done = finished.reshape(-1)
        logp = _step_logp(score(prefix, rows).float(), step, budget, flat_done).view(batch, width, -1)  # (B, K, V)
        vocab_size = logp.shape[-1]
        lm_lp = _lm_step(lm, prefix, rows, flat_done).view(batch, width, -1)  # (B, K, V) or (B, K, 1)
        cand_dec = dec[..., None] + logp  # (B, K, V)
        cand_lm = (lm_sum[..., None] + lm_lp).expand(batch, width, vocab_size)
        cand_len = (length + (~finished).long())[..., None].expand(batch, width, vocab_size)
        total = cand_dec + lm_weight * cand_lm if fuse else cand_dec
        _, pick = _normalise(total, cand_len, length_penalty).reshape(batch, -1).topk(width, dim=1)  # (B, K)
        parent, token = pick // vocab_size, pick % vocab_size
        dec = cand_dec.reshape(batch, -1).gather(1, pick)
        lm_sum = cand_lm.reshape(batch, -1).gather(1, pick)
        length = cand_len.reshape(batch, -1).gather(1, pick)
        finished = finished.gather(1, parent) | (token == EOS_ID)
        history = prefix.view(batch, width, -1).gather(1, parent[..., None].expand(-1, -1, prefix.shape[1]))
        prefix = torch.cat([history, token[..., None]], dim=2).view(batch * width, -1)
        if bool(finished.all()):
            break
    best = prefix.view(batch, width, -1)[:, 0, 1:]  # topk is sorted: beam 0 is the best
    return _hypotheses(vocab, best, dec[:, 0], lm_sum[:, 0] if lm is not None else None, length[:, 0],
                       lm_weight, length_penalty)


@torch.no_grad()
def transcribe(model: LipReader, video: torch.Tensor, mask: torch.Tensor | None = None, *, vocab: CharVocab,
               method: str = "beam", beam_width: int = 12, lm: CharTransformerDecoder | None = None,
               lm_weight: float = 0.0, length_penalty: float = 0.0, extra_steps: int = 20,
               ctc_weight: float = 0.0) -> list[Hypothesis]:
    """Transcribe a batch of clips (B, T, C, H, W): encode once, then greedy or beam decoding.

    The character budget of clip b is its frame count plus ``extra_steps`` (the seed's
    ``T_video + 20``). ``ctc_weight`` > 0: joint CTC / attention decoding (module docstring;
    needs the model's CTC head). Put the model (and LM) in eval mode first.

    Raises:
        ConfigError: Unknown ``method``, bad decoding options, or ``ctc_weight`` without a CTC head.
    """
    if method not in METHODS:
        raise ConfigError(f"decoding method={method!r}: must be one of {', '.join(METHODS)}")
    if isinstance(ctc_weight, bool) or not isinstance(ctc_weight, int | float) or not 0 <= ctc_weight <= 1:
        raise ConfigError(f"decoding: ctc_weight={ctc_weight!r}: must be a number in [0, 1]")
    if ctc_weight > 0 and model.generator is None:
        raise ConfigError(f"decoding: ctc_weight={ctc_weight} needs the lip reader's CTC head "
                          "(model.kwargs.ctc_head: true)")
    memory = model.encode(video, mask)  # (B, T, d)
    frames = mask.sum(dim=1) if mask is not None else torch.full((video.shape[0],), video.shape[1])
    options = {"batch": video.shape[0], "vocab": vocab, "max_steps": frames.to(video.device) + extra_steps,
               "lm": None if lm is None else lm_scorer(lm), "lm_weight": lm_weight,
               "length_penalty": length_penalty, "device": video.device}
    scorer = decoder_scorer(model, memory, mask)
    if ctc_weight > 0:
        ctc = CTCPrefixScorer(torch.log_softmax(model.ctc_logits(memory).float(), dim=-1), frames)
        scorer = ctc if ctc_weight == 1 else joint_scorer(scorer, ctc, ctc_weight)
    if method == "greedy":
        return greedy_decode(scorer, **options)
    return beam_search(scorer, beam_width=beam_width, **options)


def ctc_greedy(logits: torch.Tensor, lengths: torch.Tensor | None = None) -> list[list[int]]:
    """Best-path CTC decoding of per-frame logits (B, T, V): argmax, merge repeats, drop BLANK and specials."""
    best = logits.argmax(dim=-1).tolist()  # (B, T)
    steps = lengths.tolist() if lengths is not None else [logits.shape[1]] * logits.shape[0]
    out = []
    for row, n in zip(best, steps, strict=True):
        ids, prev = [], None
        for token in row[:n]:
            if token != prev and token not in (PAD_ID, SOS_ID, EOS_ID, BLANK_ID):
                ids.append(token)
            prev = token
        out.append(ids)
    return out
