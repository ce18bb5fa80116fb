"""A vector face renderer whose geometry is driven by action-unit intensities.

Shapes are drawn as signed-distance fields on a normalised grid (u right, v down, both in
[-1, 1]) with anti-aliased coverage, for a whole clip at once: every per-frame parameter is an
array of length T and the frame stack is (T, S, S, 3).

AU effects (intensity a in 0-5, used as a/5): AU01 raises the inner brow ends, AU02 the outer
ends, AU04 lowers the brows and draws them together; AU06 raises the cheeks and narrows the
eyes, AU07 tightens the lids; AU12 pulls the lip corners up, AU15 down; AU20 stretches the lips
sideways; AU25 parts them. Identity (face shape, proportions, skin tone, hair, lighting,
background) comes from :class:`Identity`.

Shading that face detectors rely on, for every skin tone: darker eye sockets under the brows,
brows always darker than the skin, a shadow under the nose with nostrils, darkening towards the
face outline and a shadowed neck below the chin. With these, dlib's HOG frontal-face detector
(upsample 1) finds the face in every frame of rendered clips from 64 px up, for light and dark
skin alike (``tests/unit/data/test_synth_ravdess_video.py`` checks a sample of identities).

Each shape is evaluated only inside a window of pixels that it can reach in any frame (its
extent plus the clip's head motion), which keeps a 128 px, 60-frame clip well under a second.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["FACE_AUS", "Identity", "random_identity", "render_faces"]

FACE_AUS = ("AU01", "AU02", "AU04", "AU06", "AU07", "AU12", "AU15", "AU20", "AU25")

Num = float | np.ndarray  # a scalar or a per-frame (T, 1, 1) column

SKIN_LIGHT = np.array([0.96, 0.80, 0.69])
SKIN_DARK = np.array([0.40, 0.26, 0.18])
FACE_CY = 0.05  # vertical centre of the face ellipse


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
    """Approximate signed distance to an ellipse, exact on the outline.

    The first-order estimate (r - 1) / |grad r| is bounded below by the distance to the
    bounding box, so thin ellipses (closed eyes) stay short instead of smearing into streaks.
    """
    du, dv = (u - cx) / a, (v - cy) / b
    r2 = du**2 + dv**2
    eps = 1e-12  # at the centre r / |grad r| tends to min(a, b) along the minor axis
    scale = np.sqrt((r2 + eps) / ((du / a) ** 2 + (dv / b) ** 2 + eps / np.minimum(a, b) ** 2))
    box = np.maximum(np.abs(u - cx) - a, np.abs(v - cy) - b)
    return np.maximum((np.sqrt(r2) - 1.0) * scale, box)


def _capsule(u: np.ndarray, v: np.ndarray, p0: tuple[Num, Num], p1: tuple[Num, Num], radius: float) -> np.ndarray:
    (x0, y0), (x1, y1) = p0, p1
    dx, dy = x1 - x0, y1 - y0
    h = np.clip(((u - x0) * dx + (v - y0) * dy) / (dx * dx + dy * dy + 1e-12), 0, 1)
    return np.hypot(u - x0 - h * dx, v - y0 - h * dy) - radius


def _soft(u: np.ndarray, v: np.ndarray, cx: Num, cy: Num, a: Num, b: Num) -> np.ndarray:
    """A soft elliptical blob: exp(-2 r^2) of the normalised radius r, exactly 0 beyond r = 1.5."""
    r2 = ((u - cx) / a) ** 2 + ((v - cy) / b) ** 2
    return np.exp(-2.0 * r2) * (r2 < 2.25)


def _col(x: np.ndarray) -> np.ndarray:
    """Per-frame parameter (T,) broadcast against a (T, S, S) grid."""
    return np.asarray(x, dtype=np.float32)[:, None, None]


@dataclass(frozen=True)
class _View:
    """A window of the frame stack: pixels ``img`` (T, h, w, 3, a view) and their face coordinates."""

    img: np.ndarray
    u: np.ndarray  # (T, 1, w)
    v: np.ndarray  # (T, h, 1)
    px: float

    def over(self, alpha: np.ndarray, color: Num | tuple[float, ...]) -> None:
        """Composite ``color`` (3,) or (T, h, w, 3) with coverage ``alpha`` (T, h, w) in place."""
        img = self.img  # a view into the frame stack: updated in place
        a = np.broadcast_to(alpha, img.shape[:3])[..., None]
        img += a * (np.asarray(color, dtype=img.dtype) - img)

    def shade(self, weight: np.ndarray, amount: float) -> None:
        """Darken by ``amount`` (0-1) where ``weight`` (T, h, w) is 1."""
        img = self.img
        img *= (1 - amount * np.broadcast_to(weight, img.shape[:3]))[..., None]


@dataclass(frozen=True)
class _Canvas:
    """The frame stack (T, S, S, 3) float32 and the head offsets that move the face in it."""

    img: np.ndarray
    grid: np.ndarray  # (S,) pixel centres in [-1, 1]
    head: np.ndarray  # (T, 2)
    px: float

    def window(self, x0: float, x1: float, y0: float, y1: float) -> _View | None:
        """The pixels that face-coordinate box [x0, x1] x [y0, y1] reaches in any frame (None: none)."""
        pad = 2 * self.px
        hx, hy = self.head[:, 0], self.head[:, 1]
        cols = np.flatnonzero((self.grid >= x0 + hx.min() - pad) & (self.grid <= x1 + hx.max() + pad))
        rows = np.flatnonzero((self.grid >= y0 + hy.min() - pad) & (self.grid <= y1 + hy.max() + pad))
        if cols.size == 0 or rows.size == 0:
            return None
        c, r = slice(cols[0], cols[-1] + 1), slice(rows[0], rows[-1] + 1)
        u = self.grid[None, None, c] - _col(hx)
        v = self.grid[None, r, None] - _col(hy)
        return _View(self.img[:, r, c], u, v, self.px)


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
    grid = ((np.arange(size) + 0.5) / size * 2 - 1).astype(np.float32)
    img = np.empty((len(aus), size, size, 3), dtype=np.float32)
    img[:] = np.asarray(ident.background) * (1 - 0.25 * (grid[None, :, None, None] + 1) / 2)
    canvas = _Canvas(img, grid, np.asarray(head, dtype=np.float32), 2.0 / size)
    _head_shape(canvas, ident)
    _nose(canvas, ident)
    _eyes_and_brows(canvas, ident, a, _col(blink))
    _mouth(canvas, ident, a)
    return (np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8)


def _head_shape(canvas: _Canvas, ident: Identity) -> None:
    """Neck (in shadow), hair, the shaded face and the fringe."""
    skin, w, h = np.asarray(ident.skin), ident.face_w, ident.face_h
    if view := canvas.window(-w * 0.6, w * 0.6, FACE_CY + h * 0.45, 1.0):
        neck = np.maximum(np.abs(view.u) - w * 0.55, FACE_CY + h * 0.5 - view.v)
        view.over(_cov(neck, view.px), skin * 0.55)
    if view := canvas.window(-w * 1.1, w * 1.1, -0.12 - h, 0.12):
        hair = _cov(_ellipse(view.u, view.v, 0.0, -0.12, w * 1.08, h * 0.98), view.px)
        view.over(hair * (view.v < 0.1), ident.hair)
    if view := canvas.window(-w, w, FACE_CY - h, FACE_CY + h):
        u, v = view.u, view.v
        face = _cov(_ellipse(u, v, 0.0, FACE_CY, w, h), view.px)
        lx, ly = ident.light
        r = np.clip(np.sqrt((u / w) ** 2 + ((v - FACE_CY) / h) ** 2), 0, 1)
        shade = (1.0 + lx * u / w + ly * v / h) * (1 - 0.3 * r**4)  # darker towards the outline
        view.over(face, skin.astype(np.float32) * shade[..., None])
    if view := canvas.window(-w, w, FACE_CY - h, -0.72 + 0.28):
        face = _cov(_ellipse(view.u, view.v, 0.0, FACE_CY, w, h), view.px)
        fringe = _cov(_ellipse(view.u, view.v, 0.0, -0.72, w * 0.95, 0.28), view.px) * face
        view.over(fringe, ident.hair)


def _nose(canvas: _Canvas, ident: Identity) -> None:
    """Ridge line, the shadow under the tip and the nostrils."""
    skin, tip = np.asarray(ident.skin), ident.mouth_y - 0.16
    if view := canvas.window(-0.15, 0.15, ident.eye_y + 0.05, tip + 0.1):
        u, v = view.u, view.v
        ridge = _cov(_capsule(u, v, (0.0, ident.eye_y + 0.08), (0.02, tip), 0.012), view.px)
        view.over(0.35 * ridge, skin * 0.6)
        view.shade(_soft(u, v, 0.0, tip + 0.03, 0.09, 0.035), 0.35)
        for side in (-1.0, 1.0):
            view.over(_cov(_ellipse(u, v, side * 0.035, tip + 0.01, 0.02, 0.012), view.px), skin * 0.3)


def _eyes_and_brows(canvas: _Canvas, ident: Identity, a: dict[str, np.ndarray], blink: np.ndarray) -> None:
    """Per side: eye socket shadow, cheek, eye (white, iris, lid line) and brow."""
    ey = ident.eye_y
    cheek_y = ey + 0.24 - 0.08 * a["AU06"]
    openness = np.clip(1 - 0.45 * a["AU06"] - 0.45 * a["AU07"], 0.15, 1) * blink
    eye_h = ident.eye_h * openness + 1e-3
    socket_w, socket_h = ident.eye_w * 1.7, ident.eye_h + 0.06
    brow_color = np.minimum(ident.hair, np.asarray(ident.skin) * 0.45)
    base = ey - ident.brow_gap
    for side in (-1.0, 1.0):
        ex = side * ident.eye_dx
        reach = 1.5 * socket_w  # _soft is 0 beyond 1.5 radii; the cheek stays within it
        if view := canvas.window(ex - reach, ex + reach, ey - 0.02 - 1.5 * socket_h, ey + 0.34):
            u, v = view.u, view.v
            view.shade(_soft(u, v, ex, ey - 0.02, socket_w, socket_h), 0.4)
            cheek = _cov(_ellipse(u, v, ex * 1.05, cheek_y, 0.12, 0.07), view.px)
            view.over(cheek * (0.12 + 0.35 * a["AU06"]), np.asarray(ident.lips) * 1.1)
            white = _cov(_ellipse(u, v, ex, ey, ident.eye_w, eye_h), view.px)
            view.over(white, (0.95, 0.95, 0.93))
            iris_h = np.minimum(eye_h, ident.eye_w * 0.45)
            iris = _cov(_ellipse(u, v, ex, ey, ident.eye_w * 0.45, iris_h), view.px)
            view.over(iris * white, (0.12, 0.08, 0.05))
            lid = _cov(np.abs(_ellipse(u, v, ex, ey, ident.eye_w, eye_h)) - 0.008, view.px)
            view.over(0.7 * lid, np.asarray(ident.skin) * 0.45)
        inner = (side * (ident.eye_dx - 0.1 - 0.04 * a["AU04"]), base - 0.09 * a["AU01"] + 0.06 * a["AU04"])
        outer = (side * (ident.eye_dx + 0.12), base - 0.02 - 0.09 * a["AU02"] + 0.03 * a["AU04"])
        x_lo, x_hi = sorted((side * (ident.eye_dx - 0.14), side * (ident.eye_dx + 0.12)))
        if view := canvas.window(x_lo - 0.03, x_hi + 0.03, base - 0.14, base + 0.09):
            view.over(_cov(_capsule(view.u, view.v, inner, outer, 0.026), view.px), brow_color)


def _mouth(canvas: _Canvas, ident: Identity, a: dict[str, np.ndarray]) -> None:
    """Lips whose corners, width and opening follow AU12, AU15, AU20 and AU25; teeth when open."""
    my, reach = ident.mouth_y, ident.mouth_w * 1.5
    view = canvas.window(-reach, reach, my - 0.25, my + 0.25)
    if view is None:
        return
    u, v = view.u, view.v
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
    view.over(_cov(inside, view.px), (0.25, 0.06, 0.08))
    teeth = np.maximum(np.maximum(top - v, v - (top + 0.35 * (bottom - top))), outside + 0.03)
    view.over(_cov(teeth, view.px) * (opening > 0.03), (0.93, 0.92, 0.88))
    view.over(_cov(upper, view.px), ident.lips)
    view.over(_cov(lower, view.px), np.asarray(ident.lips) * 1.05)
