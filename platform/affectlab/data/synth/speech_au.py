"""``speech-au``: speech whose prosody drives facial action-unit labels (csv adapter).

Per subject a voice (base F0 80-250 Hz, vocal-tract scale); per utterance 2-8 s of 16 kHz
source-filter speech (:mod:`affectlab.data.synth.voice`). Eight AU intensities (0-5) at 25 Hz are
planted as functions of the utterance's control tracks (:data:`AU_RULES`): each AU's *driver*
(e.g. the F0 rise rate) plus smooth noise is thresholded into episodes, scaled to 0-5 and delayed
by the AU's lag. Layout (see the module docstring of the csv adapter)::

    manifest.csv                                  sample_id, subject, audio, video, labels, ...
    audio/<subject>/<sample_id>.wav               16 kHz mono PCM_16
    labels/<subject>/<sample_id>.csv              frame,AU01,...,AU17 (one row per 40 ms)
    f0/<subject>/<sample_id>.csv                  time_s,f0_hz at 100 Hz (0 when unvoiced)
    dataset.yaml                                  the card, with ``planted:``
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from affectlab.data.synth import voice as V
from affectlab.data.synth.base import (
    DurationOptions,
    Progress,
    SynthRequest,
    fit_length,
    rng_for,
    shuffle_plan,
    subject_id,
    write_csv,
    write_manifest,
    write_wav,
)

__all__ = ["AUS", "AU_RULES", "LABEL_HZ", "SpeechAuOptions", "au_labels", "prosody_drivers", "write"]

LABEL_HZ = 25
DOWN = V.CTRL_HZ // LABEL_HZ  # control frames per label frame
AUS = ("AU01", "AU02", "AU04", "AU06", "AU07", "AU10", "AU12", "AU17")


@dataclass(frozen=True)
class AURule:
    """How one AU is planted: intensity = 5 * clip((driver + noise - threshold) / (full - threshold)).

    ``noise`` is the std of smooth (300 ms) Gaussian noise, in driver units; the result is delayed
    by ``lag_ms`` (the face follows the voice).
    """

    driver: str
    lag_ms: int
    threshold: float
    full: float
    noise: float
    meaning: str


DRIVERS = {
    "f0_rise": "rate of F0 rise in semitones/s (positive part of d/dt of the F0 contour, 200 ms Hann "
    "smoothing)",
    "f0_high": "F0 above the voice's base in semitones (120 ms smoothing) while speaking",
    "low_pitch_effort": "vocal effort (0-1) times semitones of F0 below the voice's base",
    "loudness_slow": "loudness envelope (linear amplitude re reference level), 1 s smoothing",
    "effort": "the vocal-effort latent (0-1; raises loudness, flattens the spectral tilt) while speaking "
    "(phrases + 0.3 s, 200 ms smoothed edges)",
    "open_vowel": "F1 of the vowel normalised by the tract scale ((F1 - 500 Hz)/230 Hz) while voiced",
    "loudness": "loudness envelope (linear amplitude re reference level), 300 ms smoothing",
    "phrase_end": "ramp 0 -> 1 over the last 0.5 s of each phrase, held 0.15 s into the pause, back to 0 "
    "over 0.35 s",
}

AU_RULES: dict[str, AURule] = {
    "AU01": AURule("f0_rise", 150, 4.0, 20.0, 1.5, "inner brow raiser follows F0 rises"),
    "AU02": AURule("f0_high", 200, 1.0, 6.0, 0.5, "outer brow raiser follows raised F0 (accents, rises)"),
    "AU04": AURule("low_pitch_effort", 250, 0.25, 2.0, 0.3, "brow lowerer: low pitch produced with effort"),
    "AU06": AURule("loudness_slow", 300, 0.55, 1.0, 0.08, "cheek raiser follows slow loudness"),
    "AU07": AURule("effort", 200, 0.42, 0.9, 0.05, "lid tightener follows vocal effort"),
    "AU10": AURule("open_vowel", 100, 0.1, 1.0, 0.1, "upper lip raiser follows open vowels (high F1)"),
    "AU12": AURule("loudness", 200, 0.5, 1.1, 0.08, "lip corner puller follows loudness"),
    "AU17": AURule("phrase_end", 150, 0.15, 0.9, 0.08, "chin raiser rises at phrase ends"),
}


class SpeechAuOptions(DurationOptions):
    """Options of ``speech-au``: the utterance duration range (2-8 s)."""


def _in_phrase(plan: V.Plan, n: int, after_s: float = 0.0) -> np.ndarray:
    mask = np.zeros(n)
    for p0, p1 in plan.phrases:
        mask[int(p0 * V.CTRL_HZ) : min(int((p1 + after_s) * V.CTRL_HZ), n)] = 1.0
    return mask


def _phrase_end_ramp(plan: V.Plan, n: int) -> np.ndarray:
    t = np.arange(n) / V.CTRL_HZ
    ramp = np.zeros(n)
    for _, p1 in plan.phrases:
        rise = np.clip((t - (p1 - 0.5)) / 0.5, 0, 1)
        fall = np.clip(1 - (t - (p1 + 0.15)) / 0.35, 0, 1)
        ramp = np.maximum(ramp, np.minimum(rise, fall))
    return ramp


def prosody_drivers(plan: V.Plan, voice: V.Voice) -> dict[str, np.ndarray]:
    """The AU drivers (see :data:`DRIVERS`) at 100 Hz, computed from the control tracks."""
    n = len(plan.voiced)
    speaking = _in_phrase(plan, n, after_s=0.1)
    st = 12 * np.log2(plan.f0_contour / voice.f0_base)
    rise = V.smooth(np.maximum(np.diff(st, prepend=st[0]) * V.CTRL_HZ, 0), 20) * speaking
    f1 = plan.formants[:, 0] / voice.tract_scale
    return {
        "f0_rise": rise,
        "f0_high": V.smooth(st, 12) * speaking,
        "low_pitch_effort": plan.effort * np.maximum(-V.smooth(st, 12), 0) * speaking,
        "loudness_slow": V.smooth(plan.amp, 100),
        "effort": plan.effort * V.smooth(_in_phrase(plan, n, after_s=0.3), 20),
        "open_vowel": V.smooth(plan.voiced * (f1 - 500.0) / 230.0, 8),
        "loudness": V.smooth(plan.amp, 30),
        "phrase_end": _phrase_end_ramp(plan, n),
    }


def _delay(x: np.ndarray, frames: int) -> np.ndarray:
    return np.concatenate([np.full(frames, x[0]), x[: len(x) - frames]]) if frames else x


def au_labels(plan: V.Plan, voice: V.Voice, rng: np.random.Generator) -> np.ndarray:
    """AU intensities (0-5) at 25 Hz, shape (n_frames, 8) in :data:`AUS` order."""
    drivers = prosody_drivers(plan, voice)
    n = len(plan.voiced)
    cols = []
    for au in AUS:
        rule = AU_RULES[au]
        d = drivers[rule.driver] + rule.noise * V.smooth_noise(rng, n, 30)
        x = 5.0 * np.clip((d - rule.threshold) / (rule.full - rule.threshold), 0, 1)
        x = _delay(x, int(round(rule.lag_ms * V.CTRL_HZ / 1000)))
        cols.append(x[: n - n % DOWN].reshape(-1, DOWN).mean(axis=1))
    return np.round(np.stack(cols, axis=1), 2)


def planted(req: SynthRequest) -> dict[str, object]:
    """The card's ``planted:`` mapping."""
    rules = {
        au: {
            "driver": r.driver, "lag_ms": r.lag_ms, "threshold": r.threshold, "full_scale": r.full,
            "noise_std": r.noise, "meaning": r.meaning,
        }
        for au, r in AU_RULES.items()
    }
    return {
        **req.planted_base(),
        "voices": "per subject: base F0 log-uniform 80-250 Hz, tract scale 0.9-1.2 rising with F0",
        "prosody": "phrases with pauses, declination, pitch accents (+2..5.5 st), final fall/rise, "
        "stress (+2..5 dB), slow vocal-effort latent; ground-truth F0 in f0/<subject>/<id>.csv",
        "label_rule": "AU = 5*clip((driver + smooth noise - threshold)/(full_scale - threshold), 0, 1), "
        "delayed by lag_ms, averaged to 25 Hz",
        "drivers": DRIVERS,
        "aus": rules,
        "shuffled_control": "with relation=shuffled each utterance gets the AU labels of another utterance "
        "(a random cycle over all utterances), rotated circularly by a random offset and cropped or tiled "
        "(wrapped) to its own length",
    }


def _utterance(
    req: SynthRequest, opts: SpeechAuOptions, s: int, u: int, voice: V.Voice
) -> tuple[str, np.ndarray]:
    rng = rng_for(req, s, 1, u)
    dur = rng.uniform(opts.min_duration_s, opts.max_duration_s)
    dur = max(round(dur * LABEL_HZ), 1) / LABEL_HZ  # whole label frames
    plan = V.plan_utterance(rng, voice, dur)
    audio = V.render(plan, voice, rng)
    labels = au_labels(plan, voice, rng)
    sid, subj = f"{subject_id(s)}_u{u + 1:03d}", subject_id(s)
    write_wav(req.path("audio", subj, f"{sid}.wav"), audio, V.SR)
    f0 = plan.f0_hz
    times = np.arange(len(f0)) / V.CTRL_HZ
    write_csv(req.path("f0", subj, f"{sid}.csv"), ["time_s", "f0_hz"], [times, f0], ["%.2f", "%.2f"])
    return sid, labels


def write(req: SynthRequest, opts: SpeechAuOptions, progress: Progress = None) -> dict[str, object]:
    """Generate the corpus under ``req.out``; return the dataset card (a dict)."""
    ids, subjects, labels = [], [], []
    for s in range(req.subjects):
        voice = V.random_voice(rng_for(req, s, 0))
        for u in range(req.items):
            sid, lab = _utterance(req, opts, s, u, voice)
            ids.append(sid)
            subjects.append(subject_id(s))
            labels.append(lab)
            if progress:
                progress(1)
    if req.shuffled:
        partner, offsets = shuffle_plan(len(labels), rng_for(req, 999_999))
        labels = [fit_length(labels[p], len(labels[i]), offsets[i]) for i, p in enumerate(partner)]
    formats = ["%d"] + ["%.2f"] * len(AUS)
    rows = []
    for sid, subj, lab in zip(ids, subjects, labels, strict=True):
        write_csv(req.path("labels", subj, f"{sid}.csv"), ["frame", *AUS], [np.arange(len(lab)), *lab.T], formats)
        rows.append({
            "sample_id": sid, "subject": subj, "audio": f"audio/{subj}/{sid}.wav",
            "labels": f"labels/{subj}/{sid}.csv",
        })
    write_manifest(req, rows)
    description = "synthetic speech with AU labels planted on its prosody"
    card = req.card_base("csv", description, {"manifest": "manifest.csv"})
    card["frame_labels"] = {"rate_hz": LABEL_HZ}
    card["planted"] = planted(req)
    return card
