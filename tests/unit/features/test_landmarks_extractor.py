"""The landmarks extractor on real-face clips (dlib), partial and missing faces, identity, mean face I/O."""

from __future__ import annotations

import numpy as np
import pytest

from affectlab.data.synth import talking_face as tf
from affectlab.data.synth.video import write_mp4
from affectlab.errors import ConfigError, MediaError, RegistryError
from affectlab.features import landmarks as lmk
from affectlab.features.landmarks import LandmarkExtractor

N, SIZE = 12, 192


def _head(n: int) -> np.ndarray:
    t = np.arange(n) / tf.FPS
    return np.stack([3 * np.sin(2 * np.pi * t), 2 * np.cos(2 * np.pi * t), 1.5 * np.sin(np.pi * t)], axis=1)


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("lm-clips")
    frames = tf.render_frames(np.linspace(0, 1, N), _head(N), SIZE, np.ones(3))
    gappy = frames.copy()
    gappy[4:7] = 128  # three frames without a face
    noise = np.random.default_rng(0).integers(0, 255, size=(6, 64, 64, 3), dtype=np.uint8)
    paths = {k: str(root / f"{k}.mp4") for k in ("face", "gappy", "noface")}
    write_mp4(paths["face"], frames, fps=25)
    write_mp4(paths["gappy"], gappy, fps=25)
    write_mp4(paths["noface"], noise, fps=25)
    return paths


@pytest.fixture(scope="module")
def extractor() -> LandmarkExtractor:
    return LandmarkExtractor(backend="dlib", frames_per_batch=5)


def _row(path: str) -> dict[str, str]:
    return {"sample_id": "s01/00001", "subject": "s01", "video_path": path}


def test_real_face_clip(clips: dict[str, str], extractor: LandmarkExtractor) -> None:
    out = extractor.process(_row(clips["face"]))
    assert out["n_frames"] == N and out["frame_rate_hz"] == 25.0 and out["duration_s"] == pytest.approx(N / 25)
    assert out["landmarks"].shape == (N, 68, 2) and out["landmarks"].dtype == np.float32
    assert out["detected_fraction"] >= 0.95 and out["detected"].dtype == bool
    assert (out["width"], out["height"]) == (SIZE, SIZE) and out["boxes"].shape == (N, 4)
    assert out["shape"].shape == (68, 2)
    assert np.sqrt((out["shape"] ** 2).sum(axis=1).mean()) == pytest.approx(1.0, abs=1e-4)  # normalised


def test_frames_without_a_face_are_interpolated_and_flagged(
    clips: dict[str, str], extractor: LandmarkExtractor
) -> None:
    out = extractor.process(_row(clips["gappy"]))
    assert not out["detected"][4:7].any() and out["detected"][[0, 1, 2, 3, 7, 8]].all()
    assert out["detected_fraction"] == pytest.approx(out["detected"].mean()) and out["detected_fraction"] < 1.0
    assert np.isfinite(out["landmarks"]).all() and np.isnan(out["boxes"][4:7]).all()
    # filled frames lie between their detected neighbours
    lo = np.minimum(out["landmarks"][3], out["landmarks"][7]) - 1e-3
    hi = np.maximum(out["landmarks"][3], out["landmarks"][7]) + 1e-3
    assert ((out["landmarks"][5] >= lo) & (out["landmarks"][5] <= hi)).all()


def test_clip_without_any_face_is_a_media_error(clips: dict[str, str], extractor: LandmarkExtractor) -> None:
    with pytest.raises(MediaError, match="no face detected in any frame") as info:
        extractor.process(_row(clips["noface"]))
    assert "noface.mp4" in str(info.value)


def test_resampled_fps(clips: dict[str, str]) -> None:
    out = LandmarkExtractor(backend="dlib", fps=12.5).process(_row(clips["face"]))
    assert out["n_frames"] == N // 2 and out["frame_rate_hz"] == 12.5


def test_identity_depends_on_output_options_only() -> None:
    base = LandmarkExtractor.describe(backend="dlib")
    assert base == LandmarkExtractor.describe(backend="dlib", model_dir="/elsewhere", frames_per_batch=3)
    assert base != LandmarkExtractor.describe(backend="dlib", backend_options={"upsample": 0})
    assert base != LandmarkExtractor.describe(backend="dlib", fps=30)
    fa = LandmarkExtractor.describe(backend="face_alignment", backend_options={"device": "cpu", "batch_size": 4})
    assert fa == LandmarkExtractor.describe(backend="face_alignment")
    assert fa["params"]["landmarks"]["detector"] == "sfd"


def test_bad_options_are_reported_before_loading() -> None:
    with pytest.raises(ConfigError, match=r"unknown option\(s\) \['device'\].*upsample"):
        LandmarkExtractor.describe(backend="dlib", backend_options={"device": "cuda"})
    with pytest.raises(RegistryError, match="dlib, face_alignment"):
        LandmarkExtractor.describe(backend="openface")
    with pytest.raises(ConfigError, match="fps must be positive"):
        LandmarkExtractor.describe(fps=-1)


def test_mean_face_files_round_trip(tmp_path) -> None:  # noqa: ANN001
    mean = np.random.default_rng(0).uniform(50, 200, size=(68, 2)).astype(np.float32)
    uri = lmk.save_mean_face(str(tmp_path), "vabc", mean, source="test")
    assert uri.endswith("stats/landmarks/version=vabc/mean_face.npy")
    np.testing.assert_allclose(lmk.load_mean_face(uri), mean)
    np.testing.assert_allclose(lmk.load_mean_face(uri[:-4] + ".json")[:, 0], np.round(mean[:, 0], 4), atol=1e-4)
    np.save(tmp_path / "bad.npy", np.zeros((5, 2)))
    with pytest.raises(ConfigError, match="68 x 2"):
        lmk.load_mean_face(str(tmp_path / "bad.npy"))
    with pytest.raises(ConfigError, match="not found"):
        lmk.load_mean_face(str(tmp_path / "nope.npy"))
