"""Training at the true label rate: one step per label frame, for 25, 29.97, 30 and 50 fps labels.

A tiny preprocessing output is built per rate: the labels by the real ``au`` label stage
(:class:`affectlab.features.au_labels.AuLabelExtractor`, which aligns them onto the 100 Hz LLD
grid), the features as small synthetic arrays. :func:`load_corpus` must give back, per label
frame ``k``, the label frame's own value and the mean of the features whose frame time (the
centre of the analysis window, ``t * 10 ms + 30 ms``) lies in ``[k/r, (k+1)/r)``, and for F0
tokens the token of the frame nearest ``(k + 1/2)/r``. The reference is brute force in exact
rational arithmetic, written here without the library's alignment code. A negative control shows
that the former integer-factor pooling (``round(100 / r)`` frames per step) fails that check.
"""

from __future__ import annotations

import json
import os
import warnings
from fractions import Fraction
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
import soundfile as sf

from affectlab.data.labels import au_phases, au_vocab, f0_vocab, quantize_au
from affectlab.features import io
from affectlab.features.arrow import rows_to_table
from affectlab.features.au_labels import AuLabelExtractor
from affectlab.training.config import DataConfig
from affectlab.training.corpus import load_corpus

RATES = {"25": Fraction(25), "29.97": Fraction("29.97"), "30000/1001": Fraction(30000, 1001), "30": Fraction(30),
         "50": Fraction(50)}
FEATURE_RATE = Fraction(100)
FRAME_TIME_0 = Fraction(3, 100)  # centre of the first 60 ms openSMILE window (frames start every 10 ms)
AU_STEP = 0.5
SECONDS = 2.0
VERSION = "vtest"


def _write(path: str, table) -> None:
    os.makedirs(path, exist_ok=True)
    pq.write_table(table, os.path.join(path, "part-0.parquet"))


def _preprocessed(root: Path, rate: Fraction, seed: int = 0) -> dict:
    """A preprocess output with one recording; returns it with the raw inputs for the reference."""
    rng = np.random.default_rng(seed)
    r = float(rate)
    root.mkdir(parents=True, exist_ok=True)
    sf.write(root / "a.wav", np.zeros(int(SECONDS * 16000), np.float32), 16000)
    n_label = int(round(SECONDS * r))
    raw = rng.integers(0, 11, size=n_label) * AU_STEP  # intensities on the 0.5 grid: quantization is exact
    raw[rng.random(n_label) < 0.3] = 0.0  # episodes with zeros between them
    missing = {7, 8, n_label // 2}  # frames absent from the file: unannotated
    lines = ["frame,AU01"] + [f"{i},{raw[i]}" for i in range(n_label) if i not in missing]
    (root / "a.csv").write_text("\n".join(lines) + "\n")
    raw[list(missing)] = np.nan
    row = {"sample_id": "a", "subject": "s01", "audio_path": str(root / "a.wav"), "labels_path": str(root / "a.csv"),
           "labels_format": "csv", "labels_rate_hz": r}
    extractor = AuLabelExtractor(aus=["AU01"], au_step=AU_STEP)
    label_row = extractor.process(row)
    n_frames = int(label_row["n_frames"])
    features = rng.normal(size=(n_frames, 3)).astype(np.float32)
    features[5, 1] = np.nan  # openSMILE can emit NaN: ignored by the mean
    tokens = rng.integers(2, 40, size=n_frames).astype(np.int16)
    out = root / "pre"
    _write(io.set_dir(str(out), "labels", "au", VERSION), rows_to_table([label_row], extractor.metadata()))
    feature_row = {"sample_id": "a", "subject": "s01", "n_frames": n_frames, "frame_rate_hz": 100.0,
                   "duration_s": SECONDS, "features": features, "f0_id": tokens}
    _write(io.set_dir(str(out), "features", "egemaps", VERSION),
           rows_to_table([feature_row], {"columns": {"features": ["f_a", "f_b", "f_c"]}}))
    for kind, name, vocab in (("labels", "au", au_vocab(AU_STEP)), ("features", "egemaps", f0_vocab(10.0))):
        vocab_dir = io.sidecar_dir(str(out), "vocab", name, VERSION)
        os.makedirs(vocab_dir, exist_ok=True)
        Path(vocab_dir, "vocab.json").write_text(json.dumps(vocab))
    return {"out": str(out), "raw": raw, "features": features, "tokens": tokens, "n_frames": n_frames,
            "label_row": label_row}


def _reference(data: dict, rate: Fraction) -> dict[str, np.ndarray]:
    """Per label frame, by brute force: mean features over its span, nearest token, own label."""
    n = data["n_frames"]
    times = [FRAME_TIME_0 + Fraction(t) / FEATURE_RATE for t in range(n)]
    n_steps = 0
    while Fraction(n_steps) / rate <= times[-1]:  # label frames that start before the last frame time
        n_steps += 1
    ids = quantize_au(data["raw"], AU_STEP)[1]
    occurrence = au_phases(quantize_au(data["raw"], AU_STEP)[0])["occurrence"]
    feats, tokens, label_ids, label_occ = [], [], [], []
    for k in range(n_steps):
        lo, hi, centre = Fraction(k) / rate, Fraction(k + 1) / rate, Fraction(2 * k + 1, 2) / rate
        members = [t for t in range(n) if lo <= times[t] < hi]
        nearest = min(range(n), key=lambda t: (abs(times[t] - centre), t))
        if members:
            with warnings.catch_warnings():  # a column all NaN over the span: NaN, then 0 like the loader
                warnings.simplefilter("ignore", RuntimeWarning)
                feats.append(np.nanmean(data["features"][members].astype(np.float64), axis=0))
        else:
            feats.append(data["features"][nearest].astype(np.float64))
        tokens.append(int(data["tokens"][nearest]))
        own = bool(members) and k < len(data["raw"]) and not np.isnan(data["raw"][k])
        label_ids.append(int(ids[k]) if own else -1)
        label_occ.append(int(occurrence[k]) if own else -1)
    return {"features": np.nan_to_num(np.array(feats)), "tokens": np.array(tokens), "AU01_id": np.array(label_ids),
            "AU01_occurrence": np.array(label_occ)}


def _problems(features: np.ndarray, labels: dict[str, np.ndarray], ref: dict[str, np.ndarray], key: str) -> list[str]:
    """What differs between one recording's steps and the reference (empty: it matches)."""
    out = []
    n_ref = len(ref[key])
    if len(features) != n_ref:
        out.append(f"{len(features)} steps for {n_ref} label frames")
    m = min(len(features), n_ref)
    if key == "features":
        if not np.allclose(features[:m], ref["features"][:m], atol=1e-5):
            out.append("features differ from the per-span means")
    elif not np.array_equal(features[:m], ref["tokens"][:m]):
        out.append("tokens differ from the nearest frame's")
    for name, values in labels.items():
        bad = np.flatnonzero(values[:m] != ref[name][:m])
        if len(values) != n_ref or len(bad):
            out.append(f"{name}: {len(bad)} of {m} steps differ (first at step {bad[:1].tolist()})")
    return out


@pytest.mark.parametrize("rate", list(RATES), ids=list(RATES))
def test_one_step_per_label_frame_with_per_span_means(tmp_path: Path, rate: str) -> None:
    r = RATES[rate]
    data = _preprocessed(tmp_path, r)
    assert data["label_row"]["frame_offset_s"] == pytest.approx(float(FRAME_TIME_0))
    corpus = load_corpus(DataConfig(features=data["out"], task="au"))
    ref = _reference(data, r)
    assert corpus.frame_rate_hz == pytest.approx(float(r), abs=0)
    labels = {name: corpus.labels[name][0] for name in ("AU01_id", "AU01_occurrence")}
    assert _problems(corpus.features[0], labels, ref, "features") == []
    # every label frame of the file that the audio covers is one step, with its own value
    assert len(corpus.features[0]) == len(ref["AU01_id"]) >= int(SECONDS * float(r)) - 1
    assert (labels["AU01_id"] >= 0).sum() >= len(ref["AU01_id"]) - 4


@pytest.mark.parametrize("rate", list(RATES), ids=list(RATES))
def test_f0_tokens_are_held_from_the_frame_nearest_the_label_frame_centre(tmp_path: Path, rate: str) -> None:
    r = RATES[rate]
    data = _preprocessed(tmp_path, r, seed=1)
    corpus = load_corpus(DataConfig(features=data["out"], task="f0_to_au"))
    assert corpus.is_token_input and corpus.frame_rate_hz == pytest.approx(float(r), abs=0)
    ref = _reference(data, r)
    assert _problems(corpus.features[0], {"AU01_id": corpus.labels["AU01_id"][0]}, ref, "tokens") == []


def test_50hz_label_frame_before_the_first_frame_time_is_unlabelled(tmp_path: Path) -> None:
    # label frame 0 covers 0-20 ms; the first LLD frame's time is 30 ms: no stored frame holds its value
    data = _preprocessed(tmp_path, Fraction(50))
    corpus = load_corpus(DataConfig(features=data["out"], task="au"))
    assert corpus.labels["AU01_id"][0][0] == -1
    np.testing.assert_allclose(corpus.features[0][0], np.nan_to_num(data["features"][0]))  # the nearest frame's input
    assert corpus.labels["AU01_id"][0][1] == quantize_au(data["raw"][1:2], AU_STEP)[1][0]


def test_feature_rate_keeps_every_frame(tmp_path: Path) -> None:
    data = _preprocessed(tmp_path, Fraction(30))
    corpus = load_corpus(DataConfig(features=data["out"], task="au", rate="features"))
    assert corpus.frame_rate_hz == 100.0 and len(corpus.features[0]) == data["n_frames"]
    np.testing.assert_array_equal(corpus.labels["AU01_id"][0], data["label_row"]["au_id"][:, 0])


def _integer_factor_pooling(xs: np.ndarray, ys: dict[str, np.ndarray], f_rate: float, l_rate: float):
    """The former training-rate rule, kept here as the negative control: blocks of round(R / r) frames."""
    factor = max(1, int(round(f_rate / l_rate)))
    length = min(len(xs), *(len(v) for v in ys.values())) // factor
    need = length * factor
    pooled = np.nanmean(xs[:need].reshape(length, factor, *xs.shape[1:]), axis=1)
    return np.nan_to_num(pooled), {k: v[:need:factor] for k, v in ys.items()}, f_rate / factor


def test_negative_control_integer_factor_pooling_fails_at_30fps(tmp_path: Path) -> None:
    r = Fraction(30)
    data = _preprocessed(tmp_path, r)
    ref = _reference(data, r)
    stored = io.load_labels(data["out"], "au")
    ys = {f"AU01_{kind}": io.column_arrays(stored, col, np.int64)[0][:, 0]
          for kind, col in (("id", "au_id"), ("occurrence", "occurrence"))}
    features, labels, frame_rate = _integer_factor_pooling(data["features"], ys, 100.0, float(r))
    assert frame_rate == pytest.approx(100 / 3)  # 33.3 Hz steps, not 30
    problems = _problems(features, labels, ref, "features")
    assert problems, "the integer-factor rule should not match the per-label-frame reference"
    assert len(ref["AU01_id"]) == 60 and len(features) == data["n_frames"] // 3 == 65
    assert f"{len(features)} steps for 60 label frames" in problems
    # even over the common length, label frames drift: step 10 repeats label frame 9
    assert labels["AU01_id"][10] == ref["AU01_id"][9] or ref["AU01_id"][9] == -1
    assert any(p.startswith("AU01_id") for p in problems)
