"""Frame times and label alignment (:mod:`affectlab.data.labels` "Alignment") against brute force.

The references here use exact rational arithmetic (``fractions.Fraction``) and plain loops over
frames, independently of the vectorised floating-point code under test.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from affectlab.data.labels import align_to_frames, frame_label_index, label_frame_spans
from affectlab.errors import DatasetError
from affectlab.features.audio import FRAME_OFFSET_S, FRAME_RATE_HZ, LLD_HOP_S, LLD_WINDOWS_S, frame_times_s

NTSC = Fraction(30000, 1001)  # 29.97 fps
RATES = {"25": Fraction(25), "29.97": NTSC, "30": Fraction(30), "50": Fraction(50), "7": Fraction(7),
         "100": Fraction(100), "120": Fraction(120)}
OFFSETS = {"centre": Fraction(3, 100), "start": Fraction(0)}


def _times(n: int, offset: Fraction, rate: Fraction = Fraction(100)) -> list[Fraction]:
    return [offset + Fraction(t) / rate for t in range(n)]


def _containing(time: Fraction, r: Fraction) -> int:
    """The label frame k with k/r <= time < (k+1)/r, by walking the boundaries."""
    k = 0
    while Fraction(k + 1) / r <= time:
        k += 1
    return k


def _nearest(times: list[Fraction], target: Fraction) -> int:
    """Index of the time nearest ``target``; the earlier one on a tie."""
    best = 0
    for t, c in enumerate(times):
        if abs(c - target) < abs(times[best] - target):
            best = t
    return best


def test_lld_frame_time_is_the_centre_of_the_60ms_window() -> None:
    # openSMILE 2.6 eGeMAPSv02 / ComParE_2016: frameStep 0.010, frameSize 0.020 and 0.060, left-aligned
    assert LLD_HOP_S == 0.010 and LLD_WINDOWS_S == (0.020, 0.060) and FRAME_RATE_HZ == 100.0
    assert FRAME_OFFSET_S == pytest.approx(0.030)
    np.testing.assert_allclose(frame_times_s(4), [0.030, 0.040, 0.050, 0.060])


@pytest.mark.parametrize("offset", list(OFFSETS), ids=list(OFFSETS))
@pytest.mark.parametrize("rate", list(RATES), ids=list(RATES))
def test_frame_label_index_is_the_label_frame_holding_each_frame_time(rate: str, offset: str) -> None:
    r, c0 = RATES[rate], OFFSETS[offset]
    times = _times(300, c0)
    got = frame_label_index(300, 100.0, float(r), frame_offset_s=float(c0))
    assert got.tolist() == [_containing(c, r) for c in times]


@pytest.mark.parametrize("offset", list(OFFSETS), ids=list(OFFSETS))
@pytest.mark.parametrize("rate", list(RATES), ids=list(RATES))
def test_label_frame_spans_match_brute_force(rate: str, offset: str) -> None:
    r, c0, n = RATES[rate], OFFSETS[offset], 257
    times = _times(n, c0)
    spans = label_frame_spans(n, 100.0, float(r), frame_offset_s=float(c0))
    n_label = _containing(times[-1], r) + 1
    assert len(spans) == n_label  # one entry per label frame up to the last feature frame time
    for k in range(n_label):
        members = [t for t, c in enumerate(times) if Fraction(k) / r <= c < Fraction(k + 1) / r]
        assert list(range(spans.start[k], spans.stop[k])) == members, k
        nearest = _nearest(times, (Fraction(2 * k + 1, 2)) / r)
        assert spans.nearest[k] == nearest, k
        assert spans.label_frame[k] == (nearest if members else -1), k
        if members:  # the nearest frame lies in the span whenever the span holds any frame time
            assert nearest in members


def test_ties_go_to_the_earlier_frame() -> None:
    # 100 Hz labels, frames at t*10 + 30 ms: label frame k's centre (10k + 5 ms) is 5 ms from two frames
    spans = label_frame_spans(20, 100.0, 100.0, frame_offset_s=0.03)
    assert spans.nearest[10].item() == 7 and spans.label_frame[10].item() == 7  # frame 7 at 100 ms, not 8
    assert spans.label_frame[:3].tolist() == [-1, -1, -1]  # 0-30 ms: before the first frame time


def test_align_to_frames_holds_the_label_frame_of_each_centre_time() -> None:
    labels = np.arange(10.0)
    # 25 Hz: frame t at 10t + 30 ms holds label frame (t + 3) // 4
    out = align_to_frames(labels, 25.0, 40, 100.0, frame_offset_s=0.03)
    np.testing.assert_array_equal(out[:9], [0, 1, 1, 1, 1, 2, 2, 2, 2])
    assert out[36] == 9 and np.isnan(out[37:]).all()  # frame 37 at 400 ms: label frame 10 does not exist
    # 30 fps: boundaries every 33.3 ms; frame times 30, 40, ... ms; 100 ms is on a boundary (frame 3)
    thirty = align_to_frames(np.arange(4.0), 30.0, 10, 100.0, frame_offset_s=0.03)
    np.testing.assert_array_equal(thirty, [0, 1, 1, 1, 2, 2, 2, 3, 3, 3])


def test_round_trip_recovers_every_label_frame_at_any_rate() -> None:
    rng = np.random.default_rng(0)
    for r in (25.0, float(NTSC), 30.0, 50.0, 29.97, 23.976):
        n_frames = 500
        labels = rng.integers(0, 6, size=int(5.0 * r) + 1).astype(np.float64)
        held = align_to_frames(labels, r, n_frames, 100.0, frame_offset_s=0.03)
        spans = label_frame_spans(n_frames, 100.0, r, frame_offset_s=0.03)
        has = spans.label_frame >= 0
        back = held[spans.label_frame[has]]
        k = np.arange(len(spans))[has]
        inside = k < len(labels)
        np.testing.assert_array_equal(back[inside], labels[k[inside]])
        assert np.isnan(back[~inside]).all()


@pytest.mark.parametrize(("kwargs", "match"), [
    ({"frame_rate_hz": 0.0}, "frame_rate_hz"),
    ({"label_rate_hz": -30.0}, "label_rate_hz"),
    ({"label_rate_hz": float("nan")}, "label_rate_hz"),
    ({"frame_offset_s": -0.01}, "frame_offset_s"),
])
def test_bad_rates_and_offsets_name_the_value(kwargs: dict, match: str) -> None:
    args = {"n_frames": 10, "frame_rate_hz": 100.0, "label_rate_hz": 30.0, "frame_offset_s": 0.03, **kwargs}
    with pytest.raises(DatasetError, match=match):
        frame_label_index(args.pop("n_frames"), args.pop("frame_rate_hz"), args.pop("label_rate_hz"), **args)
