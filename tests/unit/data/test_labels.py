"""Pure label logic: vocabularies, quantization, alignment and AU phases on hand-made sequences."""

from __future__ import annotations

import numpy as np
import pytest

from affectlab.data.labels import (
    IGNORE_ID,
    align_to_frames,
    au_phases,
    au_vocab,
    class_counts,
    clip_f0,
    f0_vocab,
    quantize_au,
    quantize_f0,
)
from affectlab.errors import ConfigError

NAN = np.nan


def test_au_vocab_matches_the_000_example() -> None:
    vocab = au_vocab(0.1)
    ids = vocab["ID_to_AU"]
    assert len(ids) == 53
    assert ids[0] == "SOS" and ids[1] == "EOS" and ids[2] == 0.0 and ids[3] == 0.1 and ids[52] == 5.0
    assert ids[19] == 1.7 and ids[32] == 3.0
    assert vocab["AU_to_ID"] == {v: k for k, v in ids.items()}
    assert au_vocab(0.5)["ID_to_AU"] == {0: "SOS", 1: "EOS", 2: 0.0, 3: 0.5, 4: 1.0, 5: 1.5, 6: 2.0, 7: 2.5,
                                          8: 3.0, 9: 3.5, 10: 4.0, 11: 4.5, 12: 5.0}


@pytest.mark.parametrize("step", [0.3, 0.0, -1.0, 7.0])
def test_au_vocab_rejects_steps_that_do_not_divide_5(step: float) -> None:
    with pytest.raises(ConfigError, match="au_step"):
        au_vocab(step)


def test_quantize_au_rounds_clips_and_marks_missing() -> None:
    values, ids = quantize_au(np.array([0.0, 0.04, 0.06, 1.26, 5.7, -1.0, NAN]), 0.1)
    np.testing.assert_allclose(values[:6], [0.0, 0.0, 0.1, 1.3, 5.0, 0.0], atol=1e-6)
    assert np.isnan(values[6])
    assert ids.tolist() == [2, 2, 3, 15, 52, 2, IGNORE_ID]
    ids_to_values = au_vocab(0.1)["ID_to_AU"]
    assert all(abs(ids_to_values[i] - v) < 1e-6 for i, v in zip(ids[:6], values[:6], strict=True))


def test_f0_vocab_and_quantization_with_unvoiced_token() -> None:
    vocab = f0_vocab(10.0)["ID_to_F0"]
    assert vocab[0] == "SOS" and vocab[1] == "EOS" and vocab[2] == "UNVOICED"
    assert vocab[3] == 50.0 and vocab[53] == 550.0 and len(vocab) == 54
    f0 = np.array([0.0, 30.0, 50.0, 104.0, 106.0, 549.0, 900.0, NAN])
    assert clip_f0(f0)[:7].tolist() == [0.0, 50.0, 50.0, 104.0, 106.0, 549.0, 550.0]
    ids = quantize_f0(f0, 10.0)
    assert ids.tolist() == [2, 3, 3, 8, 9, 53, 53, IGNORE_ID]
    assert vocab[8] == 100.0 and vocab[9] == 110.0
    with pytest.raises(ConfigError, match="f0_step"):
        f0_vocab(7.0)


def test_align_25hz_to_100hz_sample_and_hold_and_nan_past_the_end() -> None:
    # frame times at the frame start (offset 0); the centre convention: test_label_alignment.py
    labels = np.array([[0.0, 1.0], [2.0, NAN], [3.0, 4.0]])
    out = align_to_frames(labels, 25.0, 14, 100.0, frame_offset_s=0.0)
    assert out.shape == (14, 2)
    np.testing.assert_array_equal(out[:4, 0], [0, 0, 0, 0])
    np.testing.assert_array_equal(out[4:8, 0], [2, 2, 2, 2])
    np.testing.assert_array_equal(out[8:12, 0], [3, 3, 3, 3])
    assert np.isnan(out[4:8, 1]).all()
    assert np.isnan(out[12:]).all()
    # label frame boundaries that are not multiples of the feature hop: 30 Hz -> 100 Hz
    thirty = align_to_frames(np.arange(3.0), 30.0, 10, 100.0, frame_offset_s=0.0)
    np.testing.assert_array_equal(thirty, [0, 0, 0, 0, 1, 1, 1, 2, 2, 2])


def _codes(x: list[float]) -> str:
    """Phase string: . none, n onset, a apex, f offset, x invalid."""
    p = au_phases(np.array(x, dtype=float))
    out = []
    for i in range(len(x)):
        if p["onset"][i] < 0:
            out.append("x")
        else:
            out.append("n" if p["onset"][i] else "a" if p["apex"][i] else "f" if p["offset"][i] else ".")
    return "".join(out)


@pytest.mark.parametrize(
    ("seq", "expected"),
    [
        # rise, peak plateau, two-frame decrease -> offset to zero
        ([0, 1, 2, 3, 3, 2, 1, 0], ".nnaaff."),
        # one-frame drop to zero: no offset frames
        ([0, 1, 2, 3, 0], ".nna."),
        # granular rise with a flat stretch and a one-frame dip stays onset
        ([0, 1, 2, 2, 1, 2, 3, 4, 4, 3, 2, 0], ".nnnnnnaaff."),
        # single decrease inside the apex does not start an offset
        ([0, 2, 4, 3, 3, 3, 2, 1, 0], ".naaaaff."),
        # new onset during the offset
        ([0, 2, 4, 3, 2, 3, 4, 2, 1, 0], ".naffnaff."),
        # episode jumping straight to its peak: onset frame, then apex
        ([0, 3, 3, 3, 2, 1, 0], ".naaff."),
        # one-frame episode
        ([0, 2, 0], ".n."),
        # NaN splits episodes and is invalid; a decrease with no known next frame is no offset
        ([1, 2, NAN, 2, 1], "naxna"),
        # episode ending in NaN: no decrease can be seen after it
        ([0, 3, 2, NAN], ".nax"),
    ],
)
def test_phases_follow_the_003_rules(seq: list[float], expected: str) -> None:
    assert _codes(seq) == expected


def test_occurrence_is_onset_or_apex_or_offset_and_invalid_is_minus_one() -> None:
    rng = np.random.default_rng(0)
    x = np.round(np.clip(rng.normal(0.5, 1.5, size=(400, 3)), 0, 5), 1)
    x[50:60, 1] = np.nan
    p = au_phases(x)
    valid = ~np.isnan(x)
    union = (p["onset"] == 1) | (p["apex"] == 1) | (p["offset"] == 1)
    np.testing.assert_array_equal(union[valid], p["occurrence"][valid] == 1)
    np.testing.assert_array_equal(p["occurrence"][valid] == 1, x[valid] > 0)
    assert ((p["onset"] + p["apex"] + p["offset"])[valid] <= 1).all()
    for name in p:
        assert (p[name][~valid] == -1).all()


def test_class_counts() -> None:
    p = au_phases(np.array([[0, 1], [1, 2], [0, NAN]], dtype=float))
    counts = class_counts([p, p], ["AU01", "AU02"])
    assert counts["AU01"]["occurrence"] == {"positive": 2, "negative": 4, "invalid": 0}
    assert counts["AU02"]["occurrence"] == {"positive": 4, "negative": 0, "invalid": 2}
    assert counts["AU02"]["onset"]["positive"] + counts["AU02"]["apex"]["positive"] == 4
