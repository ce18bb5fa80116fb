"""``affectlab preprocess --video``: real Ray Data, real dlib, real Parquet, local and S3 outputs.

The corpus is the ``talking-face`` synth (a real portrait, lrs layout) plus a ``bad`` speaker
holding a zero-byte file, a corrupt file, a clip with no face and a clip without an audio track.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

from affectlab import storage
from affectlab.data.synth import generate
from affectlab.data.synth import talking_face as tf
from affectlab.data.synth.video import write_mp4
from affectlab.errors import ConfigError
from affectlab.features import io
from affectlab.features.crops import column_cells
from affectlab.preprocess import preprocess

pytestmark = pytest.mark.slow
SIZE = 160


def _corpus(root: str, *, bad: bool) -> str:
    card = generate("talking-face", root, subjects=2, items=1, seed=3, size=SIZE,
                    min_duration_s=0.5, max_duration_s=0.6)
    if bad:
        os.makedirs(os.path.join(root, "bad"))
        open(os.path.join(root, "bad", "empty.mp4"), "wb").close()
        with open(os.path.join(root, "bad", "corrupt.mp4"), "wb") as f:
            f.write(np.random.default_rng(0).bytes(3000))
        noise = np.random.default_rng(1).integers(0, 255, size=(8, 64, 64, 3), dtype=np.uint8)
        write_mp4(os.path.join(root, "bad", "noface.mp4"), noise, fps=25)
        face = tf.render_frames(np.zeros(10), np.zeros((10, 3)), SIZE, np.ones(3))
        write_mp4(os.path.join(root, "bad", "mute.mp4"), face, fps=25)  # a face, no audio track
    return card


def _by_stage(result) -> dict:  # noqa: ANN001
    return {s.feature_set: s for s in result.stages}


@pytest.fixture(scope="module")
def bad_run(s3_server: str, ray_local: None, tmp_path_factory: pytest.TempPathFactory) -> dict:
    # s3_server before ray_local: Ray workers take the S3 endpoint from the environment at ray.init
    root = tmp_path_factory.mktemp("video-prep")
    card = _corpus(str(root / "corpus"), bad=True)
    out = str(root / "out")
    kwargs = {"audio": "egemaps", "video": "landmarks,mouth,face", "face_sizes": [64, 28], "progress": False}
    first = preprocess(card, out, **kwargs)
    second = preprocess(card, out, **kwargs)
    return {"card": card, "out": out, "first": _by_stage(first), "second": _by_stage(second), "kwargs": kwargs}


def test_good_clips_are_written_and_bad_ones_recorded(bad_run: dict) -> None:
    lm, out = bad_run["first"]["landmarks"], bad_run["out"]
    assert (lm.n_ok, lm.n_failed) == (3, 3)
    failed = {e["sample_id"]: e["message"] for e in lm.errors}
    assert "empty file" in failed["bad/empty"] and "cannot open" in failed["bad/corrupt"]
    assert "no face detected in any frame" in failed["bad/noface"]
    errors = io.load_errors(out).to_pylist()
    rows = {(e["stage"], e["sample_id"]) for e in errors}
    assert {("landmarks", "bad/empty"), ("landmarks", "bad/corrupt"), ("landmarks", "bad/noface")} <= rows
    assert all(e["path"].endswith(".mp4") and e["error"] == "MediaError" for e in errors if e["stage"] == "landmarks")
    table = io.load_features(out, "landmarks")
    assert sorted(table.column("sample_id").to_pylist()) == ["bad/mute", "s01/00001", "s02/00001"]
    frac = dict(zip(table.column("sample_id").to_pylist(), table.column("detected_fraction").to_pylist(), strict=True))
    assert min(frac.values()) >= 0.95


def test_crops_cover_the_clips_with_landmarks(bad_run: dict) -> None:
    stages, out = bad_run["first"], bad_run["out"]
    for name in ("mouth_roi", "face"):
        assert (stages[name].n_ok, stages[name].n_failed, stages[name].n_not_applicable) == (3, 0, 3)
    mouth = io.load_features(out, "mouth_roi")
    lm = io.load_features(out, "landmarks", columns=["sample_id", "n_frames"])
    frames = dict(zip(lm.column("sample_id").to_pylist(), lm.column("n_frames").to_pylist(), strict=True))
    for sid, crop in zip(mouth.column("sample_id").to_pylist(), column_cells(mouth, "mouth"), strict=True):
        assert crop.shape == (frames[sid], 96, 96) and crop.dtype == np.uint8
    face = io.load_features(out, "face")
    assert column_cells(face, "face_64")[0].shape[1:] == (64, 64)
    assert column_cells(face, "face_28")[0].shape[1:] == (28, 28)
    stats = io.sidecar_dir(out, "stats", "landmarks", stages["landmarks"].version)
    mean = np.load(os.path.join(stats, "mean_face.npy"))
    assert mean.shape == (68, 2) and stages["mouth_roi"].params["landmarks_version"] == stages["landmarks"].version


def test_audio_from_the_video_track_and_a_missing_track(bad_run: dict) -> None:
    audio = bad_run["first"]["egemaps"]
    assert audio.n_ok == 2
    failed = {e["sample_id"]: e["message"] for e in audio.errors}
    assert "no audio track" in failed["bad/mute"]
    assert {"bad/empty", "bad/corrupt"} <= set(failed)


def test_second_run_resumes(bad_run: dict) -> None:
    first, second = bad_run["first"], bad_run["second"]
    for name in ("landmarks", "mouth_roi", "face"):
        assert second[name].version == first[name].version
        assert (second[name].n_ok, second[name].n_skipped) == (0, 3)
    assert second["landmarks"].n_failed == 3  # bad clips are tried again and fail again
    assert io.load_features(bad_run["out"], "mouth_roi").num_rows == 3


def test_missing_face_alignment_weights_fail_before_any_work(
    ray_local: None, tmp_path, monkeypatch: pytest.MonkeyPatch  # noqa: ANN001
) -> None:
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    card = _corpus(str(tmp_path / "corpus"), bad=False)
    out = str(tmp_path / "out")
    with pytest.raises(ConfigError, match="2DFAN4-11f355bf06.pth.tar"):
        preprocess(card, out, audio="", video="landmarks", landmarks="face_alignment",
                   model_dir=str(tmp_path / "weights"), progress=False)
    assert not os.path.exists(out)


def test_s3_output(s3_bucket: str, ray_local: None, tmp_path) -> None:  # noqa: ANN001
    card = _corpus(str(tmp_path / "corpus"), bad=False)
    out = f"{s3_bucket}/prep"
    result = _by_stage(preprocess(card, out, audio="", video="landmarks,mouth", progress=False))
    assert result["landmarks"].n_ok == 2 and result["mouth_roi"].n_ok == 2
    mouth = io.load_features(out, "mouth_roi")
    assert all(c.shape[1:] == (96, 96) for c in column_cells(mouth, "mouth"))
    stats = io.sidecar_dir(out, "stats", "landmarks", result["landmarks"].version)
    assert storage.exists(storage.join(stats, "mean_face.npy"))
    assert storage.exists(f"{out}/_SUCCESS.json")
    again = _by_stage(preprocess(card, out, audio="", video="landmarks,mouth", progress=False))
    assert again["mouth_roi"].n_skipped == 2 and again["mouth_roi"].n_ok == 0


def test_cli_changed_options_new_version_and_strict_exit(bad_run: dict) -> None:
    from affectlab.cli import main

    out = bad_run["out"]
    audio_versions = io.list_versions(out, "features", "egemaps")
    with pytest.raises(SystemExit) as info:  # --video alone: no audio stage; failures + --strict: 1
        main(["preprocess", bad_run["card"], "--out", out, "--video", "landmarks,mouth", "--fps", "12.5",
              "--strict", "--no-progress"])
    assert info.value.code == 1
    versions = io.list_versions(out, "features", "landmarks")
    assert len(versions) == 2 and bad_run["first"]["landmarks"].version in versions
    latest = io.load_features(out, "landmarks")
    assert latest.num_rows == 3 and set(latest.column("frame_rate_hz").to_pylist()) == {12.5}
    assert io.load_features(out, "mouth_roi").num_rows == 3
    assert io.list_versions(out, "features", "egemaps") == audio_versions
    with pytest.raises(SystemExit) as info:
        main(["preprocess", bad_run["card"], "--out", out, "--video", "lips"])
    assert info.value.code == 2
