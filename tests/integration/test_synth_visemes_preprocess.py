"""``synth visemes`` -> ``preprocess --video landmarks,mouth``: real Ray Data, real dlib, mouth ROIs.

The lip-reading pipeline starts here: every frame of a small corpus must have a face, and the
96 x 96 mouth crops must still show the planted visemes (a wide-open mouth is darker in the
middle of the crop than closed lips).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from affectlab.data.synth import generate
from affectlab.data.synth import visemes as VS
from affectlab.data.synth.base import SynthRequest
from affectlab.features import io
from affectlab.features.crops import column_cells
from affectlab.preprocess import preprocess

pytestmark = pytest.mark.slow


def test_faces_and_mouth_rois_on_a_tiny_viseme_corpus(ray_local: None, tmp_path: Path) -> None:
    sentences = tmp_path / "sentences.txt"
    sentences.write_text("HA BAM PAH\nMAMA HAS A BAT\n")
    kw = {"subjects": 2, "items": 2, "seed": 5}
    card = generate("visemes", str(tmp_path / "corpus"), size=128, sentences=str(sentences), **kw)
    out = str(tmp_path / "out")
    stages = {s.feature_set: s for s in preprocess(card, out, audio="", video="landmarks,mouth", progress=False).stages}
    assert (stages["landmarks"].n_ok, stages["mouth_roi"].n_ok) == (4, 4)
    lm = io.load_features(out, "landmarks", columns=["sample_id", "detected_fraction"])
    assert min(lm.column("detected_fraction").to_pylist()) == 1.0
    timings = VS.clip_timings(
        SynthRequest("visemes", "", kw["subjects"], kw["items"], kw["seed"], "planted"),
        VS.VisemesOptions(size=128, sentences=str(sentences)),
    )
    mouth = io.load_features(out, "mouth_roi")
    darkness: dict[str, list[float]] = {"open": [], "bilabial": []}
    for sid, crops in zip(mouth.column("sample_id").to_pylist(), column_cells(mouth, "mouth"), strict=True):
        tm = timings[sid]
        assert crops.shape == (tm.n_frames, 96, 96)
        centre = crops[:, 38:70, 28:68].astype(float)  # the mouth sits in the middle of the crop
        for ch, frame in zip(tm.text, tm.middles, strict=True):
            if VS.VISEME_TABLE[ch] in darkness:
                darkness[VS.VISEME_TABLE[ch]].append(float((centre[frame] < 60).mean()))
    assert np.mean(darkness["open"]) > np.mean(darkness["bilabial"]) + 0.02, darkness
