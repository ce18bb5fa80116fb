"""``ravdess``: emotional speech named like RAVDESS, emotion planted in the prosody (ravdess adapter).

Files ``Actor_AA/03-01-EE-II-SS-RR-AA.wav`` (audio-only speech; emotion 01-08, intensity 01/02,
statement 01/02, repetition 01/02, actor 01-24: odd male voices 85-150 Hz, even female 160-250 Hz).
Each emotion has a prosodic style (:data:`EMOTION_STYLES`: F0 level and range, speaking rate,
loudness, vocal effort); strong intensity scales the style's departure from neutral by 1.6.
Per actor the first ``items`` of the 60 RAVDESS combinations are generated, ordered so that small
``items`` still cover every emotion.
"""

from __future__ import annotations

import numpy as np

from affectlab.config import StrictModel
from affectlab.data.synth import voice as V
from affectlab.data.synth.base import Progress, SynthRequest, partner_indices, rng_for, write_wav

__all__ = ["COMBINATIONS", "EMOTION_STYLES", "MAX_ACTORS", "RavdessSynthOptions", "style_for", "write"]

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
STRONG = 1.6
MAX_ACTORS = 24
SYLLABLES = 7  # both statements ("Kids are talking by the door", "Dogs are sitting by the door")


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
    """Options of ``ravdess`` (none yet)."""


def style_for(emotion: str, strong: bool) -> V.Style:
    """The prosodic style of ``emotion`` (scaled away from neutral when ``strong``)."""
    base = np.array(EMOTION_STYLES["neutral"])
    values = np.array(EMOTION_STYLES[emotion])
    values = base + (values - base) * (STRONG if strong else 1.0)
    shift, f0_range, rate, loud, effort = values
    effort = float(np.clip(effort, 0, 1))
    return V.Style(f0_shift_st=shift, f0_range=f0_range, rate=rate, loudness_db=loud, effort=effort)


def check(req: SynthRequest) -> list[str]:
    """Limits of the RAVDESS naming scheme."""
    problems = []
    if req.subjects > MAX_ACTORS:
        problems.append(f"subjects: RAVDESS names at most {MAX_ACTORS} actors, got {req.subjects}")
    if req.items > len(COMBINATIONS):
        problems.append(f"items: an actor has at most {len(COMBINATIONS)} recordings, got {req.items}")
    return problems


def planted(req: SynthRequest) -> dict[str, object]:
    """The card's ``planted:`` mapping."""
    keys = ("f0_shift_st", "f0_range", "rate", "loudness_db", "effort")
    return {
        **req.planted_base(),
        "emotion_styles": {e: dict(zip(keys, v, strict=True)) for e, v in EMOTION_STYLES.items()},
        "strong_intensity": f"departure from neutral x {STRONG}",
        "durations": "(0.9 s + 7 syllables at 4.5 * rate syllables/s) * U(0.92, 1.08)",
        "voices": "odd actors male (base F0 85-150 Hz), even actors female (160-250 Hz)",
        "statement_repetition": "not planted: statements and repetitions differ only by random draws",
        "shuffled_control": "with relation=shuffled each file's prosody comes from another file's "
        "(emotion, intensity) (a random cycle over all files), so its name no longer predicts its voice",
    }


def write(req: SynthRequest, opts: RavdessSynthOptions, progress: Progress = None) -> dict[str, object]:
    """Generate the corpus under ``req.out``; return the dataset card (a dict)."""
    files = [(s, k) for s in range(req.subjects) for k in range(req.items)]
    style_of = list(range(len(files)))
    if req.shuffled:
        style_of = list(partner_indices(len(files), rng_for(req, 999_999)))
    voices = {}
    for s in range(req.subjects):
        male = (s + 1) % 2 == 1
        voices[s] = V.random_voice(rng_for(req, s, 0), (85.0, 150.0) if male else (160.0, 250.0))
    for (s, k), j in zip(files, style_of, strict=True):
        emotion, intensity, statement, rep = COMBINATIONS[k]
        planted_e, planted_i = COMBINATIONS[files[j][1]][:2]
        style = style_for(EMOTIONS[planted_e - 1], planted_i == 2)
        rng = rng_for(req, s, 1, k)
        dur = (0.9 + SYLLABLES / (4.5 * style.rate)) * rng.uniform(0.92, 1.08)
        plan = V.plan_utterance(rng, voices[s], round(dur * 100) / 100, style)
        name = f"03-01-{emotion:02d}-{intensity:02d}-{statement:02d}-{rep:02d}-{s + 1:02d}.wav"
        write_wav(req.path(f"Actor_{s + 1:02d}", name), V.render(plan, voices[s], rng), V.SR)
        if progress:
            progress(1)
    description = "synthetic RAVDESS-named emotional speech, emotion planted in prosody"
    card = req.card_base("ravdess", description, {"glob": ["**/*.wav"]})
    card["planted"] = planted(req)
    return card
