"""Mouth-ROI and face-crop extractors on a real-face clip: centring, shapes, Parquet round trip."""

from __future__ import annotations

import numpy as np
import pytest

from affectlab import storage
from affectlab.data.synth import talking_face as tf
from affectlab.data.synth.video import write_mp4
from affectlab.errors import ConfigError, MediaError
from affectlab.features import roi
from affectlab.features.arrow import rows_to_table
from affectlab.features.crops import FaceCropExtractor, MouthRoiExtractor, column_cells
from affectlab.features.landmarks import LandmarkExtractor

N, SIZE = 10, 192


def _head(n: int) -> np.ndarray:
    t = np.arange(n) / tf.FPS
    return np.stack([4 * np.sin(2 * np.pi * t), 3 * np.cos(2 * np.pi * t), 2.0 * np.sin(np.pi * t)], axis=1)


def _planted_mouth(head: np.ndarray, openness: float) -> np.ndarray:
    """Where talking_face puts the lips' midpoint in each frame (inverse of its PIL affine)."""
    scale = tf.CROP / SIZE
    out = []
    for dx, dy, deg in head:
        th = np.deg2rad(deg)
        c, s = np.cos(th) * scale, np.sin(th) * scale
        m = np.array([[c, -s], [s, c]])
        o = np.array([tf.FACE_CENTRE[0] + dx - (c - s) * SIZE / 2, tf.FACE_CENTRE[1] + dy - (s + c) * SIZE / 2])
        p = np.array([tf.MOUTH[0], tf.MOUTH[1] + tf.MAX_DROP * openness / 2])
        out.append(np.linalg.solve(m, p - o))
    return np.array(out)


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    root = tmp_path_factory.mktemp("crops")
    head = _head(N)
    video = str(root / "open.mp4")
    write_mp4(video, tf.render_frames(np.ones(N), head, SIZE, np.ones(3)), fps=25)
    row = {"sample_id": "s01/00001", "subject": "s01", "video_path": video}
    lm = LandmarkExtractor(backend="dlib").process(row)
    part = str(root / "landmarks.parquet")
    storage.write_parquet(rows_to_table([lm]), part)
    mean = roi.canonical_mean_face(lm["shape"][None])
    return {"row": {**row, "landmarks_part": part}, "lm": lm, "mean": mean, "head": head, "root": root}


def test_mouth_roi_is_centred_on_the_mouth(clip: dict) -> None:
    ex = MouthRoiExtractor(mean_face=clip["mean"].tolist())
    out = ex.process(clip["row"])
    mouth = out["mouth"]
    assert mouth.shape == (N, 96, 96) and mouth.dtype == np.uint8 and out["n_frames"] == N
    # geometry: the crop centre maps back onto the mouth landmarks and the planted lips
    smoothed = roi.smooth_landmarks(clip["lm"]["landmarks"], 12)
    mats = roi.mouth_matrices(smoothed, roi.alignment_matrices(smoothed, clip["mean"]), 96)
    centres = np.array([np.linalg.solve(m[:, :2], np.array([48.0, 48.0]) - m[:, 2]) for m in mats])
    np.testing.assert_allclose(centres, smoothed[:, 48:68].mean(axis=1), atol=1e-3)
    assert np.abs(centres - _planted_mouth(clip["head"], 1.0)).max() < 6
    # pixels: the dark gap between the open lips sits in the middle of every crop
    from scipy import ndimage

    for crop in mouth:
        blobs, n = ndimage.label(crop < 60)
        assert n >= 1
        gap = np.argmax(np.bincount(blobs.ravel())[1:]) + 1  # the largest dark region
        ys, xs = np.nonzero(blobs == gap)
        assert len(ys) > 200
        assert abs(xs.mean() - 48) < 6 and abs(ys.mean() - 48) < 8


def test_face_crops_sizes_colour_and_round_trip(clip: dict, tmp_path) -> None:  # noqa: ANN001
    ex = FaceCropExtractor(mean_face=clip["mean"].tolist(), sizes=[64, 28], grayscale=False)
    out = ex.process(clip["row"])
    assert out["face_64"].shape == (N, 64, 64, 3) and out["face_28"].shape == (N, 28, 28, 3)
    assert out["face_64"].mean() > 60  # mostly face, not border
    storage.write_parquet(rows_to_table([out]), str(tmp_path / "f.parquet"))
    table = storage.read_parquet(str(tmp_path / "f.parquet"))
    np.testing.assert_array_equal(column_cells(table, "face_64")[0], out["face_64"])
    assert table.column("n_frames")[0].as_py() == N


def test_frame_count_mismatch_and_missing_landmarks(clip: dict) -> None:
    ex = MouthRoiExtractor(mean_face=clip["mean"].tolist(), fps=12.5)  # video decoded at another rate
    with pytest.raises(MediaError, match="decoded 5 frames but the landmarks have 10"):
        ex.process(clip["row"])
    with pytest.raises(MediaError, match="no landmarks"):
        MouthRoiExtractor(mean_face=clip["mean"].tolist()).process({**clip["row"], "sample_id": "other"})


def test_identity_and_validation(clip: dict) -> None:
    mean = clip["mean"]
    a = MouthRoiExtractor.describe(mean_face=mean, landmarks_version="v1")
    assert a == MouthRoiExtractor.describe(mean_face=mean.tolist(), landmarks_version="v1")
    assert a != MouthRoiExtractor.describe(mean_face=mean + 1, landmarks_version="v1")
    assert a != MouthRoiExtractor.describe(mean_face=mean, landmarks_version="v2")
    assert a["params"]["size"] == 96 and a["name"] == "mouth_roi"
    with pytest.raises(ConfigError, match="68 x 2"):
        MouthRoiExtractor.describe(mean_face=np.zeros((5, 2)))
    with pytest.raises(ConfigError, match="sizes"):
        FaceCropExtractor.describe(mean_face=mean, sizes=[4])
    assert FaceCropExtractor.describe(mean_face=mean, sizes=[64, 112, 64])["params"]["sizes"] == [64, 112]
