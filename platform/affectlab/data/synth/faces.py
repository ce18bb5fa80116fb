"""``faces``: rendered face videos whose geometry follows planted AU activations (csv adapter).

Per subject an identity (:func:`~affectlab.data.synth.face_render.random_identity`); per video
an emotion (balanced over the six below), its FACS prototype AUs at random apex intensities under
a neutral -> onset -> apex -> offset envelope, occasional low non-prototype AU blips, blinks and
small head motion. Valence and arousal per frame are a fixed function of the AUs plus noise.
Layout::

    manifest.csv                        sample_id, subject, video, labels, emotion, valence, arousal...
    video/<subject>/<sample_id>.mp4     H.264, 25 fps, SIZE x SIZE
    labels/<subject>/<sample_id>.csv    frame, AU01..AU25 (0-5), valence, arousal (-1..1)
"""

from __future__ import annotations

from typing import Any, Literal

import numpy as np
from pydantic import Field

from affectlab.config import StrictModel
from affectlab.data.synth.base import (
    Progress,
    SynthRequest,
    fit_length,
    rng_for,
    shuffle_plan,
    subject_id,
    write_csv,
    write_manifest,
)
from affectlab.data.synth.face_render import FACE_AUS, Identity, random_identity, render_faces
from affectlab.data.synth.video import write_mp4

__all__ = ["EMOTIONS", "FPS", "FacesOptions", "PROTOTYPES", "clip_aus", "valence_arousal", "write"]

FPS = 25
PROTOTYPES: dict[str, dict[str, float]] = {
    "neutral": {},
    "happiness": {"AU06": 1.0, "AU12": 1.0},
    "sadness": {"AU01": 1.0, "AU04": 1.0, "AU15": 1.0},
    "surprise": {"AU01": 1.0, "AU02": 1.0, "AU25": 1.0},
    "anger": {"AU04": 1.0, "AU07": 1.0},
    "fear": {"AU01": 1.0, "AU02": 1.0, "AU04": 0.8, "AU20": 1.0, "AU25": 0.5},
}
EMOTIONS = tuple(PROTOTYPES)
VALENCE_W = {"AU12": 0.3, "AU06": 0.15, "AU15": -0.3, "AU04": -0.15, "AU20": -0.1, "AU07": -0.08}
AROUSAL_W = {
    "AU01": 0.03, "AU02": 0.15, "AU04": 0.06, "AU06": 0.04, "AU07": 0.12, "AU12": 0.08,
    "AU15": -0.25, "AU20": 0.12, "AU25": 0.12,
}  # circumplex-like: surprise/fear/anger high, happiness mild, sadness low
AROUSAL_BIAS = -0.2
VA_NOISE = 0.05


class FacesOptions(StrictModel):
    """Options of ``faces``."""

    size: Literal[28, 64, 112] = Field(64, description="frame side in pixels")
    frames: int = Field(50, ge=10, le=500, description="frames per video (25 fps)")


def _envelope(rng: np.random.Generator, n: int) -> np.ndarray:
    """Neutral -> onset -> apex -> offset (raised-cosine ramps), values in [0, 1]."""
    t = np.arange(n) / n
    on = rng.uniform(0.05, 0.25)
    rise = rng.uniform(0.1, 0.25)
    hold = rng.uniform(0.15, 0.35)
    fall = rng.uniform(0.1, 0.25)
    up = 0.5 - 0.5 * np.cos(np.pi * np.clip((t - on) / rise, 0, 1))
    down = 0.5 + 0.5 * np.cos(np.pi * np.clip((t - on - rise - hold) / fall, 0, 1))
    return up * down


def clip_aus(rng: np.random.Generator, emotion: str, n: int) -> np.ndarray:
    """AU intensities (n, 9) for one clip of ``emotion``."""
    env = _envelope(rng, n)
    aus = np.zeros((n, len(FACE_AUS)))
    for au, weight in PROTOTYPES[emotion].items():
        aus[:, FACE_AUS.index(au)] = weight * rng.uniform(2.5, 5.0) * env
    for i in range(len(FACE_AUS)):
        if aus[:, i].max() == 0 and rng.random() < 0.15:  # a brief low blip of a non-prototype AU
            centre, width = rng.uniform(0.1, 0.9) * n, rng.uniform(3, 8)
            aus[:, i] = rng.uniform(0.5, 1.2) * np.clip(1 - ((np.arange(n) - centre) / width) ** 2, 0, None)
    active = aus > 0
    aus = np.where(active, np.clip(aus + rng.normal(0, 0.05, aus.shape), 0.01, 5.0), 0.0)
    return np.round(aus, 2)


def valence_arousal(rng: np.random.Generator, aus: np.ndarray) -> np.ndarray:
    """Per-frame (valence, arousal) in [-1, 1] from AUs (n, 9): tanh of a weighted sum, + noise."""
    def weighted(weights: dict[str, float]) -> np.ndarray:
        return sum(w * aus[:, FACE_AUS.index(au)] for au, w in weights.items())

    val = np.tanh(weighted(VALENCE_W))
    aro = np.tanh(weighted(AROUSAL_W) + AROUSAL_BIAS)
    noise = rng.normal(0, VA_NOISE, (len(aus), 2))
    return np.round(np.clip(np.stack([val, aro], axis=1) + noise, -1, 1), 3)


def _head_motion(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    t = np.arange(n) / FPS
    phase, freq = rng.uniform(0, 2 * np.pi, 2), rng.uniform(0.2, 0.6, 2)
    head = 0.03 * np.sin(2 * np.pi * freq * t[:, None] + phase)
    blink = np.ones(n)
    for start in rng.integers(0, n, size=rng.poisson(n / FPS * 0.3)):
        blink[start : start + 3] = np.array([0.4, 0.05, 0.4])[: len(blink[start : start + 3])]
    return head, blink


def planted(req: SynthRequest, opts: FacesOptions) -> dict[str, object]:
    """The card's ``planted:`` mapping."""
    return {
        **req.planted_base(),
        "size_px": opts.size,
        "frames_per_video": opts.frames,
        "fps": FPS,
        "emotions": "balanced over " + ", ".join(EMOTIONS) + " (rotated per subject)",
        "prototypes": {e: sorted(p) for e, p in PROTOTYPES.items()},
        "au_rule": "prototype AU = weight * U(2.5, 5) * envelope (neutral, onset, apex hold, offset) "
        "+ N(0, 0.05) while active; 15% chance per other AU of a low blip (0.5-1.2)",
        "prototype_weights": PROTOTYPES,
        "geometry": "AU01 inner brows up, AU02 outer brows up, AU04 brows down and together, "
        "AU06 cheeks up and eyes narrower, AU07 lids tighter, AU12 lip corners up, AU15 down, "
        "AU20 lips stretched, AU25 lips parted",
        "valence": {"rule": "tanh(sum w*AU) + N(0, 0.05), clipped to [-1, 1]", "weights": VALENCE_W},
        "arousal": {"rule": "tanh(sum w*AU + bias) + N(0, 0.05)", "weights": AROUSAL_W, "bias": AROUSAL_BIAS},
        "clip_labels": "emotion = prototype; valence/arousal = mean over the frames at >= 90% of the apex",
        "nuisance": "identity (face shape, skin tone, hair, lighting, background), blinks, head motion",
        "shuffled_control": "with relation=shuffled each video gets the clip labels of another video and its "
        "frame labels rotated circularly by a random offset",
    }


def _video(req: SynthRequest, opts: FacesOptions, s: int, k: int, ident: Identity) -> dict[str, Any]:
    rng = rng_for(req, s, 1, k)
    emotion = EMOTIONS[(k + s) % len(EMOTIONS)]
    aus = clip_aus(rng, emotion, opts.frames)
    va = valence_arousal(rng, aus)
    head, blink = _head_motion(rng, opts.frames)
    sid, subj = f"{subject_id(s)}_v{k + 1:03d}", subject_id(s)
    frames = render_faces(ident, aus, opts.size, head, blink)
    write_mp4(req.path("video", subj, f"{sid}.mp4"), frames, fps=FPS)
    strength = aus.max(axis=1)
    apex = strength >= 0.9 * strength.max() if strength.max() > 0 else np.ones(len(aus), bool)
    clip_va = va[apex].mean(axis=0)
    return {"sample_id": sid, "subject": subj, "emotion": emotion, "aus": aus, "va": va, "clip_va": clip_va}


def write(req: SynthRequest, opts: FacesOptions, progress: Progress = None) -> dict[str, object]:
    """Generate the corpus under ``req.out``; return the dataset card (a dict)."""
    videos = []
    for s in range(req.subjects):
        ident = random_identity(rng_for(req, s, 0))
        for k in range(req.items):
            videos.append(_video(req, opts, s, k, ident))
            if progress:
                progress(1)
    labels = [(v["aus"], v["va"], v["emotion"], v["clip_va"]) for v in videos]
    offsets = np.zeros(len(videos), dtype=int)
    if req.shuffled:
        partner, offsets = shuffle_plan(len(videos), rng_for(req, 999_999))
        labels = [labels[p] for p in partner]
    header = ["frame", *FACE_AUS, "valence", "arousal"]
    formats = ["%d"] + ["%.2f"] * len(FACE_AUS) + ["%.3f"] * 2
    rows = []
    for v, (aus, va, emotion, clip_va), off in zip(videos, labels, offsets, strict=True):
        sid, subj = v["sample_id"], v["subject"]
        aus, va = fit_length(aus, opts.frames, off), fit_length(va, opts.frames, off)
        write_csv(req.path("labels", subj, f"{sid}.csv"), header, [np.arange(opts.frames), *aus.T, *va.T], formats)
        rows.append({
            "sample_id": sid, "subject": subj, "video": f"video/{subj}/{sid}.mp4",
            "labels": f"labels/{subj}/{sid}.csv", "emotion": emotion,
            "valence": f"{clip_va[0]:.3f}", "arousal": f"{clip_va[1]:.3f}",
        })
    write_manifest(req, rows)
    description = f"synthetic {opts.size}px face videos with AU, emotion and valence/arousal labels"
    card = req.card_base("csv", description, {"manifest": "manifest.csv"})
    card["frame_labels"] = {"rate_hz": FPS}
    card["planted"] = planted(req, opts)
    return card
