"""Lip-reading decoding: greedy, beam search with an external LM, length normalisation, batching, joint
CTC / attention decoding with its CTC prefix scores."""

from __future__ import annotations

import math

import pytest
import torch

from affectlab.errors import ConfigError
from affectlab.models import build_model
from affectlab.models.vsr_decoding import (
    Hypothesis, beam_search, ctc_greedy, decoder_scorer, greedy_decode, lm_scorer, transcribe,
)
from affectlab.models.vsr_ctc_prefix import CTCPrefixScorer
from affectlab.models.vsr_vocab import BLANK_ID, EOS_ID, PAD_ID, SOS_ID, CharVocab

VOCAB = CharVocab()
MICRO = {"input_size": 16, "widths": (4, 4, 8, 8, 8), "d_model": 16, "num_heads": 2, "d_ff": 32, "num_layers": 1,
         "gru_hidden": 16}


def _models(seed: int = 0) -> tuple[torch.nn.Module, torch.nn.Module]:
    torch.manual_seed(seed)
    return build_model("vsr_lip_reader", **MICRO).eval(), build_model("vsr_lm", **MICRO).eval()


def _clips() -> tuple[torch.Tensor, torch.Tensor]:
    video = torch.randn(3, 4, 1, 16, 16, generator=torch.Generator().manual_seed(1))
    mask = torch.tensor([[True] * 4, [True] * 2 + [False] * 2, [True] * 3 + [False]])
    return video, mask


def _table_scorer(table: dict[str, dict[str, float]]) -> callable:
    """A planted scorer: next-token probabilities by prefix text ('$' is EOS); the rest share 1e-4."""
    def score(prefix: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        out = torch.full((prefix.shape[0], VOCAB.size), math.log(1e-4))
        for n, row in enumerate(prefix.tolist()):
            for char, prob in table.get(VOCAB.decode(row), {}).items():
                out[n, EOS_ID if char == "$" else VOCAB.encode(char)[0]] = math.log(prob)
        return out

    return score


# "p", "b" and "m" look the same on the lips: the decoder barely prefers "pat" over "bat".
ACOUSTIC = _table_scorer({"": {"p": 0.36, "b": 0.34, "m": 0.2}, "p": {"a": 0.9}, "b": {"a": 0.9}, "m": {"a": 0.9},
                          "pa": {"t": 0.9}, "ba": {"t": 0.9}, "ma": {"t": 0.9},
                          "pat": {"$": 0.9}, "bat": {"$": 0.9}, "mat": {"$": 0.9}})
LIKES_B = _table_scorer({"": {"b": 0.9, "p": 0.01}})
LIKES_P = _table_scorer({"": {"p": 0.9, "b": 0.01}})


def test_beam_width_one_equals_greedy() -> None:
    reader, lm = _models()
    video, mask = _clips()
    for weight in (0.0, 0.7):
        greedy = transcribe(reader, video, mask, vocab=VOCAB, method="greedy", lm=lm, lm_weight=weight, extra_steps=3)
        beam = transcribe(reader, video, mask, vocab=VOCAB, beam_width=1, lm=lm, lm_weight=weight, extra_steps=3)
        assert [h.text for h in beam] == [h.text for h in greedy]
        for g, b in zip(greedy, beam, strict=True):
            assert b.score == pytest.approx(g.score, abs=1e-5) and b.lm_score == pytest.approx(g.lm_score, abs=1e-5)
            assert b.length == g.length


def test_lm_weight_zero_equals_no_lm() -> None:
    reader, lm = _models()
    video, mask = _clips()
    plain = transcribe(reader, video, mask, vocab=VOCAB, beam_width=4, extra_steps=3)
    zero = transcribe(reader, video, mask, vocab=VOCAB, beam_width=4, lm=lm, lm_weight=0.0, extra_steps=3)
    assert [(h.ids, h.score, h.decoder_score, h.length) for h in zero] == \
        [(h.ids, h.score, h.decoder_score, h.length) for h in plain]
    assert all(h.lm_score is None for h in plain) and all(h.lm_score < 0 for h in zero)  # still reported
    heavy = transcribe(reader, video, mask, vocab=VOCAB, beam_width=4, lm=lm, lm_weight=5.0, extra_steps=3)
    assert [h.score for h in heavy] != [h.score for h in plain]  # control: a weight changes the search


@pytest.mark.parametrize("width", [1, 12])
def test_planted_lm_flips_acoustically_tied_choice(width: int) -> None:
    def run(lm: callable | None, weight: float) -> Hypothesis:
        return beam_search(ACOUSTIC, batch=1, vocab=VOCAB, max_steps=6, beam_width=width, lm=lm, lm_weight=weight)[0]

    assert run(None, 0.0).text == "pat"  # negative control: the lips alone
    assert run(LIKES_B, 0.0).text == "pat"  # an LM at weight 0 changes nothing
    flipped = run(LIKES_B, 1.0)
    assert flipped.text == "bat"
    assert flipped.lm_score == pytest.approx(math.log(0.9) + 3 * math.log(1e-4), abs=1e-4)
    assert flipped.decoder_score == pytest.approx(math.log(0.34 * 0.9 ** 3), abs=1e-4)
    assert run(LIKES_P, 1.0).text == "pat"  # positive control the other way


def test_length_normalisation_prefers_longer_hypotheses() -> None:
    # Stopping at once scores log 0.5 = -0.69; "ab" scores log(0.45 * 0.9 * 0.9) = -1.01 over 3 tokens.
    scorer = _table_scorer({"": {"$": 0.5, "a": 0.45}, "a": {"b": 0.9}, "ab": {"$": 0.9}})
    raw = beam_search(scorer, batch=1, vocab=VOCAB, max_steps=5, beam_width=3)[0]
    normalised = beam_search(scorer, batch=1, vocab=VOCAB, max_steps=5, beam_width=3, length_penalty=1.0)[0]
    assert (raw.text, raw.length) == ("", 1)
    assert (normalised.text, normalised.length) == ("ab", 3)
    assert normalised.score == pytest.approx(math.log(0.45 * 0.81) / 3, abs=1e-4)


def test_budget_forces_eos_and_batching_keeps_utterances_apart() -> None:
    scorer = _table_scorer({"": {"a": 0.9}, "a": {"a": 0.9}, "aa": {"a": 0.9}, "aaa": {"a": 0.9}})
    out = beam_search(scorer, batch=2, vocab=VOCAB, max_steps=torch.tensor([1, 3]), beam_width=2)
    assert [h.text for h in out] == ["a", "aaa"] and [h.length for h in out] == [2, 4]
    reader, lm = _models(seed=2)
    video, mask = _clips()
    batched = transcribe(reader, video, mask, vocab=VOCAB, beam_width=3, lm=lm, lm_weight=0.5, extra_steps=3)
    for b, hyp in enumerate(batched):
        n = int(mask[b].sum())
        alone = transcribe(reader, video[b:b + 1, :n], None, vocab=VOCAB, beam_width=3, lm=lm, lm_weight=0.5,
                           extra_steps=3)[0]
        assert alone.text == hyp.text and alone.score == pytest.approx(hyp.score, abs=1e-4)
        assert len(hyp.text) <= n + 3


def test_scorers_return_log_probabilities() -> None:
    reader, lm = _models()
    video, mask = _clips()
    memory = reader.encode(video, mask)
    prefix, rows = torch.tensor([[1, 5], [1, 6]]), torch.tensor([2, 0])
    dec = decoder_scorer(reader, memory, mask)(prefix, rows)
    assert dec.shape == (2, VOCAB.size)
    torch.testing.assert_close(dec.exp().sum(-1), torch.ones(2))
    torch.testing.assert_close(lm_scorer(lm)(prefix, rows), lm_scorer(lm)(prefix, torch.tensor([0, 1])))


def test_ctc_greedy_merges_repeats_and_drops_blanks() -> None:
    a, b = VOCAB.encode("ab")
    path = [a, a, BLANK_ID, a, b, b, BLANK_ID]
    logits = torch.nn.functional.one_hot(torch.tensor([path, path]), VOCAB.size).float()
    assert ctc_greedy(logits, torch.tensor([7, 4])) == [[a, a, b], [a, a]]


def test_bad_decoding_options_are_named() -> None:
    with pytest.raises(ConfigError, match="beam_width=0"):
        beam_search(ACOUSTIC, batch=1, vocab=VOCAB, max_steps=3, beam_width=0)
    with pytest.raises(ConfigError, match="lm_weight=-1"):
        greedy_decode(ACOUSTIC, batch=1, vocab=VOCAB, max_steps=3, lm_weight=-1)
    reader, _ = _models()
    with pytest.raises(ConfigError, match="method='sampling'.*greedy, beam"):
        transcribe(reader, *_clips(), vocab=VOCAB, method="sampling")


# -- joint CTC / attention decoding -----------------------------------------------------------------


def _ctc_log_probs(batch: int, frames: int, seed: int = 0) -> torch.Tensor:
    """Random per-frame log-probabilities over the blank and the characters (specials never emitted)."""
    logits = torch.randn(batch, frames, VOCAB.size, generator=torch.Generator().manual_seed(seed)) * 2
    logits[..., [PAD_ID, SOS_ID, EOS_ID]] = float("-inf")
    return torch.log_softmax(logits, dim=-1)


def _walk(scorer: CTCPrefixScorer, row: int, text: str) -> tuple[float, list[torch.Tensor]]:
    """Feed ``text`` + EOS one token per call; the summed increments and each call's output."""
    prefix, total, outs = torch.tensor([[SOS_ID]]), 0.0, []
    for token in [*VOCAB.encode(text), EOS_ID]:
        out = scorer(prefix, torch.tensor([row]))
        outs.append(out[0])
        total += float(out[0, token])
        prefix = torch.cat([prefix, torch.tensor([[token]])], dim=1)
    return total, outs


@pytest.mark.parametrize(("row", "text"), [(0, "hello"), (0, "aab"), (1, "ab")])
def test_ctc_prefix_scores_sum_to_the_ctc_log_likelihood(row: int, text: str) -> None:
    """Summed over a transcript and its EOS, the increments are log p_ctc(text) (torch's CTC loss),
    padded frames of the shorter clip included; at each step the next-token probabilities (EOS:
    the prefix is the whole output) add up to the prefix's own, so the increments normalise."""
    log_probs, lengths = _ctc_log_probs(2, 12), torch.tensor([12, 7])
    total, outs = _walk(CTCPrefixScorer(log_probs, lengths), row, text)
    expected = -torch.nn.functional.ctc_loss(log_probs[row:row + 1].transpose(0, 1), torch.tensor([VOCAB.encode(text)]),
                                             lengths[row:row + 1], torch.tensor([len(text)]), blank=BLANK_ID,
                                             reduction="sum")
    assert total == pytest.approx(float(expected), abs=1e-4)
    for out in outs:
        assert float(torch.logsumexp(out, dim=0)) == pytest.approx(0.0, abs=1e-4)
        assert torch.isinf(out[[PAD_ID, SOS_ID, BLANK_ID]]).all()


def test_ctc_prefix_scorer_refuses_a_prefix_it_did_not_extend() -> None:
    scorer = CTCPrefixScorer(_ctc_log_probs(1, 5))
    scorer(torch.tensor([[SOS_ID]]), torch.tensor([0]))
    with pytest.raises(ValueError, match=r"does not extend a prefix of the previous call"):
        scorer(torch.tensor([[SOS_ID, *VOCAB.encode("ab")]]), torch.tensor([0]))


def test_joint_decoding_follows_the_ctc_head_and_weight_zero_is_the_decoder_alone() -> None:
    """A lip reader whose CTC head is planted to say 'bat' frame by frame: with ctc_weight 1 beam
    search reads 'bat' whatever the (random) decoder says; with 0 it reads the plain decoder."""
    reader = build_model("vsr_lip_reader", **MICRO, ctc_head=True).eval()
    video, mask = _clips()
    plain = transcribe(reader, video, mask, vocab=VOCAB, beam_width=3, extra_steps=3)
    zero = transcribe(reader, video, mask, vocab=VOCAB, beam_width=3, extra_steps=3, ctc_weight=0.0)
    assert [h.text for h in zero] == [h.text for h in plain]
    planted = torch.full((3, 4, VOCAB.size), -20.0)
    for b, n in enumerate(mask.sum(dim=1).tolist()):
        for t, token in enumerate([*VOCAB.encode("bat"), BLANK_ID][:n]):
            planted[b, t, token] = 20.0
    reader.ctc_logits = lambda memory: planted[:, :memory.shape[1]]  # the planted head (an instance attribute)
    joint = transcribe(reader, video, mask, vocab=VOCAB, beam_width=3, extra_steps=3, ctc_weight=1.0)
    assert [h.text for h in joint] == ["bat", "ba", "bat"]  # clip 2 has 2 frames: at most 2 characters
    mixed = transcribe(reader, video, mask, vocab=VOCAB, beam_width=3, extra_steps=3, ctc_weight=0.5)
    assert [h.text for h in mixed] == ["bat", "ba", "bat"]
    with pytest.raises(ConfigError, match=r"ctc_weight=0.3 needs the lip reader's CTC head"):
        transcribe(_models()[0], video, mask, vocab=VOCAB, ctc_weight=0.3)
    with pytest.raises(ConfigError, match=r"ctc_weight=1.5: must be a number in \[0, 1\]"):
        transcribe(reader, video, mask, vocab=VOCAB, ctc_weight=1.5)
