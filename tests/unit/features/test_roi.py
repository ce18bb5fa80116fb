"""Landmark interpolation, smoothing, Procrustes mean face and ROI warps."""

from __future__ import annotations

import numpy as np
import pytest

from affectlab.errors import MediaError
from affectlab.features import roi


def _shape(seed: int = 0) -> np.ndarray:
    """A plausible 68-point shape: ellipse jaw, random inner points (pixels around 100)."""
    rng = np.random.default_rng(seed)
    t = np.linspace(np.pi, 2 * np.pi, 17)
    jaw = np.stack([100 + 60 * np.cos(t), 100 - 70 * np.sin(t)], axis=1)
    inner = rng.uniform(60, 140, size=(51, 2))
    return np.concatenate([jaw, inner]).astype(np.float64)


def _similar(points: np.ndarray, scale: float, deg: float, shift: tuple[float, float]) -> np.ndarray:
    th = np.deg2rad(deg)
    rot = np.array([[np.cos(th), -np.sin(th)], [np.sin(th), np.cos(th)]])
    return points @ (scale * rot).T + np.asarray(shift)


def test_interpolate_fills_gaps_linearly_and_holds_ends() -> None:
    lm = np.full((7, 68, 2), np.nan, np.float32)
    lm[2], lm[5] = 10.0, 40.0
    detected = np.array([0, 0, 1, 0, 0, 1, 0], bool)
    out = roi.interpolate_missing(lm, detected)
    np.testing.assert_allclose(out[:, 0, 0], [10, 10, 10, 20, 30, 40, 40])
    assert np.isfinite(out).all()


def test_interpolate_without_any_face_is_a_media_error() -> None:
    with pytest.raises(MediaError, match="no face detected in any frame"):
        roi.interpolate_missing(np.full((3, 68, 2), np.nan), np.zeros(3, bool), source="clip.mp4")


def test_smoothing_keeps_linear_motion_and_reduces_jitter() -> None:
    base = _shape()
    moving = np.stack([base + [2.0 * t, -1.0 * t] for t in range(30)])
    np.testing.assert_allclose(roi.smooth_landmarks(moving, 12), moving, atol=1e-4)
    rng = np.random.default_rng(1)
    noisy = np.stack([base] * 40) + rng.normal(0, 2.0, size=(40, 68, 2))
    smoothed = roi.smooth_landmarks(noisy, 12)
    # the shape jitter (centroid excluded) shrinks
    def jitter(x: np.ndarray) -> float:
        return float((x - x.mean(axis=1, keepdims=True) - (base - base.mean(0))).std())
    assert jitter(smoothed[6:-6]) < 0.5 * jitter(noisy[6:-6])
    np.testing.assert_allclose(roi.smooth_landmarks(noisy, 0), noisy, atol=1e-4)


def test_similarity_transform_recovers_a_known_transform() -> None:
    src = _shape()
    dst = _similar(src, 1.7, 23.0, (5.0, -12.0))
    m = roi.similarity_transform(src, dst)
    np.testing.assert_allclose(roi.apply_affine(m, src), dst, atol=1e-6)
    assert np.isclose(np.sqrt(abs(np.linalg.det(m[:, :2]))), 1.7)


def test_procrustes_mean_ignores_pose_and_missing_shapes() -> None:
    base = _shape()
    poses = [(1.0, 0, (0, 0)), (2.0, 15, (30, 5)), (0.5, -20, (-8, 40)), (1.3, 5, (2, 2))]
    shapes = np.stack([_similar(base, *p) for p in poses] + [np.full((68, 2), np.nan)])
    mean = roi.procrustes_mean(shapes)
    m = roi.similarity_transform(mean, roi.normalize_shape(base))
    np.testing.assert_allclose(roi.apply_affine(m, mean), roi.normalize_shape(base), atol=1e-6)


def test_canonical_mean_face_is_centred_with_the_requested_jaw_width() -> None:
    mean_face = roi.canonical_mean_face(np.stack([_shape(), _shape()]), size=256, face_width=120)
    assert mean_face.shape == (68, 2) and mean_face.dtype == np.float32
    assert np.isclose(np.linalg.norm(mean_face[16] - mean_face[0]), 120, rtol=1e-4)
    lo, hi = mean_face.min(0), mean_face.max(0)
    np.testing.assert_allclose((lo + hi) / 2, [128, 128], atol=1e-3)


def test_mouth_warp_centres_the_mouth_and_face_warp_fits_the_mean_face() -> None:
    mean_face = roi.canonical_mean_face(_shape()[None])
    frame_pts = _similar(mean_face.astype(np.float64), 0.8, 10, (20, 30))[None]  # a face seen in a frame
    aligned = roi.alignment_matrices(frame_pts, mean_face)
    mouth = roi.mouth_matrices(frame_pts, aligned, size=96)
    centre = roi.apply_affine(mouth[0], frame_pts[0, roi.MOUTH]).mean(axis=0)
    np.testing.assert_allclose(centre, [48, 48], atol=1e-6)
    face = roi.face_matrices(aligned, mean_face, 64, margin=1.0)
    mapped = roi.apply_affine(face[0], frame_pts[0])
    assert mapped.min() > -1e-3 and mapped.max() < 64 + 1e-3
    assert np.isclose((mapped.max(0) - mapped.min(0)).max(), 64, atol=1e-3)


def test_warp_crops_shapes_and_content() -> None:
    frame = np.zeros((100, 100, 3), np.uint8)
    frame[40:60, 40:60] = 255  # a white square centred at (50, 50)
    shift = np.array([[[1.0, 0, -26.0], [0, 1.0, -26.0]]])  # crop 48x48 around (50, 50)
    gray = roi.warp_crops(frame[None], shift, 48, grayscale=True)
    color = roi.warp_crops(frame[None], shift, 48, grayscale=False)
    assert gray.shape == (1, 48, 48) and color.shape == (1, 48, 48, 3) and gray.dtype == np.uint8
    assert gray[0, 24, 24] == 255 and gray[0, 2, 2] == 0
    assert roi.warp_crops(np.zeros((0, 10, 10, 3), np.uint8), np.zeros((0, 2, 3)), 8, grayscale=True).shape == (0, 8, 8)
