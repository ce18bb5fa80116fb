"""Seed 000: F0 -> AU token encoder-decoder, teacher forcing, scheduled sampling, decoding."""

from __future__ import annotations

import itertools

import pytest
import torch

from affectlab.data.labels import au_vocab, decode_ids, special_id, vocab_values
from affectlab.models import build_model
from affectlab.models.decoding import beam_search, greedy_decode
from affectlab.models.f0_to_au import teacher_forcing_io
from affectlab.training.losses import masked_cross_entropy

ID_TO_AU = au_vocab(1.0)["ID_to_AU"]  # SOS, EOS, 0..5 -> V = 8
VALUES = vocab_values(ID_TO_AU)
V, SOS_ID, EOS_ID = len(VALUES), special_id(ID_TO_AU, "SOS"), special_id(ID_TO_AU, "EOS")
LENGTHS = [9, 7, 4, 2]


def _toy(input_mode: str = "tokens") -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """F0 (tokens over 10 ids, or Hz) and AU ids = 2 + (f0 token mod 6): a learnable mapping."""
    gen = torch.Generator().manual_seed(0)
    tokens = torch.randint(0, 10, (4, 9), generator=gen)
    mask = torch.arange(9)[None, :] < torch.tensor(LENGTHS)[:, None]
    au = (2 + tokens % 6).masked_fill(~mask, EOS_ID)
    src = tokens if input_mode == "tokens" else 60.0 + 50.0 * tokens.float()
    return src.masked_fill(~mask, 0), mask, au


def _model(context: str = "attention", input_mode: str = "tokens", **kwargs):  # noqa: ANN202
    extra = {"f0_vocab_size": 10} if input_mode == "tokens" else {}
    return build_model(
        "f0_to_au", au_vocab_size=V, input_mode=input_mode, context=context, hidden=16,
        embed_dim=8, au_embed_dim=8, attention_units=8, **extra, **kwargs,
    )


def test_teacher_forcing_io_shifts_and_appends_eos() -> None:
    au = torch.tensor([[4, 5, 6], [7, 3, 9]])
    mask = torch.tensor([[True, True, True], [True, False, False]])
    dec_in, target, target_mask = teacher_forcing_io(au, mask, sos_id=0, eos_id=1)
    assert dec_in.tolist() == [[0, 4, 5, 6], [0, 7, 1, 1]]
    assert target.tolist() == [[4, 5, 6, 1], [7, 1, 1, 1]]
    assert target_mask.tolist() == [[True, True, True, True], [True, True, False, False]]


@pytest.mark.parametrize("input_mode", ["tokens", "continuous"])
@pytest.mark.parametrize(("context", "cell"), [("attention", "lstm"), ("aligned", "gru"), ("none", "lstm")])
def test_teacher_forced_training_reduces_loss(input_mode: str, context: str, cell: str) -> None:
    torch.manual_seed(0)
    src, mask, au = _toy(input_mode)
    model = _model(context, input_mode, cell=cell, dropout=0.0)
    dec_in, target, target_mask = teacher_forcing_io(au, mask)
    opt = torch.optim.Adam(model.parameters(), lr=0.02)
    losses = []
    for _ in range(30):
        opt.zero_grad()
        logits = model(src, mask, dec_in)
        assert logits.shape == (4, 10, V)
        loss = masked_cross_entropy(logits, target, target_mask)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.6 * losses[0]


@pytest.mark.parametrize("context", ["attention", "aligned", "none"])
def test_decoding_without_targets(context: str) -> None:
    torch.manual_seed(0)
    src, mask, _ = _toy()
    model = _model(context).eval()
    for beam_width in (1, 3):
        out = model.generate(src, mask, beam_width=beam_width)
        assert out.ids.shape == mask.shape and torch.equal(out.mask, mask)
        assert (out.ids[mask] >= 2).all() and (out.ids[~mask] == EOS_ID).all()
        intensities = decode_ids(out.ids.numpy(), VALUES)
        assert ((intensities[mask.numpy()] >= 0) & (intensities[mask.numpy()] <= 5)).all()
        free = model.generate(src, mask, beam_width=beam_width, stop_at_eos=True, max_len=12)
        assert free.ids.shape == (4, 12) and (free.ids != SOS_ID).all()
        assert (free.ids[~free.mask] == EOS_ID).all() and (free.ids[free.mask] != EOS_ID).all()


@pytest.mark.parametrize("stop_at_eos", [False, True])
@pytest.mark.parametrize("context", ["attention", "aligned"])
def test_beam_width_one_equals_greedy(context: str, stop_at_eos: bool) -> None:
    torch.manual_seed(0)
    src, mask, _ = _toy()
    model = _model(context).eval()
    memory, state = model.encode(src, mask)
    kwargs = dict(batch=4, steps=9, sos_id=0, eos_id=1, lengths=None if stop_at_eos else memory.lengths)
    step = lambda prev, st, j: model._step(memory, prev, st, j)  # noqa: E731
    greedy = greedy_decode(step, state, **kwargs)
    beam = beam_search(step, state, beam_width=1, **kwargs)
    assert torch.equal(greedy.ids, beam.ids) and torch.equal(greedy.mask, beam.mask)
    assert torch.equal(model.generate(src, mask, beam_width=1, stop_at_eos=stop_at_eos, max_len=9).ids, greedy.ids)


def test_wide_beam_finds_the_most_probable_sequence() -> None:
    """With width >= V^(L-1) the beam is exhaustive: compare with scoring every sequence."""
    torch.manual_seed(0)
    coarse = vocab_values(au_vocab(2.5)["ID_to_AU"])  # SOS, EOS, 0, 2.5, 5
    model = build_model("f0_to_au", au_vocab_size=len(coarse), f0_vocab_size=5, hidden=8, embed_dim=4,
                        au_embed_dim=4, attention_units=4).eval()
    src = torch.tensor([[1, 3, 2]])
    mask = torch.ones(1, 3, dtype=torch.bool)
    best_score, best = float("-inf"), None
    for seq in itertools.product([2, 3, 4], repeat=3):
        dec_in = torch.tensor([[0, *seq[:-1]]])
        with torch.no_grad():
            logp = torch.log_softmax(model(src, mask, dec_in), dim=-1)[0]
        score = sum(float(logp[j, tok]) for j, tok in enumerate(seq))
        if score > best_score:
            best_score, best = score, list(seq)
    assert model.generate(src, mask, beam_width=9).ids[0].tolist() == best


def test_scheduled_sampling_feeds_own_predictions() -> None:
    torch.manual_seed(0)
    src, mask, au = _toy()
    model = _model().eval()
    dec_in, _, _ = teacher_forcing_io(au, mask)
    scrambled = dec_in.clone()
    scrambled[:, 1:] = torch.randint(2, V, scrambled[:, 1:].shape)
    own = model(src, mask, dec_in, sampling_prob=1.0)
    torch.testing.assert_close(model(src, mask, scrambled, sampling_prob=1.0), own)
    assert not torch.allclose(model(src, mask, scrambled), model(src, mask, dec_in))


@pytest.mark.parametrize("context", ["attention", "aligned", "none"])
def test_source_padding_does_not_change_valid_logits(context: str) -> None:
    torch.manual_seed(0)
    src, mask, au = _toy()
    model = _model(context).eval()
    dec_in, _, target_mask = teacher_forcing_io(au, mask)
    noisy = src.masked_fill(~mask, 7)
    torch.testing.assert_close(model(noisy, mask, dec_in)[target_mask], model(src, mask, dec_in)[target_mask])
    assert torch.equal(model.generate(noisy, mask, beam_width=2).ids, model.generate(src, mask, beam_width=2).ids)


def test_same_seed_same_outputs() -> None:
    src, mask, au = _toy()
    dec_in, _, _ = teacher_forcing_io(au, mask)
    outs = []
    for _ in range(2):
        torch.manual_seed(7)
        model = _model(dropout=0.2)
        outs.append(model(src, mask, dec_in, sampling_prob=0.5))
    torch.testing.assert_close(outs[0], outs[1], atol=0, rtol=0)


def test_median_pick_is_the_median_of_the_step_distribution() -> None:
    from affectlab.models.decoding import median_token

    probs = torch.tensor([[0.0, 0.0, 0.4, 0.05, 0.1, 0.45],   # mode id 5, median id 4 (cdf 0.45, 0.55)
                          [0.0, 0.0, 0.6, 0.1, 0.1, 0.2]])    # mode = median = id 2
    assert median_token(torch.log(probs)).tolist() == [4, 2]
    step = lambda prev, state, j: (torch.log(probs), state)  # noqa: E731
    kwargs = dict(batch=2, steps=3, sos_id=0, eos_id=1, lengths=torch.tensor([3, 3]))
    assert greedy_decode(step, (torch.zeros(2, 1),), pick="median", **kwargs).ids[:, 0].tolist() == [4, 2]
    assert greedy_decode(step, (torch.zeros(2, 1),), **kwargs).ids[:, 0].tolist() == [5, 2]
    with pytest.raises(ValueError, match="pick: 'mean'"):
        greedy_decode(step, (torch.zeros(2, 1),), pick="mean", **kwargs)
