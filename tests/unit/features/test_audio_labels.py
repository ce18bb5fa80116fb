"""The ``au`` label extractor and the ``--audio`` option, without Ray."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from affectlab.errors import ConfigError, DatasetError
from affectlab.features.au_labels import AuLabelExtractor, au_columns
from affectlab.features.audio import n_feature_frames
from affectlab.preprocess import parse_audio_sets


def _row(tmp: Path, n_label_frames: int, seconds: float = 1.0) -> dict:
    sf.write(tmp / "a.wav", np.zeros(int(seconds * 16000), np.float32), 16000)
    au01 = [0, 1, 2, 3, 3, 2, 1, 0] + [0] * max(0, n_label_frames - 8)
    lines = ["frame,AU01,AU12,valence"] + [f"{i},{au01[i]},{'' if i == 2 else 0.5},0.1" for i in range(n_label_frames)]
    (tmp / "a.csv").write_text("\n".join(lines) + "\n")
    return {"sample_id": "a", "subject": "s", "audio_path": str(tmp / "a.wav"), "labels_path": str(tmp / "a.csv"),
            "labels_format": "csv", "labels_rate_hz": 25.0}


def test_labels_are_aligned_quantized_and_classified(tmp_path: Path) -> None:
    out = AuLabelExtractor(aus=["AU01", "AU12"], au_step=0.5).process(_row(tmp_path, 25))
    n = n_feature_frames(16000)
    assert out["n_frames"] == n and out["intensity"].shape == (n, 2)
    assert out["frame_offset_s"] == pytest.approx(0.030) and out["label_rate_hz"] == 25.0
    # feature frame t sits at the centre of its analysis window, 10t + 30 ms; label frame i covers
    # [40i, 40i + 40) ms, so frame t holds label frame (t + 3) // 4: frame 0 -> 0, frames 1-4 -> 1, ...
    of_frame = (np.arange(29) + 3) // 4
    np.testing.assert_array_equal(out["intensity"][:9, 0], [0, 1, 1, 1, 1, 2, 2, 2, 2])
    assert out["au_id"][1, 0] == 4 and out["au_id"][0, 0] == 2  # 1.0 -> id 4 with step 0.5
    assert np.isnan(out["intensity"][5:9, 1]).all() and (out["au_id"][5:9, 1] == -1).all()  # label frame 2
    assert (out["onset"][5:9, 1] == -1).all() and out["onset"][4, 1] != -1 and out["onset"][9, 1] != -1
    # phases ".nnaaff." at 25 Hz, each held on the frames whose time lies in its label frame
    expected = {"onset": [0, 1, 1, 0, 0, 0, 0, 0], "apex": [0, 0, 0, 1, 1, 0, 0, 0], "offset": [0, 0, 0, 0, 0, 1, 1, 0]}
    for name, per_label_frame in expected.items():
        np.testing.assert_array_equal(out[name][:29, 0], np.asarray(per_label_frame)[of_frame])
    np.testing.assert_array_equal(out["occurrence"][:29, 0], np.asarray([0, 1, 1, 1, 1, 1, 1, 0])[of_frame])


def test_label_length_mismatch_and_missing_columns(tmp_path: Path) -> None:
    extractor = AuLabelExtractor(aus=["AU01"])
    with pytest.raises(DatasetError, match="labels cover 2.00 s"):
        extractor.process(_row(tmp_path, 50, seconds=1.0))  # 2 s of labels for 1 s of audio
    assert extractor.process(_row(tmp_path, 30, seconds=1.0))["n_frames"] == n_feature_frames(16000)  # 0.2 s: tolerated
    with pytest.raises(DatasetError, match="AU17"):
        AuLabelExtractor(aus=["AU01", "AU17"]).process(_row(tmp_path, 25))
    with pytest.raises(ConfigError, match="au_step"):
        AuLabelExtractor(aus=["AU01"], au_step=0.3)
    assert au_columns(["valence", "AU12", "AU01", "AUx"]) == ["AU01", "AU12"]


def test_parse_audio_sets() -> None:
    assert parse_audio_sets("egemaps") == ["egemaps"]
    assert parse_audio_sets("egemaps,compare,functionals") == ["egemaps", "compare", "egemaps_functionals", "compare_functionals"]
    assert parse_audio_sets("") == []
    with pytest.raises(ConfigError, match="choose from"):
        parse_audio_sets("egemaps,mfcc")
    with pytest.raises(ConfigError, match="needs egemaps"):
        parse_audio_sets("functionals")
