"""``visemes``: sentences read from the lips of a real face, one viseme per character (lrs adapter).

The face is the one of ``talking-face`` (``skimage.data.astronaut()``, a real portrait; see
:mod:`affectlab.data.synth.talking_face`). Its own (smiling) mouth is inpainted away once and a
parametric mouth is painted in its place, frame by frame: lip gap, mouth width, rounding, upper and
lower teeth, tongue tip, lower lip tucked under the upper teeth, lips pressed (:data:`SHAPE_PARAMS`).
Every character of the transcript is a viseme class (:data:`VISEME_TABLE`); several letters share
a class, as in real lip reading, so only a language model can tell ``BAT`` from ``MAT``:

============  ==========  =====================================================================
class         letters     mouth shape
============  ==========  =====================================================================
rest          (space)     lips relaxed, barely apart
bilabial      B M P       lips pressed together (thinner, paler), a dark seam, slightly narrow
labiodental   F V         lower lip tucked under the visible upper teeth
rounded       O U W       narrow, round opening, thick protruding lips
protruded     J R         lips pushed forward, narrowish, teeth close together
open          A H         jaw dropped wide open, teeth and a low tongue visible
mid           E           half open and spread, both rows of teeth
spread        I Y         lips stretched wide, small opening, teeth almost together
alveolar      D N T       small opening, tongue tip raised behind the upper teeth
lateral       L           half open, the tongue tip clearly raised
sibilant      S Z         teeth together and visible, lips slightly spread
velar         C G K Q X   medium opening, dark mouth, little teeth
============  ==========  =====================================================================

Timing: each character is held for ``max(2, round(base / rate * lognormal(0, 0.3)))`` frames at
25 fps (base 3.2 frames for vowel classes, 2.4 for spaces, 2.6 otherwise; ``rate`` is the
subject's speaking rate times a per-utterance factor), so the number of frames says little about
the number of characters. The mouth holds each class's shape around the character's middle frame
(``start + length // 2`` always shows it exactly; about half the frames of longer characters) and
moves between consecutive shapes with a raised-cosine transition over the frames in between
(co-articulation: every character starts with at least one in-between frame). Each clip starts and
ends with 4-8 frames of ``rest``.

Per subject (seeded): face scale, position and in-plane rotation in the frame, lighting (colour
gain and a directional gradient), mouth width, speaking rate, small head motion and a voice. The
16 kHz audio track is the source-filter voice of :mod:`affectlab.data.synth.voice` driven by the
same timing: voiced where the letter is voiced, loudness following the lip gap, fricative noise
on noisy letters, vowel formants on vowel letters (so the audio says more than the lips: it
separates P from B, for instance).

Sentences come from a small grammar (:func:`sentence`, a few hundred words) or from a file, one
per line (:func:`read_sentences`; clip ``j = subject * items + item`` says line ``j mod N``).
With ``relation: shuffled`` each clip's ``.txt`` holds another clip's transcript (one random cycle
over all clips); its video and audio stay its own. :func:`clip_timings` gives the planted timing of
every clip (text and frames per character) without rendering. Layout (LRS3-style, see the ``lrs``
adapter)::

    <subject>/<clip>.mp4    H.264 SIZE x SIZE at 25 fps + AAC 16 kHz mono
    <subject>/<clip>.txt    "Text:  WORDS", "Conf:  4", then word timings (start/end in s)
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import asdict, dataclass
from functools import lru_cache
from typing import Any

import numpy as np
from pydantic import Field, field_validator

from affectlab.config import StrictModel
from affectlab.data.synth import talking_face as TF
from affectlab.data.synth import voice as V
from affectlab.data.synth.base import (
    Progress,
    SynthRequest,
    rng_for,
    shuffle_plan,
    subject_id,
)
from affectlab.data.synth.video import even_frame_size, write_mp4

__all__ = [
    "ALPHABET",
    "FPS",
    "GRAMMAR",
    "SHAPE_PARAMS",
    "VISEMES",
    "VISEME_CLASSES",
    "VISEME_TABLE",
    "MouthShape",
    "Subject",
    "Timing",
    "VisemesOptions",
    "clip_timings",
    "mouth_track",
    "random_subject",
    "read_sentences",
    "render_mouth_frames",
    "sentence",
    "timing",
    "viseme_ids",
    "vocabulary",
    "write",
]

FPS = TF.FPS  # 25
ALPHABET = " ABCDEFGHIJKLMNOPQRSTUVWXYZ"
MAX_SENTENCE_CHARS = 200

SHAPE_PARAMS = ("open", "width", "round", "teeth_upper", "teeth_lower", "tongue", "tuck", "press")


@dataclass(frozen=True)
class MouthShape:
    """A viseme's mouth shape (all 0-1 but ``width``, a multiplier of the subject's mouth width).

    Attributes:
        open: Lip gap (1 = 16 source px, the jaw drops with it).
        width: Mouth width relative to the subject's rest width.
        round: Rounding: rounder opening, thicker (protruding) lips.
        teeth_upper: Visible height of the upper teeth (1 = 5.5 source px, within the gap).
        teeth_lower: Visible height of the lower teeth (1 = 4 source px, within the gap).
        tongue: Tongue tip raised towards the upper teeth (0 = low, mostly hidden).
        tuck: Lower lip drawn in under the upper teeth, which show over it.
        press: Lips pressed: thinner, paler, with a dark seam.
    """

    open: float
    width: float = 1.0
    round: float = 0.0
    teeth_upper: float = 0.0
    teeth_lower: float = 0.0
    tongue: float = 0.0
    tuck: float = 0.0
    press: float = 0.0

    def vector(self) -> np.ndarray:
        """The parameters in :data:`SHAPE_PARAMS` order."""
        return np.array([getattr(self, p) for p in SHAPE_PARAMS], dtype=np.float64)


# class -> (letters, shape); the order gives the class ids (rest = 0)
_CLASSES: dict[str, tuple[str, MouthShape]] = {
    "rest": (" ", MouthShape(open=0.10)),
    "bilabial": ("BMP", MouthShape(open=0.0, width=0.92, round=0.15, press=1.0)),
    "labiodental": ("FV", MouthShape(open=0.08, width=1.02, teeth_upper=1.0, tuck=1.0)),
    "rounded": ("OUW", MouthShape(open=0.40, width=0.62, round=1.0)),
    "protruded": ("JR", MouthShape(open=0.20, width=0.78, round=0.6, teeth_upper=0.6, teeth_lower=0.6)),
    "open": ("AH", MouthShape(open=1.0, width=1.06, round=0.15, teeth_upper=0.6, teeth_lower=0.25, tongue=0.15)),
    "mid": ("E", MouthShape(open=0.55, width=1.16, teeth_upper=0.9, teeth_lower=0.45, tongue=0.1)),
    "spread": ("IY", MouthShape(open=0.30, width=1.30, teeth_upper=1.0, teeth_lower=0.8)),
    "alveolar": ("DNT", MouthShape(open=0.32, width=1.06, teeth_upper=0.7, teeth_lower=0.25, tongue=0.9)),
    "lateral": ("L", MouthShape(open=0.62, width=1.0, teeth_upper=0.8, teeth_lower=0.15, tongue=1.0)),
    "sibilant": ("SZ", MouthShape(open=0.12, width=1.14, teeth_upper=1.0, teeth_lower=1.0)),
    "velar": ("CGKQX", MouthShape(open=0.45, width=0.98, round=0.1, teeth_upper=0.25, teeth_lower=0.1)),
}
VISEME_CLASSES: tuple[str, ...] = tuple(_CLASSES)
"""Class names in id order (``rest`` = 0)."""
VISEMES: dict[str, MouthShape] = {name: shape for name, (_, shape) in _CLASSES.items()}
"""Class name -> mouth shape."""
VISEME_TABLE: dict[str, str] = {ch: name for name, (letters, _) in _CLASSES.items() for ch in letters}
"""Character (``A``-``Z`` and space) -> viseme class name."""
VOWEL_CLASSES = frozenset({"rounded", "open", "mid", "spread"})
VOICED = frozenset("AEIOUYBDGJLMNRVWZ")
NOISY = frozenset("CFHJKPQSTVXZ")
VOWEL_ROW = {"A": 0, "H": 0, "E": 1, "I": 2, "Y": 2, "O": 3, "U": 4, "W": 4}  # rows of voice.VOWELS; 5 schwa


def viseme_ids(text: str) -> list[int]:
    """Class ids (indices of :data:`VISEME_CLASSES`) of each character of ``text``."""
    return [VISEME_CLASSES.index(VISEME_TABLE[ch]) for ch in text]


# ---------------------------------------------------------------------------------------------
# sentences

GRAMMAR: dict[str, tuple[str, ...]] = {
    "DET": tuple("THE A THIS THAT EVERY ONE SOME MY YOUR HIS HER OUR THEIR NO ANY".split()),
    "PRON": tuple("I YOU HE SHE WE THEY".split()),
    "NAME": tuple(
        "ANNA BOB CARL DIANA EMMA FRANK GRACE HENRY IVAN JULIA KEVIN LAURA MARTIN NORA OSCAR PAULA "
        "ROBERT SARAH THOMAS VICTOR".split()
    ),
    "ADJ": tuple(
        "BIG SMALL OLD NEW RED BLUE GREEN GREY WHITE BLACK LONG SHORT HAPPY SAD QUIET LOUD WARM COLD "
        "DARK BRIGHT HEAVY LIGHT FAST SLOW YOUNG EMPTY FULL CLEAN DIRTY SOFT HARD RICH POOR BUSY LAZY "
        "BRAVE CALM WILD GENTLE SHARP ROUND FLAT TALL NARROW WIDE STRONG WEAK SWEET BITTER FRESH TINY "
        "HUGE STRANGE FAMOUS SIMPLE CLEVER FUNNY PROUD SILENT GOLDEN".split()
    ),
    "NOUN": tuple(
        "DOG CAT BIRD HORSE FISH COW SHEEP MOUSE LION TIGER BEAR WOLF FOX RABBIT DUCK GOAT HOUSE ROOM "
        "DOOR WINDOW TABLE CHAIR BED LAMP BOOK LETTER PAPER PEN BOX BAG CUP PLATE BOWL SPOON KNIFE "
        "BOTTLE BASKET BALL GAME TOY CAR BUS TRAIN BOAT SHIP PLANE BIKE ROAD STREET BRIDGE RIVER LAKE "
        "SEA BEACH HILL MOUNTAIN FOREST TREE FLOWER GARDEN FIELD FARM TOWN CITY VILLAGE SCHOOL MARKET "
        "SHOP STATION CHURCH CASTLE TOWER WALL GATE KING QUEEN DOCTOR TEACHER FARMER SAILOR PILOT "
        "SINGER PAINTER DRIVER BAKER SOLDIER CHILD BABY FRIEND NEIGHBOUR STRANGER WOMAN MAN GIRL BOY "
        "MOTHER FATHER SISTER BROTHER APPLE BREAD CHEESE CAKE SOUP MILK WATER COFFEE TEA SONG STORY "
        "PICTURE MAP CLOCK WATCH KEY COAT HAT SHOE SHIRT DRESS RING PHONE CAMERA RADIO PIANO GUITAR "
        "DRUM BAT MAT PAN FAN VAN".split()
    ),
    "VERB": tuple(
        "SAW FOUND LIKED LOVED HATED WANTED NEEDED BOUGHT SOLD BROKE FIXED OPENED CLOSED CARRIED "
        "PUSHED PULLED PAINTED WASHED CLEANED COOKED ATE DRANK TOOK GAVE BROUGHT SENT MET HEARD HELPED "
        "FOLLOWED CALLED WATCHED VISITED LEFT KEPT HELD MOVED DROPPED CAUGHT THREW HID LOST CHOSE DREW "
        "WROTE READ FED TOUCHED KICKED CHASED ASKED TOLD THANKED MISSED REMEMBERED FORGOT ENJOYED "
        "BUILT FILLED EMPTIED SHOWED PASSED CROSSED LIFTED STOLE".split()
    ),
    "ADV": tuple(
        "QUICKLY SLOWLY QUIETLY LOUDLY GENTLY SUDDENLY CAREFULLY HAPPILY SADLY CALMLY BRAVELY SOFTLY "
        "NEATLY BARELY OFTEN NEVER ALWAYS SOMETIMES RARELY SURELY EASILY PROUDLY WARMLY BOLDLY "
        "SECRETLY".split()
    ),
    "PREP": tuple("IN ON UNDER NEAR BEHIND BESIDE ABOVE BELOW INTO FROM WITH WITHOUT ACROSS AFTER BEFORE".split()),
    "TIME": tuple("TODAY YESTERDAY TONIGHT AGAIN LATER EARLY THEN NOW SOON".split()),
    "AND": ("AND",),
}
"""Word classes of the built-in grammar (upper-case letters only)."""

TEMPLATES: tuple[tuple[str, ...], ...] = tuple(
    tuple(t.split())
    for t in (
        "DET ADJ NOUN VERB DET NOUN",
        "DET NOUN VERB DET ADJ NOUN",
        "PRON VERB DET NOUN",
        "NAME VERB DET NOUN PREP DET NOUN",
        "DET NOUN ADV VERB DET NOUN",
        "PRON ADV VERB NAME",
        "NAME VERB DET ADJ NOUN TIME",
        "PRON VERB DET NOUN TIME",
        "NAME AND NAME VERB DET NOUN",
        "DET ADJ NOUN VERB PREP DET NOUN",
        "PRON VERB NAME PREP DET NOUN",
        "TIME NAME VERB DET ADJ NOUN",
    )
)
"""Sentence templates over :data:`GRAMMAR` (one is drawn per sentence, then a word per slot)."""


def vocabulary() -> list[str]:
    """The distinct words of the built-in grammar, sorted."""
    return sorted({w for words in GRAMMAR.values() for w in words})


def sentence(rng: np.random.Generator) -> str:
    """Draw one sentence of the built-in grammar (a template, then a word per slot)."""
    template = TEMPLATES[int(rng.integers(len(TEMPLATES)))]
    return " ".join(GRAMMAR[slot][int(rng.integers(len(GRAMMAR[slot])))] for slot in template)


def read_sentences(path: str) -> list[str]:
    """Read one sentence per line from ``path``.

    Lower-case letters are upper-cased, leading/trailing spaces dropped and runs of spaces
    collapsed; everything else must be ``A``-``Z`` or a space.

    Raises:
        ValueError: The file cannot be read, holds no sentence, or has an empty line, a line longer
            than 200 characters or a character outside the alphabet (each named with file, line
            number and character; up to 10 listed).
    """
    try:
        with open(path, encoding="utf-8") as fh:
            lines = fh.read().splitlines()
    except OSError as exc:
        raise ValueError(f"{path}: cannot read the sentences file ({exc.strerror or exc})") from None
    except UnicodeDecodeError as exc:
        raise ValueError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    allowed = set(ALPHABET) | set(ALPHABET.lower())
    problems, out = [], []
    for number, raw in enumerate(lines, start=1):
        line = " ".join(w for w in raw.upper().split(" ") if w)
        col = next((i for i, ch in enumerate(raw, start=1) if ch not in allowed), 0)
        if not line:
            problems.append(f"{path} line {number}: empty line (one sentence per line)")
        elif col:
            bad = raw[col - 1]
            problems.append(
                f"{path} line {number}: unsupported character {bad!r} (U+{ord(bad):04X}) at column {col}; "
                "sentences use the letters A-Z and spaces"
            )
        elif len(line) > MAX_SENTENCE_CHARS:
            problems.append(f"{path} line {number}: {len(line)} characters, at most {MAX_SENTENCE_CHARS}")
        else:
            out.append(line)
    if not lines:
        problems.append(f"{path}: no sentences (the file is empty)")
    if problems:
        more = f"; ... and {len(problems) - 10} more" if len(problems) > 10 else ""
        raise ValueError("; ".join(problems[:10]) + more)
    return out


# ---------------------------------------------------------------------------------------------
# timing and the mouth-parameter track


@dataclass(frozen=True)
class Timing:
    """Frames of one utterance: character ``i`` of ``text`` spans ``starts[i] : starts[i] + lengths[i]``."""

    text: str
    starts: np.ndarray
    lengths: np.ndarray
    n_frames: int

    @property
    def middles(self) -> np.ndarray:
        """The frame of each character that shows its viseme exactly (``start + length // 2``)."""
        return self.starts + self.lengths // 2


def timing(text: str, rate: float, rng: np.random.Generator) -> Timing:
    """Random per-character durations (see the module docstring) with 4-8 rest frames at each end.

    Raises:
        ValueError: ``text`` is empty or holds a character outside :data:`ALPHABET`.
    """
    if not text or not set(text) <= set(ALPHABET):
        raise ValueError(f"text must be non-empty, letters A-Z and spaces, got {text!r}")
    base = np.array(
        [3.2 if VISEME_TABLE[c] in VOWEL_CLASSES else 2.4 if c == " " else 2.6 for c in text], dtype=float
    )
    lengths = np.maximum(2, np.round(base / rate * rng.lognormal(0.0, 0.3, len(text)))).astype(int)
    lead, trail = (int(x) for x in rng.integers(4, 9, size=2))
    starts = lead + np.concatenate([[0], np.cumsum(lengths)[:-1]]).astype(int)
    return Timing(text, starts, lengths, int(lead + lengths.sum() + trail))


def mouth_track(tm: Timing) -> np.ndarray:
    """Mouth parameters per frame (n_frames, 8) in :data:`SHAPE_PARAMS` order.

    Each character holds its shape around its middle frame ``m = start + length // 2`` (frame
    centres within ``(length - 2) / 4`` frames of ``m + 0.5``: the middle frame alone for 2-3
    frames, about half of them when longer), the rest (lead and trail) likewise; between holds the
    parameters move with a raised-cosine ease (co-articulation), so every character starts with
    at least one frame on the way from the previous shape.
    """
    lead, end = int(tm.starts[0]), int(tm.starts[-1] + tm.lengths[-1])
    seg_start = np.concatenate([[0], tm.starts, [end]]).astype(float)
    seg_len = np.concatenate([[lead], tm.lengths, [tm.n_frames - end]]).astype(float)
    targets = np.stack([VISEMES["rest"].vector()] + [VISEMES[VISEME_TABLE[c]].vector() for c in tm.text]
                       + [VISEMES["rest"].vector()])
    centre = seg_start + seg_len // 2 + 0.5
    half = np.maximum(seg_len - 2, 0) / 4
    knots = np.stack([centre - half, centre + half], axis=1).ravel()
    phase_at_knots = np.repeat(np.arange(len(targets), dtype=float), 2)
    phase = np.interp(np.arange(tm.n_frames) + 0.5, knots, phase_at_knots)
    i = np.minimum(np.floor(phase).astype(int), len(targets) - 1)
    ease = (0.5 - 0.5 * np.cos(np.pi * (phase - i)))[:, None]
    return targets[i] * (1 - ease) + targets[np.minimum(i + 1, len(targets) - 1)] * ease


# ---------------------------------------------------------------------------------------------
# subjects and rendering

LIP_W = 21.0  # rest half-width of the lips in source px (outer corners at x 203-245)
GAP_MAX = 16.0  # lip gap in source px at open = 1
LIP_T = (3.5, 4.5)  # upper / lower lip thickness in source px
INPAINT = (224.0, 146.5, 28.0, 12.5)  # ellipse (cx, cy, rx, ry) over the portrait's own mouth
PATCH = (-46, 46, -18, 46)  # painted window around the mouth: x0, x1, y0, y1 (source px, rel. MOUTH)
MOUTH_BOX = (-34, 34, -16, 22)  # where lips, teeth and tongue can reach (x0, x1, y0, y1, rel. MOUTH)
PAD_TOP = 48  # rows mirrored above the image so every scaled/rotated crop stays inside
LIP_RGB = np.array([198.0, 128.0, 126.0], np.float32)
PRESSED_RGB = np.array([222.0, 180.0, 165.0], np.float32)
CAVITY_RGB = np.array([58.0, 18.0, 24.0], np.float32)
TEETH_RGB = np.array([232.0, 226.0, 212.0], np.float32)
TONGUE_RGB = np.array([178.0, 88.0, 94.0], np.float32)
SEAM_RGB = np.array([96.0, 46.0, 50.0], np.float32)


@dataclass(frozen=True)
class Subject:
    """Per-subject appearance and speech (see :func:`random_subject`)."""

    scale: float  # face size in the frame relative to talking-face's crop
    shift: tuple[float, float]  # face position offset, in fractions of the frame side
    rotation_deg: float  # in-plane rotation of the face
    gain: tuple[float, float, float]  # colour gain
    light: tuple[float, float]  # directional lighting gradient (x, y) across the face
    mouth_width: float  # multiplier of the rest mouth width
    rate: float  # speaking rate multiplier (higher: fewer frames per character)
    motion_px: float  # head-motion amplitude (source px)
    motion_deg: float  # head-rotation amplitude (deg)
    voice: V.Voice

    def summary(self) -> dict[str, Any]:
        """Plain, rounded values for the card."""
        out = {k: v for k, v in asdict(self).items() if k != "voice"}
        out["f0_hz"] = self.voice.f0_base
        return {k: (np.round(v, 3).tolist() if isinstance(v, (tuple, float)) else v) for k, v in out.items()}


def random_subject(rng: np.random.Generator) -> Subject:
    """Draw a subject: scale 0.9-1.15, shift up to 6 % of the frame, rotation within 7 degrees,
    colour gain 0.85-1.1, lighting gradient 0.1-0.3, mouth width 0.85-1.15, rate 0.75-1.3."""
    angle, strength = rng.uniform(0, 2 * np.pi), rng.uniform(0.1, 0.3)
    return Subject(
        scale=round(float(rng.uniform(0.9, 1.15)), 4),
        shift=(round(float(rng.uniform(-0.06, 0.06)), 4), round(float(rng.uniform(-0.05, 0.05)), 4)),
        rotation_deg=round(float(rng.uniform(-7, 7)), 3),
        gain=tuple(round(float(g), 4) for g in rng.uniform(0.85, 1.1, 3)),
        light=(round(float(np.cos(angle) * strength), 4), round(float(np.sin(angle) * strength), 4)),
        mouth_width=round(float(rng.uniform(0.85, 1.15)), 4),
        rate=round(float(rng.uniform(0.75, 1.3)), 4),
        motion_px=round(float(rng.uniform(0.5, 2.5)), 3),
        motion_deg=round(float(rng.uniform(0.3, 1.5)), 3),
        voice=V.random_voice(rng),
    )


@lru_cache(maxsize=1)
def _mouthless() -> np.ndarray:
    """The portrait (float32, 0-255, PAD_TOP mirrored rows on top) with its own mouth inpainted."""
    from skimage.restoration import inpaint_biharmonic

    img = TF._astronaut().copy()
    cx, cy, rx, ry = INPAINT
    y0, y1, x0, x1 = int(cy - ry - 10), int(cy + ry + 10), int(cx - rx - 10), int(cx + rx + 10)
    yy, xx = np.mgrid[y0:y1, x0:x1]
    mask = ((xx - cx) / rx) ** 2 + ((yy - cy) / ry) ** 2 < 1
    img[y0:y1, x0:x1] = inpaint_biharmonic(img[y0:y1, x0:x1] / 255.0, mask, channel_axis=-1) * 255.0
    return np.concatenate([img[PAD_TOP:0:-1], img]).astype(np.float32)


def _lighting(subject: Subject, shape: tuple[int, int]) -> np.ndarray:
    """Multiplicative light (h, w, 3) over the padded portrait: colour gain times a gradient."""
    yy, xx = np.mgrid[0 : shape[0], 0 : shape[1]].astype(np.float32)
    gx, gy = subject.light
    ramp = 1 + gx * (xx - TF.FACE_CENTRE[0]) / 110.0 + gy * (yy - PAD_TOP - TF.FACE_CENTRE[1]) / 110.0
    return (np.clip(ramp, 0.5, 1.5)[..., None] * np.asarray(subject.gain, dtype=np.float32)).astype(np.float32)


def _band(y: np.ndarray, lo: np.ndarray, hi: np.ndarray, soft: float = 1.0) -> np.ndarray:
    """Anti-aliased coverage of lo < y < hi (ramps ``soft`` px wide)."""
    return np.clip(np.minimum(y - lo, hi - y) / soft + 0.5, 0.0, 1.0)


def _over(img: np.ndarray, alpha: np.ndarray, color: np.ndarray) -> None:
    img += alpha[..., None] * (color - img)


def paint_mouth(base: np.ndarray, params: np.ndarray, mouth_width: float) -> np.ndarray:
    """Paint mouths on the window ``base`` (h, w, 3) around :data:`talking_face.MOUTH`.

    Args:
        base: The mouthless face inside :data:`PATCH` (float32, 0-255).
        params: Mouth parameters (T, 8) in :data:`SHAPE_PARAMS` order.
        mouth_width: The subject's mouth-width multiplier (at most 1.15).

    Returns:
        (T, h, w, 3) float32.
    """
    f32 = np.float32
    t = {name: params[:, i].astype(f32)[:, None, None] for i, name in enumerate(SHAPE_PARAMS)}
    h, w = base.shape[:2]
    y = (np.arange(h, dtype=f32) + PATCH[2])[None, :, None]  # rows relative to the lip line
    x = (np.arange(w, dtype=f32) + PATCH[0])[None, None, :]
    half = f32(LIP_W * mouth_width) * t["width"]
    gap = f32(GAP_MAX) * t["open"]
    # the jaw drops with the gap: rows below the lip line are pulled from higher up
    drop = 0.65 * gap * np.clip(1 - (x / (1.6 * half)) ** 2, 0, 1)
    drop = drop * np.clip(y / 4.0, 0, 1) * np.clip((40.0 - y) / 30.0, 0, 1)
    src_y = np.clip(y - drop - PATCH[2], 0, h - 1)
    i0 = np.floor(src_y).astype(np.intp)
    frac = (src_y - i0)[..., None]
    cols = np.broadcast_to(np.arange(w), src_y.shape)
    img = base[i0, cols] * (1 - frac) + base[np.minimum(i0 + 1, h - 1), cols] * frac
    # everything else is painted inside the box the lips can reach
    r = slice(MOUTH_BOX[2] - PATCH[2], MOUTH_BOX[3] - PATCH[2])
    c = slice(MOUTH_BOX[0] - PATCH[0], MOUTH_BOX[1] - PATCH[0])
    view, y, x = img[:, r, c], y[:, r], x[:, :, c]
    xn = x / half
    across = np.clip(1 - xn**2, 0, 1)
    shape = across ** (1 - 0.5 * t["round"])
    top = -0.35 * gap * shape - 2.0 * t["tuck"] * np.sqrt(across)
    bottom = 0.65 * gap * shape
    inside_x = np.clip((1 - np.abs(xn)) * half + 0.5, 0, 1)
    # cavity, tongue, teeth
    cavity = _band(y, top, bottom) * inside_x
    depth = np.clip(1 - np.abs(xn), 0, 1)[..., None]
    _over(view, cavity, CAVITY_RGB * (1.15 - 0.3 * depth))
    # the tongue: low behind the lower teeth, or its tip raised just below the upper teeth
    tip_y = (1 - t["tongue"]) * (bottom + 0.1 * gap) + t["tongue"] * (top + 5.5 * t["teeth_upper"] + 0.3 * gap)
    tongue = np.clip(1 - (x / (0.55 * half)) ** 2 - ((y - tip_y) / (0.3 * gap + 1.0)) ** 2, 0, 1) ** 0.5
    _over(view, np.minimum(tongue, cavity), TONGUE_RGB)
    teeth_x = np.clip((0.8 - np.abs(xn)) * half + 0.5, 0, 1)
    lower_teeth = _band(y, bottom - 4.0 * t["teeth_lower"], bottom) * teeth_x
    _over(view, np.minimum(lower_teeth, cavity), TEETH_RGB * f32(0.88))
    upper_teeth = _band(y, top, top + 5.5 * t["teeth_upper"]) * teeth_x
    _over(view, np.minimum(upper_teeth, cavity), TEETH_RGB)
    # lips: thicker when rounded, thinner when pressed or stretched, paler when pressed
    thick = (1 + 0.5 * t["round"]) * (1 - 0.45 * t["press"]) * (1 - 0.8 * np.clip(t["width"] - 1, 0, 0.4))
    profile = (0.45 + 0.3 * t["round"]) + (0.55 - 0.3 * t["round"]) * np.sqrt(across)
    lip_rgb = LIP_RGB + 0.35 * t["press"][..., None] * (PRESSED_RGB - LIP_RGB)
    lower_edge = bottom + LIP_T[1] * thick * profile * (1 - 0.45 * t["tuck"])
    lower = _band(y, bottom, lower_edge, 1.5) * inside_x
    shine = np.clip(1 - np.abs(y - (bottom + 0.6 * (lower_edge - bottom))) / 2.0, 0, 1) * np.sqrt(across)
    _over(view, 0.9 * lower, lip_rgb * (1.04 + 0.06 * (1 + t["round"]) * shine)[..., None])
    upper = _band(y, top - LIP_T[0] * thick * profile, top, 1.5) * inside_x
    _over(view, 0.9 * upper, lip_rgb * f32(0.94))
    # labiodental: the upper teeth rest on the tucked lower lip
    _over(view, _band(y, top, top + 4.5 * t["tuck"]) * teeth_x * (t["tuck"] > 0), TEETH_RGB)
    # where the lips meet: a seam, darker when pressed
    mid = 0.5 * (top + bottom)
    seam = _band(y, mid - 0.6, mid + 0.6) * np.clip((0.95 - np.abs(xn)) * half, 0, 1)
    _over(view, seam * np.clip(1 - gap / 2.0, 0, 1) * (0.45 + 0.45 * t["press"]), SEAM_RGB)
    return img


def _warp_matrices(subject: Subject, head: np.ndarray, size: int) -> list[tuple[float, ...]]:
    """PIL affine coefficients (output px -> padded-source px) per frame."""
    k = TF.CROP / (size * subject.scale)  # source px per output px
    out = []
    for dx, dy, deg in head:
        th = np.deg2rad(subject.rotation_deg + deg)
        c, s = np.cos(th) * k, np.sin(th) * k
        cx = TF.FACE_CENTRE[0] + dx - subject.shift[0] * size * k
        cy = TF.FACE_CENTRE[1] + PAD_TOP + dy - subject.shift[1] * size * k
        out.append((c, -s, cx - (c - s) * size / 2, s, c, cy - (s + c) * size / 2))
    return out


@lru_cache(maxsize=4)
def _subject_canvas(subject: Subject, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """The subject's lit, anti-aliased face (uint8), the mouthless mouth window and its light, sigma."""
    from scipy.ndimage import gaussian_filter

    face = _mouthless()
    light = _lighting(subject, face.shape[:2])
    k = TF.CROP / (size * subject.scale)  # source px per output px
    sigma = float(0.5 * np.sqrt(max(k * k - 1.0, 0.0)))  # anti-alias before the downscaling warp
    canvas = (face * light).clip(0, 255)
    if sigma > 0:
        canvas = gaussian_filter(canvas, (sigma, sigma, 0))
    mx, my = round(TF.MOUTH[0]), round(TF.MOUTH[1]) + PAD_TOP
    win = (slice(my + PATCH[2], my + PATCH[3]), slice(mx + PATCH[0], mx + PATCH[1]))
    return (canvas + 0.5).astype(np.uint8), face[win], light[win], sigma


def render_mouth_frames(
    params: np.ndarray, subject: Subject, head: np.ndarray, size: int, chunk: int = 128
) -> np.ndarray:
    """Frames (T, size, size, 3) uint8 of the subject's face with the mouth of ``params`` (T, 8).

    ``head`` (T, 3) adds per-frame motion (dx px, dy px, degrees) to the subject's pose.
    """
    from PIL import Image
    from scipy.ndimage import gaussian_filter

    pixels, base, win_light, sigma = _subject_canvas(subject, size)
    canvas = Image.fromarray(pixels)  # a copy: the mouth window is pasted into it frame by frame
    mx, my = round(TF.MOUTH[0]), round(TF.MOUTH[1]) + PAD_TOP
    pad = int(np.ceil(3 * sigma))  # the blurred window's border rows are dropped
    inner = (slice(None), slice(pad, base.shape[0] - pad), slice(pad, base.shape[1] - pad))
    corner = (mx + PATCH[0] + pad, my + PATCH[2] + pad)
    matrices = _warp_matrices(subject, head, size)
    # held visemes repeat their parameters: paint each distinct mouth once
    shapes, which = np.unique(np.asarray(params, dtype=np.float64), axis=0, return_inverse=True)
    patches = []
    for c0 in range(0, len(shapes), chunk):
        painted = paint_mouth(base, shapes[c0 : c0 + chunk], subject.mouth_width) * win_light
        if sigma > 0:
            painted = gaussian_filter(painted, (0, sigma, sigma, 0))
        patches += [Image.fromarray(p) for p in (painted[inner].clip(0, 255) + 0.5).astype(np.uint8)]
    frames = np.empty((len(params), size, size, 3), np.uint8)
    for i, (j, matrix) in enumerate(zip(np.ravel(which), matrices, strict=True)):
        canvas.paste(patches[j], corner)
        frames[i] = np.asarray(canvas.transform((size, size), Image.AFFINE, matrix, Image.BILINEAR))
    return frames


# ---------------------------------------------------------------------------------------------
# audio


def speech_plan(tm: Timing, params: np.ndarray, voice: V.Voice, rng: np.random.Generator) -> V.Plan:
    """Control tracks (100 Hz) of the utterance for :func:`voice.render`, driven by its timing."""
    per = V.CTRL_HZ // FPS
    letter = np.full(tm.n_frames, " ")
    for ch, s, n in zip(tm.text, tm.starts, tm.lengths, strict=True):
        letter[s : s + n] = ch
    letter = np.repeat(letter, per)
    n = len(letter)
    voiced = np.isin(letter, list(VOICED))
    opening = np.repeat(params[:, SHAPE_PARAMS.index("open")], per)
    amp = V.smooth(voiced * (0.35 + 0.9 * opening), 3)
    noise = V.smooth(np.isin(letter, list(NOISY)) * 0.3, 3)
    rows = np.array([VOWEL_ROW.get(c, 5) for c in letter])
    formants = np.stack([V.smooth(V.VOWELS[rows, i] * voice.tract_scale, 7) for i in range(4)], axis=1)
    t = np.arange(n) / n
    st = -2.0 * t + 0.6 * V.smooth_noise(rng, n, 60)
    f0 = np.clip(voice.f0_base * 2 ** (st / 12), 50, 550)
    speech = (float(tm.starts[0]) / FPS, float(tm.starts[-1] + tm.lengths[-1]) / FPS)
    return V.Plan(f0, voiced, amp, noise, np.full(n, 0.4), formants, [speech], [])


# ---------------------------------------------------------------------------------------------
# the corpus


class VisemesOptions(StrictModel):
    """Options of ``visemes``: frame size and an optional sentences file."""

    size: int = Field(128, ge=64, le=512, description="frame side in pixels (even)")
    sentences: str | None = Field(
        None, description="text file with one sentence per line (A-Z and spaces); default: the built-in grammar"
    )

    @field_validator("size")
    @classmethod
    def _even(cls, value: int) -> int:
        return even_frame_size(value)

    @field_validator("sentences")
    @classmethod
    def _readable(cls, value: str | None) -> str | None:
        if value is not None:
            read_sentences(value)  # every problem of the file, named by line and character
            return os.path.abspath(value)
        return value


def _txt(tm: Timing) -> str:
    """LRS3-style transcript: ``Text:``, ``Conf:`` and word timings (seconds)."""
    words, start = [], 0
    for word in tm.text.split(" "):
        first, last = start, start + len(word) - 1
        a = tm.starts[first] / FPS
        b = (tm.starts[last] + tm.lengths[last]) / FPS
        words.append((word, float(a), float(b)))
        start += len(word) + 1
    return TF._txt(tm.text, words)


def planted(req: SynthRequest, opts: VisemesOptions, subjects: list[Subject], sentences: str) -> dict[str, Any]:
    """The card's ``planted:`` mapping."""
    words = vocabulary()
    by_visemes: dict[tuple[int, ...], int] = {}
    for word in words:
        key = tuple(viseme_ids(word))
        by_visemes[key] = by_visemes.get(key, 0) + 1
    return {
        **req.planted_base(),
        "size_px": opts.size,
        "fps": FPS,
        "audio_sample_rate": V.SR,
        "face": "skimage.data.astronaut() (a real portrait, as talking-face); its mouth inpainted and a "
        "parametric mouth painted per frame",
        "viseme_table": dict(sorted(VISEME_TABLE.items())),
        "viseme_classes": {name: letters for name, (letters, _) in _CLASSES.items()},
        "viseme_shapes": {name: dict(zip(SHAPE_PARAMS, shape.vector().tolist(), strict=True))
                          for name, shape in VISEMES.items()},
        "shape_params": "open: lip gap (1 = 16 source px, jaw drops with it); width: x the subject's mouth "
        "width; round: rounder opening, thicker lips; teeth_upper / teeth_lower: visible teeth (1 = 5.5 / "
        "4 px); tongue: tip raised; tuck: lower lip under the upper teeth; press: lips pressed (thin, pale, "
        "dark seam)",
        "durations": "per character max(2, round(base / rate * lognormal(0, 0.3))) frames; base 3.2 "
        "(vowel classes), 2.4 (space), 2.6 (other); rate = subject rate * U(0.9, 1.1) per utterance; "
        "4-8 rest frames at each end",
        "coarticulation": "each character holds its shape around its middle frame (start + length // 2 "
        "exactly; frame centres within (length - 2) / 4 frames of it); raised-cosine transitions between "
        "holds, at least one in-between frame at the start of every character",
        "audio": "source-filter voice (per subject) following the timing: voiced letters "
        + "".join(sorted(VOICED)) + ", loudness from the lip gap, noise on " + "".join(sorted(NOISY))
        + ", vowel formants on A E H I O U W Y",
        "sentences": sentences,
        "vocabulary_size": len(words),
        "homophene_groups": sum(1 for c in by_visemes.values() if c > 1),
        "words_sharing_visemes": sum(c for c in by_visemes.values() if c > 1),
        "subject_params": {subject_id(s): subj.summary() for s, subj in enumerate(subjects)},
        "shuffled_control": "with relation=shuffled each clip's .txt holds another clip's transcript (one "
        "random cycle over all clips); video and audio stay the clip's own",
    }


def speaker_split(subjects: int) -> dict[str, list[str]] | None:
    """Speaker-disjoint split (None below 3 subjects): the last sixth tests, a twelfth before it validates."""
    if subjects < 3:
        return None
    n_test, n_val = max(1, round(subjects / 6)), max(1, round(subjects / 12))
    names = [subject_id(s) for s in range(subjects)]
    n_train = subjects - n_test - n_val
    return {"train": names[:n_train], "val": names[n_train : n_train + n_val], "test": names[n_train + n_val :]}


def _plans(
    req: SynthRequest, given: list[str] | None
) -> tuple[list[Subject], list[tuple[int, int, Timing, np.random.Generator]]]:
    """Subjects and, per clip, (subject index, item index, timing, its random stream to go on with)."""
    subjects = [random_subject(rng_for(req, s, 0)) for s in range(req.subjects)]
    clips = []
    for s, subj in enumerate(subjects):
        for k in range(req.items):
            rng = rng_for(req, s, 1, k)
            text = given[(s * req.items + k) % len(given)] if given else sentence(rng)
            clips.append((s, k, timing(text, subj.rate * rng.uniform(0.9, 1.1), rng), rng))
    return subjects, clips


def clip_timings(req: SynthRequest, opts: VisemesOptions) -> dict[str, Timing]:
    """The planted timing of every clip (``<subject>/<clip>`` -> :class:`Timing`), without rendering.

    The ground truth behind a corpus written with the same request and options: the spoken text
    (with ``relation: shuffled`` the ``.txt`` holds another clip's) and each character's frames;
    :func:`mouth_track` of a timing gives the clip's mouth parameters.
    """
    given = read_sentences(opts.sentences) if opts.sentences else None
    return {f"{subject_id(s)}/{k + 1:05d}": tm for s, k, tm, _ in _plans(req, given)[1]}


def write(req: SynthRequest, opts: VisemesOptions, progress: Progress = None) -> dict[str, object]:
    """Generate the corpus under ``req.out``; return the dataset card (a dict)."""
    given = read_sentences(opts.sentences) if opts.sentences else None
    subjects, clips = _plans(req, given)
    texts = [_txt(tm) for _, _, tm, _ in clips]
    if req.shuffled:
        partner, _ = shuffle_plan(len(clips), rng_for(req, 999_999))
        texts = [texts[p] for p in partner]
    for (s, k, tm, rng), txt in zip(clips, texts, strict=True):
        subj = subjects[s]
        params = mouth_track(tm)
        head = TF._head(rng, tm.n_frames, subj.motion_px, subj.motion_deg)
        audio = V.render(speech_plan(tm, params, subj.voice, rng), subj.voice, rng)
        frames = render_mouth_frames(params, subj, head, opts.size)
        stem = req.path(subject_id(s), f"{k + 1:05d}")
        write_mp4(f"{stem}.mp4", frames, fps=FPS, audio=audio, sample_rate=V.SR)
        with open(f"{stem}.txt", "w", encoding="utf-8") as fh:
            fh.write(txt)
        if progress:
            progress(1)
    if given is None:
        source = f"built-in grammar: {len(TEMPLATES)} templates over {len(vocabulary())} words"
    else:
        with open(opts.sentences, "rb") as fh:  # type: ignore[arg-type]
            digest = hashlib.sha256(fh.read()).hexdigest()[:16]
        source = (f"file {os.path.basename(opts.sentences)} (sha256 {digest}..., {len(given)} sentences); "
                  "clip j = subject * items + item says line j mod N")
    description = "synthetic lip reading: sentences as viseme mouth shapes on a real face, 16 kHz audio"
    card = req.card_base("lrs", description, {"splits": []})
    card["planted"] = planted(req, opts, subjects, source)
    split = speaker_split(req.subjects)
    if split is not None:
        card["splits"] = {"speakers": split}
    return card
