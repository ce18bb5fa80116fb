"""``talking-face``: a real face whose mouth opens with the speech it is heard saying (lrs adapter).

Frames show ``skimage.data.astronaut()`` (Eileen Collins, a real portrait shipped with
scikit-image) cropped around the face, with small head motion (shift and rotation) and a jaw
that drops with the loudness of the 16 kHz source-filter speech on the audio track
(:mod:`affectlab.data.synth.voice`). The mouth was located once with dlib's 68-point predictor
on the 512 x 512 image (inner lips x 204-243, y 141-151) and is hard-coded here.
Layout (LRS3-style)::

    <subject>/<clip>.mp4    H.264 SIZE x SIZE at 25 fps + AAC 16 kHz mono
    <subject>/<clip>.txt    "Text:  WORDS", "Conf:  4", then word timings
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import numpy as np
from pydantic import Field, field_validator

from affectlab.data.synth import voice as V
from affectlab.data.synth.base import (
    DurationOptions,
    Progress,
    SynthRequest,
    fit_length,
    rng_for,
    shuffle_plan,
    subject_id,
)
from affectlab.data.synth.video import even_frame_size, write_mp4

__all__ = ["FPS", "TalkingFaceOptions", "mouth_openness", "render_frames", "write"]

FPS = 25
MOUTH = (223.5, 147.0)  # (x, y) between the lips in the 512 x 512 astronaut image
MOUTH_HALF_W = 19.0
MAX_DROP = 14.0  # jaw drop in source pixels at full openness
FACE_CENTRE = (222.0, 128.0)
CROP = 224.0  # side of the source square shown in a frame
MARGIN = 140.0  # half side of the source region that any shifted/rotated crop stays within
WORDS = {
    1: "THE A AND TO OF IN IT IS YOU THAT WE WAS FOR ON ARE WITH THEY BE AT ONE HAVE THIS FROM "
    "BY HOT WORD BUT WHAT SOME CAN OUT TIME SAID NOW LOOK GOOD DAY HERE THINK KNOW".split(),
    2: "PEOPLE WATER NUMBER OTHER ABOUT BEFORE AFTER LITTLE VERY OVER EVERY HAPPY SYSTEM MOMENT "
    "REALLY PERHAPS AGAIN ALWAYS MAYBE ROCKET NOTHING MINUTE".split(),
    3: "ANOTHER EVERYONE IMPORTANT SOMEBODY TOGETHER BEAUTIFUL FAMILY ANYTHING POSSIBLE "
    "REMEMBER UNDERSTAND EXPERIMENT".split(),
}


class TalkingFaceOptions(DurationOptions):
    """Options of ``talking-face``: frame size and clip duration range (1.5-3 s)."""

    size: int = Field(256, ge=64, le=512, description="frame side in pixels (even)")
    min_duration_s: float = Field(1.5, ge=0.5, le=30, description="shortest clip")
    max_duration_s: float = Field(3.0, ge=0.5, le=30, description="longest clip")

    @field_validator("size")
    @classmethod
    def _even(cls, value: int) -> int:
        return even_frame_size(value)


@lru_cache(maxsize=1)
def _astronaut() -> np.ndarray:
    from skimage import data

    return data.astronaut().astype(np.float32)  # (512, 512, 3)


def mouth_openness(plan: V.Plan, n_frames: int) -> np.ndarray:
    """Jaw opening per video frame (0-1): the loudness envelope, 80 ms smoothing, saturating."""
    loud = V.smooth(plan.amp, 8)
    per_frame = loud[: n_frames * (V.CTRL_HZ // FPS)].reshape(n_frames, -1).mean(axis=1)
    return np.round(np.clip(per_frame / 1.3, 0, 1), 3)


def _open_mouth(img: np.ndarray, openness: float, mouth: tuple[float, float]) -> None:
    """Drop the jaw below the lip line at ``mouth`` by ``openness * MAX_DROP`` px (in place)."""
    from scipy.ndimage import map_coordinates

    if openness <= 0.01:
        return
    cx, cy = mouth
    y0, y1, x0, x1 = int(cy) - 4, int(cy) + 60, int(cx - 2 * MOUTH_HALF_W), int(cx + 2 * MOUTH_HALF_W)
    yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float32)
    across = np.clip(1 - ((xx - cx) / (1.15 * MOUTH_HALF_W)) ** 2, 0, 1)
    along = np.clip((yy - cy) / 3.0, 0, 1) * np.clip((y1 - yy) / 35.0, 0, 1)
    drop = openness * MAX_DROP * across * along
    src = img.astype(np.float32)
    coords = [yy - drop, xx]
    patch = np.stack([map_coordinates(src[..., c], coords, order=1, mode="nearest") for c in range(3)], -1)
    gap = openness * MAX_DROP * across  # the lips part by this much at each column
    depth = yy - cy
    alpha = (np.clip(np.minimum(depth + 0.5, gap - depth), 0, 1) * np.clip(gap / 2.0, 0, 1))[..., None]
    shade = np.array([70.0, 28.0, 32.0]) * (0.6 + 0.4 * np.clip(1 - depth / (gap + 1e-3), 0, 1))[..., None]
    img[y0:y1, x0:x1] = np.clip(patch * (1 - alpha) + alpha * shade + 0.5, 0, 255).astype(np.uint8)


def render_frames(openness: np.ndarray, head: np.ndarray, size: int, gain: np.ndarray) -> np.ndarray:
    """Frames (T, size, size, 3) uint8: jaw per ``openness``, pose per ``head`` rows (dx, dy, deg)."""
    from PIL import Image

    # work on a region around the face that covers every small shift/rotation of the crop
    x0, y0 = int(FACE_CENTRE[0] - MARGIN), max(int(FACE_CENTRE[1] - MARGIN), 0)
    region = _astronaut()[y0 : int(FACE_CENTRE[1] + MARGIN), x0 : int(FACE_CENTRE[0] + MARGIN)]
    base = (np.clip(region * gain, 0, 255) + 0.5).astype(np.uint8)
    mouth = (MOUTH[0] - x0, MOUTH[1] - y0)
    frames = np.empty((len(openness), size, size, 3), np.uint8)
    scale = CROP / size
    for i, (o, (dx, dy, deg)) in enumerate(zip(openness, head, strict=True)):
        img = base.copy()
        _open_mouth(img, float(o), mouth)
        th = np.deg2rad(deg)
        c, s = np.cos(th) * scale, np.sin(th) * scale
        ox = FACE_CENTRE[0] - x0 + dx - (c * size / 2 - s * size / 2)
        oy = FACE_CENTRE[1] - y0 + dy - (s * size / 2 + c * size / 2)
        affine = (c, -s, ox, s, c, oy)  # output (x, y) -> source (x, y)
        frames[i] = np.asarray(Image.fromarray(img).transform((size, size), Image.AFFINE, affine, Image.BILINEAR))
    return frames


def _head(rng: np.random.Generator, n: int, amp_px: float, amp_deg: float) -> np.ndarray:
    t = np.arange(n) / FPS
    phases, freqs = rng.uniform(0, 2 * np.pi, 3), rng.uniform(0.15, 0.5, 3)
    waves = np.sin(2 * np.pi * freqs * t[:, None] + phases)
    return waves * np.array([amp_px, amp_px * 0.6, amp_deg])


def _transcript(rng: np.random.Generator, plan: V.Plan) -> tuple[str, list[tuple[str, float, float]]]:
    """Group syllables into words of 1-3 syllables; pick each word by its syllable count."""
    words, i, syl = [], 0, plan.syllables
    while i < len(syl):
        k = int(min(rng.choice([1, 1, 1, 2, 2, 3]), len(syl) - i))
        word = WORDS[k][rng.integers(len(WORDS[k]))]
        words.append((word, syl[i][0], syl[i + k - 1][1]))
        i += k
    return " ".join(w for w, _, _ in words), words


def _txt(text: str, words: list[tuple[str, float, float]]) -> str:
    lines = [f"Text:  {text}", "Conf:  4", "", "WORD START END ASDSCORE"]
    lines += [f"{w} {a:.2f} {b:.2f} 5.0" for w, a, b in words]
    return "\n".join(lines) + "\n"


def planted(req: SynthRequest, opts: TalkingFaceOptions) -> dict[str, object]:
    """The card's ``planted:`` mapping."""
    return {
        **req.planted_base(),
        "size_px": opts.size,
        "fps": FPS,
        "face": "skimage.data.astronaut() (a real portrait), crop 224 px around the face, resized",
        "mouth": {"x": MOUTH[0], "y": MOUTH[1], "located_with": "dlib 68-point predictor, hard-coded"},
        "mouth_rule": "jaw drop = openness * 14 source px; openness = clip(loudness (80 ms smoothing) / 1.3, "
        "0, 1), no lag; the gap between the lips is painted dark",
        "head_motion": "per subject amplitude 1-4 px shift and 0.5-2.5 deg rotation, slow sinusoids",
        "subjects": "same face; per subject a voice (base F0 80-250 Hz), colour gain and head-motion style",
        "transcript": "syllables grouped into words of 1-3 syllables drawn from a small vocabulary by "
        "syllable count (counts and timing match the audio; the words are not phonetically synthesized)",
        "shuffled_control": "with relation=shuffled the mouth follows another clip's loudness (rotated by a "
        "random offset, cropped/tiled) "
        "and the transcript is another clip's; the audio track stays the clip's own",
    }


def _clip(
    req: SynthRequest, opts: TalkingFaceOptions, s: int, k: int, subject: tuple[V.Voice, float, float, np.ndarray]
) -> dict[str, Any]:
    """One clip's audio, mouth drive, head motion and transcript (rendering waits for the pairing)."""
    voice, motion_px, motion_deg, gain = subject
    rng = rng_for(req, s, 1, k)
    dur = max(round(rng.uniform(opts.min_duration_s, opts.max_duration_s) * FPS), 1) / FPS
    plan = V.plan_utterance(rng, voice, dur)
    n = int(round(dur * FPS))
    text, words = _transcript(rng, plan)
    return {
        "subject": subject_id(s), "clip": f"{k + 1:05d}", "audio": V.render(plan, voice, rng),
        "open": mouth_openness(plan, n), "head": _head(rng, n, motion_px, motion_deg), "gain": gain,
        "txt": _txt(text, words),
    }


def write(req: SynthRequest, opts: TalkingFaceOptions, progress: Progress = None) -> dict[str, object]:
    """Generate the corpus under ``req.out``; return the dataset card (a dict)."""
    clips = []
    for s in range(req.subjects):
        srng = rng_for(req, s, 0)
        subject = (V.random_voice(srng), srng.uniform(1, 4), srng.uniform(0.5, 2.5), srng.uniform(0.9, 1.1, 3))
        clips += [_clip(req, opts, s, k, subject) for k in range(req.items)]
    drive = [(c["open"], c["txt"]) for c in clips]
    if req.shuffled:
        partner, offsets = shuffle_plan(len(clips), rng_for(req, 999_999))
        drive = [
            (fit_length(clips[p]["open"], len(c["open"]), off), clips[p]["txt"])
            for c, p, off in zip(clips, partner, offsets, strict=True)
        ]
    for c, (openness, txt) in zip(clips, drive, strict=True):
        frames = render_frames(openness, c["head"], opts.size, c["gain"])
        stem = req.path(c["subject"], c["clip"])
        write_mp4(f"{stem}.mp4", frames, fps=FPS, audio=c["audio"], sample_rate=V.SR)
        with open(f"{stem}.txt", "w", encoding="utf-8") as fh:
            fh.write(txt)
        if progress:
            progress(1)
    description = "synthetic talking face (real portrait) with speech audio and transcripts"
    card = req.card_base("lrs", description, {"splits": []})
    card["planted"] = planted(req, opts)
    return card
