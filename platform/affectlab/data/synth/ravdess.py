"""``ravdess``: emotional speech (and faces) named like RAVDESS, emotion planted in the prosody and AUs.

Files ``Actor_AA/MM-01-EE-II-SS-RR-AA.(wav|mp4)`` (modality 01 full audio-video, 02 video-only,
03 audio-only; vocal channel 01 speech; emotion 01-08, intensity 01/02, statement 01/02,
repetition 01/02, actor 01-24: odd male voices 85-150 Hz, even female 160-250 Hz).
Each emotion has a prosodic style (:data:`EMOTION_STYLES`: F0 level and range, speaking rate,
loudness, vocal effort); strong intensity scales the style's departure from neutral by 1.6.
Per actor the first ``items`` of the 60 RAVDESS combinations are generated, ordered so that small
``items`` still cover every emotion.

By default only the audio-only ``03-...wav`` files are written. With ``video: true`` every
(actor, combination) gets a ``01-...mp4`` (H.264 frames at ``fps`` covering the whole utterance +
the same speech as an AAC 16 kHz mono track) and, as ``modalities`` asks, a ``02-...mp4`` (the
same frames, no audio) and the ``03-...wav``. The face is one identity per actor
(:func:`~affectlab.data.synth.face_render.random_identity`) whose FACS prototype AUs
(:data:`FACE_PROTOTYPES`, the renderer's nine AUs only) follow a neutral -> onset -> apex -> offset
envelope over the utterance, with small head motion and blinks:

=========  ===========================================  ==========================================
emotion    prototype AUs (weight)                       looks
=========  ===========================================  ==========================================
neutral    none                                         resting face
calm       AU07 0.6, AU12 0.4                           faint smile, slightly narrowed lids
happy      AU06 1, AU12 1                               smile, raised cheeks, narrowed eyes
sad        AU01 1, AU04 0.6, AU15 1                     oblique brows (inner ends up), corners down
angry      AU04 1, AU07 1                               brows low and together, tight lids
fearful    AU01 1, AU02 1, AU04 0.8, AU20 1, AU25 0.5   raised flat brows, stretched parted lips
disgust    AU04 0.5, AU06 0.6, AU07 0.7, AU15 0.8,      lowered brows, squint, raised cheeks,
           AU25 0.35                                    corners down, lips slightly parted
surprised  AU01 1, AU02 1, AU25 1                       raised arched brows, mouth open
=========  ===========================================  ==========================================

An AU's apex is weight x U(2.4, 3.0) at normal intensity and x 1.6 more at strong (capped at 5).
With ``relation: shuffled`` each file's voice *and* face come from another file's
(emotion, intensity).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
from pydantic import Field, field_validator, model_validator

from affectlab.config import StrictModel
from affectlab.data.synth import voice as V
from affectlab.data.synth.base import Progress, SynthRequest, partner_indices, rng_for, write_wav
from affectlab.data.synth.face_render import FACE_AUS, Identity, random_identity, render_faces
from affectlab.data.synth.video import write_mp4

__all__ = [
    "COMBINATIONS",
    "EMOTION_STYLES",
    "FACE_PROTOTYPES",
    "MAX_ACTORS",
    "MODALITY_CODES",
    "RavdessSynthOptions",
    "expression_aus",
    "expression_envelope",
    "file_sources",
    "head_and_blinks",
    "seed_split",
    "style_for",
    "write",
]

EMOTIONS = ("neutral", "calm", "happy", "sad", "angry", "fearful", "disgust", "surprised")
# (F0 shift st, F0 range x, rate x, loudness dB, effort)
EMOTION_STYLES: dict[str, tuple[float, float, float, float, float]] = {
    "neutral": (0.0, 0.8, 1.0, 0.0, 0.35),
    "calm": (-1.0, 0.6, 0.88, -3.0, 0.25),
    "happy": (3.0, 1.4, 1.1, 3.0, 0.55),
    "sad": (-2.0, 0.45, 0.78, -5.0, 0.2),
    "angry": (2.0, 1.2, 1.15, 7.0, 0.85),
    "fearful": (5.0, 1.1, 1.25, 1.0, 0.6),
    "disgust": (-1.5, 0.9, 0.85, 1.0, 0.5),
    "surprised": (4.0, 1.8, 1.0, 3.0, 0.5),
}
# FACS prototypes on the renderer's AUs (weights; see the module docstring)
FACE_PROTOTYPES: dict[str, dict[str, float]] = {
    "neutral": {},
    "calm": {"AU07": 0.6, "AU12": 0.4},
    "happy": {"AU06": 1.0, "AU12": 1.0},
    "sad": {"AU01": 1.0, "AU04": 0.6, "AU15": 1.0},
    "angry": {"AU04": 1.0, "AU07": 1.0},
    "fearful": {"AU01": 1.0, "AU02": 1.0, "AU04": 0.8, "AU20": 1.0, "AU25": 0.5},
    "disgust": {"AU04": 0.5, "AU06": 0.6, "AU07": 0.7, "AU15": 0.8, "AU25": 0.35},
    "surprised": {"AU01": 1.0, "AU02": 1.0, "AU25": 1.0},
}
APEX = (2.4, 3.0)  # apex intensity (0-5) of a weight-1 AU at normal intensity
STRONG = 1.6
MAX_ACTORS = 24
SYLLABLES = 7  # both statements ("Kids are talking by the door", "Dogs are sitting by the door")
MODALITY_CODES = {"full-AV": 1, "video-only": 2, "audio-only": 3}
Modality = Literal["full-AV", "video-only", "audio-only"]
HEAD_AMPLITUDE = 0.025  # normalised units (the frame spans [-1, 1])
BLINKS_PER_S = 0.3


def _combinations() -> list[tuple[int, int, int, int]]:
    """The 60 (emotion, intensity, statement, repetition) codes of one actor, emotions innermost."""
    out = []
    for rep in (1, 2):
        for statement in (1, 2):
            for intensity in (1, 2):
                out += [(e, intensity, statement, rep) for e in range(1, 9) if not (e == 1 and intensity == 2)]
    return out


COMBINATIONS = _combinations()


class RavdessSynthOptions(StrictModel):
    """Options of ``ravdess``: audio-only by default; ``video: true`` adds rendered faces."""

    video: bool = Field(False, description="also render face videos (mp4); default full-AV only")
    modalities: list[Modality] | None = Field(
        None,
        description="RAVDESS modalities to write: full-AV (01 mp4 with audio), video-only (02 mp4), "
        "audio-only (03 wav); default ['full-AV'] with video, ['audio-only'] without",
    )
    size: int = Field(128, ge=64, le=512, description="frame side in pixels (even); only with video")
    fps: int = Field(25, ge=10, le=60, description="video frame rate; only with video")

    @field_validator("modalities", mode="before")
    @classmethod
    def _comma_list(cls, value: object) -> object:
        return [m.strip() for m in value.split(",") if m.strip()] if isinstance(value, str) else value

    @model_validator(mode="after")
    def _consistent(self) -> RavdessSynthOptions:
        problems = []
        if self.size % 2:
            problems.append(f"size must be even (H.264 4:2:0), got {self.size}")
        if not self.video:
            for name in sorted({"fps", "size"} & self.model_fields_set):
                problems.append(f"{name} applies only with video: true")
        if self.modalities is not None:
            if not self.modalities:
                problems.append(f"modalities must name at least one of {list(MODALITY_CODES)}")
            if len(set(self.modalities)) != len(self.modalities):
                problems.append(f"modalities lists a modality twice: {self.modalities}")
            visual = [m for m in self.modalities if m != "audio-only"]
            if visual and not self.video:
                problems.append(f"modalities {visual} need video: true (without video only 'audio-only' is written)")
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @property
    def written(self) -> tuple[str, ...]:
        """The modalities written, in RAVDESS code order."""
        chosen = self.modalities or (["full-AV"] if self.video else ["audio-only"])
        return tuple(m for m in MODALITY_CODES if m in chosen)

    @property
    def renders_faces(self) -> bool:
        """True when a written modality has frames (full-AV or video-only)."""
        return any(m != "audio-only" for m in self.written)


def style_for(emotion: str, strong: bool) -> V.Style:
    """The prosodic style of ``emotion`` (scaled away from neutral when ``strong``)."""
    base = np.array(EMOTION_STYLES["neutral"])
    values = np.array(EMOTION_STYLES[emotion])
    values = base + (values - base) * (STRONG if strong else 1.0)
    shift, f0_range, rate, loud, effort = values
    effort = float(np.clip(effort, 0, 1))
    return V.Style(f0_shift_st=shift, f0_range=f0_range, rate=rate, loudness_db=loud, effort=effort)


def expression_envelope(rng: np.random.Generator, n: int) -> np.ndarray:
    """Neutral -> onset -> apex -> offset over ``n`` frames (raised-cosine ramps), values in [0, 1].

    The apex holds for 40-55% of the clip, so most of the utterance shows the expression; the
    middle of every clip is at the apex (onset ends by 32%, offset starts after 52%).
    """
    t = (np.arange(n) + 0.5) / n
    on, rise = rng.uniform(0.02, 0.12), rng.uniform(0.1, 0.2)
    hold, fall = rng.uniform(0.4, 0.55), rng.uniform(0.1, 0.2)
    up = 0.5 - 0.5 * np.cos(np.pi * np.clip((t - on) / rise, 0, 1))
    down = 0.5 + 0.5 * np.cos(np.pi * np.clip((t - on - rise - hold) / fall, 0, 1))
    return up * down


def expression_aus(rng: np.random.Generator, emotion: str, strong: bool, n: int) -> np.ndarray:
    """AU intensities (n, 9) in ``FACE_AUS`` order for one utterance of ``emotion``.

    Each prototype AU peaks at weight x U(2.4, 3.0) (x 1.6 when ``strong``, capped at 5) under
    :func:`expression_envelope`, with N(0, 0.05) jitter while active.
    """
    if emotion not in FACE_PROTOTYPES:
        raise ValueError(f"unknown emotion {emotion!r}; expected one of {list(FACE_PROTOTYPES)}")
    env = expression_envelope(rng, n)
    aus = np.zeros((n, len(FACE_AUS)))
    gain = STRONG if strong else 1.0
    for au, weight in FACE_PROTOTYPES[emotion].items():
        apex = min(weight * rng.uniform(*APEX) * gain, 5.0)
        aus[:, FACE_AUS.index(au)] = apex * env
    active = aus > 0
    return np.where(active, np.clip(aus + rng.normal(0, 0.05, aus.shape), 0.0, 5.0), 0.0)


def head_and_blinks(rng: np.random.Generator, n: int, fps: int) -> tuple[np.ndarray, np.ndarray]:
    """Small head sway (n, 2) in normalised units and eye openness (n,) with ~0.3 blinks/s."""
    t = np.arange(n) / fps
    phase, freq = rng.uniform(0, 2 * np.pi, 2), rng.uniform(0.2, 0.6, 2)
    head = HEAD_AMPLITUDE * np.sin(2 * np.pi * freq * t[:, None] + phase)
    blink = np.ones(n)
    shape = np.array([0.4, 0.05, 0.4])  # 3 frames at 25 fps; stretched at higher rates
    length = max(3, round(3 * fps / 25))
    closing = np.interp(np.linspace(0, 2, length), [0, 1, 2], shape)
    for start in rng.integers(0, n, size=rng.poisson(n / fps * BLINKS_PER_S)):
        blink[start : start + length] = closing[: len(blink[start : start + length])]
    return head, blink


def check(req: SynthRequest) -> list[str]:
    """Limits of the RAVDESS naming scheme."""
    problems = []
    if req.subjects > MAX_ACTORS:
        problems.append(f"subjects: RAVDESS names at most {MAX_ACTORS} actors, got {req.subjects}")
    if req.items > len(COMBINATIONS):
        problems.append(f"items: an actor has at most {len(COMBINATIONS)} recordings, got {req.items}")
    return problems


def planted(req: SynthRequest, opts: RavdessSynthOptions) -> dict[str, object]:
    """The card's ``planted:`` mapping."""
    keys = ("f0_shift_st", "f0_range", "rate", "loudness_db", "effort")
    out: dict[str, object] = {
        **req.planted_base(),
        "modalities": list(opts.written),
        "emotion_styles": {e: dict(zip(keys, v, strict=True)) for e, v in EMOTION_STYLES.items()},
        "strong_intensity": f"departure from neutral x {STRONG}",
        "durations": "(0.9 s + 7 syllables at 4.5 * rate syllables/s) * U(0.92, 1.08)",
        "voices": "odd actors male (base F0 85-150 Hz), even actors female (160-250 Hz)",
        "statement_repetition": "not planted: statements and repetitions differ only by random draws",
    }
    if opts.renders_faces:
        out.update({
            "size_px": opts.size,
            "fps": opts.fps,
            "frames": "ceil(audio duration * fps): the frames cover the whole utterance",
            "faces": "one rendered identity per actor (face shape, skin tone, hair, lighting, background)",
            "face_prototypes": FACE_PROTOTYPES,
            "face_au_rule": f"prototype AU apex = weight * U{APEX} (x {STRONG} when strong, capped at 5) * "
            "envelope (neutral, onset 2-12%, rise 10-20%, apex hold 40-55%, offset 10-20% of the clip) "
            "+ N(0, 0.05) while active; other AUs 0",
            "geometry": "AU01 inner brows up, AU02 outer brows up, AU04 brows down and together, "
            "AU06 cheeks up and eyes narrower, AU07 lids tighter, AU12 lip corners up, AU15 down, "
            "AU20 lips stretched, AU25 lips parted",
            "face_nuisance": f"head sway (amplitude {HEAD_AMPLITUDE}, 0.2-0.6 Hz), blinks (~{BLINKS_PER_S}/s); "
            "the mouth does not move with the speech",
        })
    out["shuffled_control"] = (
        "with relation=shuffled each file's prosody (and face) comes from another file's "
        "(emotion, intensity) (a random cycle over all files), so its name no longer predicts them"
    )
    return out


def _file_name(modality: str, combination: tuple[int, int, int, int], actor: int) -> str:
    emotion, intensity, statement, rep = combination
    ext = "wav" if modality == "audio-only" else "mp4"
    code = MODALITY_CODES[modality]
    return f"{code:02d}-01-{emotion:02d}-{intensity:02d}-{statement:02d}-{rep:02d}-{actor:02d}.{ext}"


def _face_frames(
    req: SynthRequest, opts: RavdessSynthOptions, ident: Identity, s: int, k: int,
    planted_ei: tuple[int, int], n_samples: int,
) -> np.ndarray:
    """The frames of actor ``s``'s file ``k``, covering ``n_samples`` of audio."""
    rng = rng_for(req, s, 3, k)
    n_frames = -(-n_samples * opts.fps // V.SR)
    emotion, intensity = planted_ei
    aus = expression_aus(rng, EMOTIONS[emotion - 1], intensity == 2, n_frames)
    head, blink = head_and_blinks(rng, n_frames, opts.fps)
    return render_faces(ident, aus, opts.size, head, blink)


def _write_files(
    req: SynthRequest, opts: RavdessSynthOptions, s: int, k: int, audio: np.ndarray, frames: np.ndarray | None
) -> None:
    folder = f"Actor_{s + 1:02d}"
    for modality in opts.written:
        path = req.path(folder, _file_name(modality, COMBINATIONS[k], s + 1))
        if modality == "audio-only":
            write_wav(path, audio, V.SR)
        else:
            if frames is None:  # rendered whenever a written modality has frames: a programming error
                raise RuntimeError(f"{path}: modality {modality!r} needs rendered frames, none were rendered")
            track = audio if modality == "full-AV" else None
            write_mp4(path, frames, fps=opts.fps, audio=track, sample_rate=V.SR)


def file_sources(req: SynthRequest) -> list[tuple[int, int, tuple[int, int]]]:
    """Per (actor, combination): ``(s, k, (emotion, intensity))`` whose voice and face it shows.

    The codes are the file's own unless ``req.shuffled``: then they are another file's (one
    random cycle over all files), for voice and face alike.
    """
    files = [(s, k) for s in range(req.subjects) for k in range(req.items)]
    source = list(range(len(files)))
    if req.shuffled:
        source = [int(j) for j in partner_indices(len(files), rng_for(req, 999_999))]
    return [(s, k, COMBINATIONS[files[j][1]][:2]) for (s, k), j in zip(files, source, strict=True)]


def write(req: SynthRequest, opts: RavdessSynthOptions, progress: Progress = None) -> dict[str, object]:
    """Generate the corpus under ``req.out``; return the dataset card (a dict)."""
    voices, faces = {}, {}
    for s in range(req.subjects):
        male = (s + 1) % 2 == 1
        voices[s] = V.random_voice(rng_for(req, s, 0), (85.0, 150.0) if male else (160.0, 250.0))
        if opts.renders_faces:
            faces[s] = random_identity(rng_for(req, s, 2))
    for s, k, (emotion, intensity) in file_sources(req):
        style = style_for(EMOTIONS[emotion - 1], intensity == 2)
        rng = rng_for(req, s, 1, k)
        dur = (0.9 + SYLLABLES / (4.5 * style.rate)) * rng.uniform(0.92, 1.08)
        plan = V.plan_utterance(rng, voices[s], round(dur * 100) / 100, style)
        audio = V.render(plan, voices[s], rng)
        frames = None
        if opts.renders_faces:
            frames = _face_frames(req, opts, faces[s], s, k, (emotion, intensity), len(audio))
        _write_files(req, opts, s, k, audio, frames)
        if progress:
            progress(1)
    globs = (["**/*.mp4"] if opts.renders_faces else []) + (["**/*.wav"] if "audio-only" in opts.written else [])
    if opts.renders_faces:
        description = "synthetic RAVDESS-named emotional speech and face videos, emotion planted in prosody and AUs"
    else:
        description = "synthetic RAVDESS-named emotional speech, emotion planted in prosody"
    card = req.card_base("ravdess", description, {"glob": globs})
    card["planted"] = planted(req, opts)
    split = seed_split(req.subjects)
    if split is not None:
        card["splits"] = {"seed001": split}
    return card


def seed_split(actors: int) -> dict[str, list[str]] | None:
    """Seed 001's actor split scaled to ``actors`` (None below 3): the last sixth tests, the
    twelfth before it validates, the rest trains; 24 actors give the seed's 1-18 / 19-20 / 21-24."""
    if actors < 3:
        return None
    n_test, n_val = max(1, round(actors / 6)), max(1, round(actors / 12))
    names = [f"actor_{i:02d}" for i in range(1, actors + 1)]
    n_train = actors - n_test - n_val
    return {"train": names[:n_train], "val": names[n_train:n_train + n_val], "test": names[n_train + n_val:]}
