"""Landmark post-processing and region-of-interest crops (lip-reading style preparation).

The steps follow the usual lip-reading preparation (detect -> landmarks -> fill frames
without a face -> smooth -> similarity-align to a mean face -> crop the mouth):

* :func:`interpolate_missing`: linear interpolation between detected frames; leading and
  trailing gaps copy the nearest detection.
* :func:`smooth_landmarks`: centred moving average (window shrinks at the clip's ends),
  re-centred on each frame's own centroid so only jitter of shape/scale/rotation is smoothed.
* :func:`procrustes_mean` / :func:`canonical_mean_face`: generalised Procrustes mean of shapes,
  placed in a ``size x size`` reference frame.
* :func:`alignment_matrices`: per-frame similarity transform (stable points: nose tip and eye
  corners) onto the mean face; :func:`mouth_matrices` / :func:`face_matrices` turn it into one
  affine warp per frame straight to the crop (mouth centred on landmarks 48-67).

Landmark arrays are ``(T, 68, 2)`` float (x, y) in pixels; affine matrices are ``(T, 2, 3)``
mapping source pixels to output pixels.
"""

from __future__ import annotations

import numpy as np

from affectlab.errors import MediaError

__all__ = [
    "MOUTH",
    "STABLE_POINTS",
    "alignment_matrices",
    "canonical_mean_face",
    "face_matrices",
    "interpolate_missing",
    "mouth_matrices",
    "normalize_shape",
    "procrustes_mean",
    "similarity_transform",
    "smooth_landmarks",
    "warp_crops",
]

MOUTH = slice(48, 68)
STABLE_POINTS = (33, 36, 39, 42, 45)  # nose tip, outer/inner eye corners
REFERENCE_SIZE = 256
REFERENCE_FACE_WIDTH = 120.0  # jaw width of the canonical mean face, in reference pixels


def interpolate_missing(landmarks: np.ndarray, detected: np.ndarray, *, source: str = "clip") -> np.ndarray:
    """Fill frames without a detection by linear interpolation over time.

    Raises:
        MediaError: No frame has a detection ("no face detected in any frame").
    """
    detected = np.asarray(detected, dtype=bool)
    if not detected.any():
        raise MediaError(f"{source}: no face detected in any frame")
    t = np.arange(len(detected))
    flat = landmarks.reshape(len(detected), -1).astype(np.float64)
    known = t[detected]
    out = np.empty_like(flat)
    for j in range(flat.shape[1]):  # np.interp holds the ends constant (nearest detection)
        out[:, j] = np.interp(t, known, flat[detected, j])
    return out.reshape(landmarks.shape).astype(np.float32)


def smooth_landmarks(landmarks: np.ndarray, window: int = 12) -> np.ndarray:
    """Centred moving average over ``window`` frames, keeping each frame's centroid."""
    n = len(landmarks)
    half = np.minimum(np.minimum(np.arange(n), n - 1 - np.arange(n)), max(window, 0) // 2)
    csum = np.concatenate([np.zeros((1, *landmarks.shape[1:])), np.cumsum(landmarks, axis=0, dtype=np.float64)])
    idx = np.arange(n)
    means = (csum[idx + half + 1] - csum[idx - half]) / (2 * half + 1)[:, None, None]
    means += landmarks.mean(axis=1, keepdims=True) - means.mean(axis=1, keepdims=True)
    return means.astype(np.float32)


def similarity_transform(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """Least-squares similarity (rotation, uniform scale, translation) mapping ``src`` onto ``dst``.

    Umeyama's closed form without reflection. Returns a ``(2, 3)`` matrix ``M`` with
    ``dst ~= src @ M[:, :2].T + M[:, 2]``.
    """
    src = np.asarray(src, dtype=np.float64)
    dst = np.asarray(dst, dtype=np.float64)
    mu_s, mu_d = src.mean(axis=0), dst.mean(axis=0)
    s0, d0 = src - mu_s, dst - mu_d
    cov = d0.T @ s0 / len(src)
    u, sig, vt = np.linalg.svd(cov)
    fix = np.diag([1.0, np.sign(np.linalg.det(u @ vt)) or 1.0])
    rot = u @ fix @ vt
    var = (s0**2).sum() / len(src)
    scale = (sig * np.diag(fix)).sum() / var if var > 0 else 1.0
    m = np.empty((2, 3))
    m[:, :2] = scale * rot
    m[:, 2] = mu_d - m[:, :2] @ mu_s
    return m


def apply_affine(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Map ``(..., 2)`` points with a ``(2, 3)`` affine matrix."""
    return points @ matrix[:, :2].T + matrix[:, 2]


def normalize_shape(points: np.ndarray) -> np.ndarray:
    """Centre a ``(68, 2)`` shape on its centroid and scale it to unit RMS radius."""
    centred = np.asarray(points, dtype=np.float64) - np.mean(points, axis=0)
    rms = np.sqrt((centred**2).sum(axis=1).mean())
    return centred / rms if rms > 0 else centred


def procrustes_mean(shapes: np.ndarray, *, iterations: int = 10) -> np.ndarray:
    """Generalised Procrustes mean of ``(N, 68, 2)`` shapes (normalised: centred, unit RMS).

    NaN shapes (frames/clips without a face) are ignored.

    Raises:
        ValueError: No finite shape.
    """
    shapes = np.asarray(shapes, dtype=np.float64)
    shapes = shapes[np.isfinite(shapes).all(axis=(1, 2))]
    if len(shapes) == 0:
        raise ValueError("procrustes_mean needs at least one finite shape")
    normed = np.stack([normalize_shape(s) for s in shapes])
    mean = normed[0]
    for _ in range(iterations):
        aligned = np.stack([apply_affine(similarity_transform(s, mean), s) for s in normed])
        new = normalize_shape(aligned.mean(axis=0))
        if np.abs(new - mean).max() < 1e-7:
            break
        mean = new
    return mean


def canonical_mean_face(
    shapes: np.ndarray, *, size: int = REFERENCE_SIZE, face_width: float = REFERENCE_FACE_WIDTH
) -> np.ndarray:
    """Mean face of ``shapes`` in a ``size x size`` frame: jaw ``face_width`` px wide, centred.

    Returns:
        ``(68, 2)`` float32 reference landmarks.
    """
    mean = procrustes_mean(shapes)
    lo, hi = mean.min(axis=0), mean.max(axis=0)
    scale = face_width / (mean[16, 0] - mean[0, 0]) if mean[16, 0] != mean[0, 0] else face_width / (hi - lo)[0]
    placed = (mean - (lo + hi) / 2) * scale + size / 2.0
    return placed.astype(np.float32)


def alignment_matrices(landmarks: np.ndarray, mean_face: np.ndarray) -> np.ndarray:
    """Per-frame similarity ``(T, 2, 3)`` mapping each frame's stable points onto the mean face's."""
    idx = list(STABLE_POINTS)
    return np.stack([similarity_transform(pts[idx], mean_face[idx]) for pts in landmarks])


def _then_translate(matrices: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    out = matrices.copy()
    out[:, :, 2] += offsets
    return out


def mouth_matrices(landmarks: np.ndarray, aligned: np.ndarray, size: int = 96) -> np.ndarray:
    """Warps to a ``size x size`` crop centred on the aligned mouth landmarks (48-67) of each frame."""
    centres = np.stack([apply_affine(m, pts[MOUTH]).mean(axis=0) for m, pts in zip(aligned, landmarks, strict=True)])
    return _then_translate(aligned, size / 2.0 - centres)


def face_matrices(aligned: np.ndarray, mean_face: np.ndarray, size: int, *, margin: float = 1.25) -> np.ndarray:
    """Warps to a ``size x size`` face crop: the mean face's box (squared, x ``margin``) scaled to ``size``."""
    lo, hi = mean_face.min(axis=0), mean_face.max(axis=0)
    side = float((hi - lo).max()) * margin
    centre = (lo + hi) / 2.0
    scale = size / side
    box = np.array([[scale, 0.0, size / 2.0 - scale * centre[0]], [0.0, scale, size / 2.0 - scale * centre[1]]])
    out = np.empty_like(aligned)
    out[:, :, :2] = box[:, :2] @ aligned[:, :, :2]
    out[:, :, 2] = (box[:, :2] @ aligned[:, :, 2:]).squeeze(-1) + box[:, 2]
    return out


def warp_crops(frames: np.ndarray, matrices: np.ndarray, size: int, *, grayscale: bool) -> np.ndarray:
    """Apply one affine warp per frame; returns ``(T, size, size)`` (gray) or ``(T, size, size, 3)`` uint8."""
    import cv2

    out = []
    for frame, m in zip(frames, matrices, strict=True):
        crop = cv2.warpAffine(
            np.ascontiguousarray(frame), m.astype(np.float64), (size, size),
            flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0,
        )
        out.append(cv2.cvtColor(crop, cv2.COLOR_RGB2GRAY) if grayscale else crop)
    return np.stack(out).astype(np.uint8) if out else np.zeros((0, size, size) + (() if grayscale else (3,)), np.uint8)
