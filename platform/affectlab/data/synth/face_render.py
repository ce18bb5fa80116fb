"""A vector face renderer whose geometry is driven by action-unit intensities.

Shapes are drawn as signed-distance fields on a normalised grid (u right, v down, both in
[-1, 1]) with anti-aliased coverage, for a whole clip at once: every per-frame parameter is an
array of length T and the frame stack is (T, S, S, 3).

AU effects (intensity a in 0-5, used as a/5): AU01 raises the inner brow ends, AU02 the outer
ends, AU04 lowers the brows and draws them together; AU06 raises the cheeks and narrows the
eyes, AU07 tightens the lids; AU12 pulls the lip corners up, AU15 down; AU20 stretches the lips
sideways; AU25 parts them. Identity (face shape, proportions, skin tone, hair, lighting,
background) comes from :class:`Identity`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["FACE_AUS", "Identity", "random_identity", "render_faces"]

FACE_AUS = ("AU01", "AU02", "AU04", "AU06", "AU07", "AU12", "AU15", "AU20", "AU25")

Num = float | np.ndarray  # a scalar or a per-frame (T, 1, 1) column

SKIN_LIGHT = np.array([0.96, 0.80, 0.69])
SKIN_DARK = np.array([0.40, 0.26, 0.18])


@dataclass(frozen=True)
class Identity:
    """Per-subject appearance (normalised units: the image spans [-1, 1])."""

    face_w: float
    face_h: float
    eye_dx: float
    eye_y: float
    eye_w: float
    eye_h: float
    brow_gap: float
    mouth_y: float
    mouth_w: float
    lip_t: float
    skin: tuple[float, float, float]
    hair: tuple[float, float, float]
    lips: tuple[float, float, float]
    background: tuple[float, float, float]
    light: tuple[float, float]  # direction (x, y) times strength


def random_identity(rng: np.random.Generator) -> Identity:
    """Draw a face identity."""
    tone = rng.uniform(0, 1)
    skin = (1 - tone) * SKIN_LIGHT + tone * SKIN_DARK + rng.normal(0, 0.02, 3)
    hair = rng.uniform(0.05, 0.45) * np.array([1.0, 0.8, 0.6]) * rng.uniform(0.6, 1.4, 3)
    angle = rng.uniform(0, 2 * np.pi)
    strength = rng.uniform(0.1, 0.35)
    return Identity(
        face_w=rng.uniform(0.55, 0.7),
        face_h=rng.uniform(0.75, 0.88),
        eye_dx=rng.uniform(0.22, 0.3),
        eye_y=rng.uniform(-0.15, -0.05),
        eye_w=rng.uniform(0.085, 0.11),
        eye_h=rng.uniform(0.045, 0.06),
        brow_gap=rng.uniform(0.11, 0.15),
        mouth_y=rng.uniform(0.38, 0.48),
        mouth_w=rng.uniform(0.17, 0.24),
        lip_t=rng.uniform(0.03, 0.045),
        skin=tuple(np.clip(skin, 0, 1).round(4)),
        hair=tuple(np.clip(hair, 0, 1).round(4)),
        lips=tuple(np.clip(skin * np.array([0.85, 0.55, 0.55]), 0, 1).round(4)),
        background=tuple(rng.uniform(0.2, 0.85, 3).round(4)),
        light=(float(np.cos(angle) * strength), float(np.sin(angle) * strength)),
    )


def _cov(sdf: np.ndarray, px: float) -> np.ndarray:
    """Anti-aliased coverage of the region sdf < 0."""
    return np.clip(0.5 - sdf / px, 0.0, 1.0)


def _ellipse(u: np.ndarray, v: np.ndarray, cx: Num, cy: Num, a: Num, b: Num) -> np.ndarray:
    r = np.sqrt(((u - cx) / a) ** 2 + ((v - cy) / b) ** 2)
    return (r - 1.0) * np.minimum(a, b)


def _capsule(u: np.ndarray, v: np.ndarray, p0: tuple[Num, Num], p1: tuple[Num, Num], radius: float) -> np.ndarray:
    (x0, y0), (x1, y1) = p0, p1
    dx, dy = x1 - x0, y1 - y0
    h = np.clip(((u - x0) * dx + (v - y0) * dy) / (dx * dx + dy * dy + 1e-12), 0, 1)
    return np.hypot(u - x0 - h * dx, v - y0 - h * dy) - radius


def _over(img: np.ndarray, alpha: np.ndarray, color: Num | tuple[float, ...]) -> None:
    """Composite ``color`` (3,) or (T, S, S, 3) with coverage ``alpha`` (T, S, S) in place."""
    a = alpha[..., None]
    img *= 1 - a
    img += a * np.asarray(color)


def _col(x: np.ndarray) -> np.ndarray:
    """Per-frame parameter (T,) broadcast against a (T, S, S) grid."""
    return np.asarray(x, dtype=float)[:, None, None]


def render_faces(
    ident: Identity, aus: np.ndarray, size: int, head: np.ndarray, blink: np.ndarray
) -> np.ndarray:
    """Render a clip.

    Args:
        ident: The subject's appearance.
        aus: AU intensities (T, 9) in :data:`FACE_AUS` order, 0-5.
        size: Image side in pixels.
        head: Head offset per frame (T, 2), normalised units.
        blink: Eye openness multiplier per frame (T,), 1 open, 0 closed.

    Returns:
        Frames (T, size, size, 3) uint8.
    """
    a = {name: _col(np.clip(aus[:, i], 0, 5) / 5.0) for i, name in enumerate(FACE_AUS)}
    grid = (np.arange(size) + 0.5) / size * 2 - 1
    u = grid[None, None, :] - _col(head[:, 0])
    v = grid[None, :, None] - _col(head[:, 1])
    px = 2.0 / size
    t_frames = len(aus)
    img = np.empty((t_frames, size, size, 3))
    img[:] = np.asarray(ident.background) * (1 - 0.25 * (grid[None, :, None, None] + 1) / 2)
    _face_base(img, ident, u, v, px)
    _eyes_and_brows(img, ident, a, u, v, px, _col(blink))
    _mouth(img, ident, a, u, v, px)
    return (np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8)


def _face_base(img: np.ndarray, ident: Identity, u: np.ndarray, v: np.ndarray, px: float) -> None:
    hair = _cov(_ellipse(u, v, 0.0, -0.12, ident.face_w * 1.08, ident.face_h * 0.98), px)
    _over(img, hair * (v < 0.1), ident.hair)
    face = _cov(_ellipse(u, v, 0.0, 0.05, ident.face_w, ident.face_h), px)
    lx, ly = ident.light
    shade = 1.0 + lx * u / ident.face_w + ly * v / ident.face_h
    _over(img, face, np.asarray(ident.skin) * shade[..., None])
    fringe = _cov(_ellipse(u, v, 0.0, -0.72, ident.face_w * 0.95, 0.28), px) * face
    _over(img, fringe, ident.hair)
    nose = _cov(_capsule(u, v, (0.0, ident.eye_y + 0.08), (0.02, ident.mouth_y - 0.16), 0.012), px)
    _over(img, 0.35 * nose, np.asarray(ident.skin) * 0.6)


def _eyes_and_brows(
    img: np.ndarray, ident: Identity, a: dict[str, np.ndarray], u: np.ndarray, v: np.ndarray, px: float,
    blink: np.ndarray,
) -> None:
    ey = ident.eye_y
    cheek_y = ey + 0.24 - 0.08 * a["AU06"]
    openness = np.clip(1 - 0.45 * a["AU06"] - 0.45 * a["AU07"], 0.15, 1) * blink
    for side in (-1.0, 1.0):
        ex = side * ident.eye_dx
        cheek = _cov(_ellipse(u, v, ex * 1.05, cheek_y, 0.12, 0.07), px)
        _over(img, cheek * (0.12 + 0.35 * a["AU06"]), np.asarray(ident.lips) * 1.1)
        eye_h = ident.eye_h * openness + 1e-3
        white = _cov(_ellipse(u, v, ex, ey, ident.eye_w, eye_h), px)
        _over(img, white, (0.95, 0.95, 0.93))
        iris = _cov(_ellipse(u, v, ex, ey, ident.eye_w * 0.45, np.minimum(eye_h, ident.eye_w * 0.45)), px)
        _over(img, iris * white, (0.12, 0.08, 0.05))
        lid = _cov(np.abs(_ellipse(u, v, ex, ey, ident.eye_w, eye_h)) - 0.008, px)
        _over(img, 0.7 * lid, np.asarray(ident.skin) * 0.45)
        base = ey - ident.brow_gap
        inner = (side * (ident.eye_dx - 0.1 - 0.04 * a["AU04"]), base - 0.09 * a["AU01"] + 0.06 * a["AU04"])
        outer = (side * (ident.eye_dx + 0.12), base - 0.02 - 0.09 * a["AU02"] + 0.03 * a["AU04"])
        brow = _cov(_capsule(u, v, inner, outer, 0.022), px)
        _over(img, brow, ident.hair)


def _mouth(
    img: np.ndarray, ident: Identity, a: dict[str, np.ndarray], u: np.ndarray, v: np.ndarray, px: float
) -> None:
    my = ident.mouth_y
    half_w = ident.mouth_w * (1 + 0.35 * a["AU20"] + 0.12 * a["AU12"])
    corner_dy = -0.09 * a["AU12"] + 0.08 * a["AU15"]
    opening = 0.13 * a["AU25"] + 0.02 * a["AU20"]
    x = np.clip(u / half_w, -1, 1)
    bulge = 1 - x**2
    line = my + corner_dy * x**2 - 0.3 * corner_dy * bulge
    top, bottom = line - opening / 2 * bulge, line + opening / 2 * bulge
    outside = np.abs(u) - half_w
    thick = ident.lip_t * (0.35 + 0.65 * bulge)
    upper = np.maximum(np.maximum(top - thick - v, v - top), outside)
    lower = np.maximum(np.maximum(bottom - v, v - bottom - thick * 1.2), outside)
    inside = np.maximum(np.maximum(top - v, v - bottom), outside)
    _over(img, _cov(inside, px), (0.25, 0.06, 0.08))
    teeth = np.maximum(np.maximum(top - v, v - (top + 0.35 * (bottom - top))), outside + 0.03)
    _over(img, _cov(teeth, px) * (opening > 0.03), (0.93, 0.92, 0.88))
    _over(img, _cov(upper, px), ident.lips)
    _over(img, _cov(lower, px), np.asarray(ident.lips) * 1.05)
