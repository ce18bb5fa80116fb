"""A small source-filter speech synthesizer whose prosody is known exactly.

Two steps: :func:`plan_utterance` draws the *control tracks* at 100 Hz (phrases separated by
pauses, syllables with unvoiced consonants and voiced nuclei, an F0 contour with declination,
pitch accents and phrase-final movements, a loudness envelope, a slow vocal-effort latent and
formant targets per vowel); :func:`render` turns them into 16 kHz audio: a glottal pulse train
following the F0 contour (spectral tilt lessened by effort, jitter, aspiration noise) plus
fricative noise, passed through a cascade of four time-varying formant resonators (coefficients
updated every 10 ms, filter state carried across blocks) and scaled to the planned loudness.

The control tracks are the ground truth that the synthetic corpora plant their labels on.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.signal import lfilter

__all__ = ["CTRL_HZ", "SR", "Plan", "Style", "Voice", "plan_utterance", "random_voice", "render", "smooth"]

SR = 16000  # audio sample rate
CTRL_HZ = 100  # control-track (and ground-truth F0) rate
HOP = SR // CTRL_HZ
LEVEL = 0.08  # RMS of active speech at 0 dB loudness (peaks stay well below full scale)
NOISE_FLOOR = 2e-4  # RMS of the background noise (no digital silence: about -74 dBFS)

# F1-F4 (Hz) and bandwidths of a few vowels of an adult male tract (scaled per voice)
VOWELS = np.array(
    [
        [730, 1090, 2440, 3400],  # a
        [530, 1840, 2480, 3500],  # e
        [270, 2290, 3010, 3700],  # i
        [570, 840, 2410, 3400],  # o
        [300, 870, 2240, 3300],  # u
        [500, 1500, 2500, 3500],  # schwa
    ],
    dtype=float,
)
BANDWIDTHS = np.array([80.0, 100.0, 150.0, 250.0])


@dataclass(frozen=True)
class Voice:
    """A speaker: base F0, vocal-tract scaling (formant multiplier), breathiness, jitter."""

    f0_base: float
    tract_scale: float
    breathiness: float
    jitter: float


@dataclass(frozen=True)
class Style:
    """Prosodic style knobs (emotions are planted through them).

    Attributes:
        f0_shift_st: Offset of the whole F0 contour in semitones.
        f0_range: Multiplier of accent and phrase-final excursions.
        rate: Multiplier of the syllable rate (about 4.5 syllables/s at 1).
        loudness_db: Offset of the loudness envelope.
        effort: Mean of the vocal-effort latent (0..1).
        accent_prob: Probability that a syllable carries a pitch accent.
    """

    f0_shift_st: float = 0.0
    f0_range: float = 1.0
    rate: float = 1.0
    loudness_db: float = 0.0
    effort: float = 0.4
    accent_prob: float = 0.35


@dataclass
class Plan:
    """Control tracks at :data:`CTRL_HZ` (length ``n``): the ground truth of one utterance."""

    f0_contour: np.ndarray  # Hz, defined everywhere (also in unvoiced stretches)
    voiced: np.ndarray  # bool
    amp: np.ndarray  # linear loudness envelope of the voiced source (0 when silent)
    noise: np.ndarray  # amplitude of fricative noise
    effort: np.ndarray  # vocal-effort latent, 0..1
    formants: np.ndarray  # (n, 4) Hz
    phrases: list[tuple[float, float]]  # (start_s, end_s)
    syllables: list[tuple[float, float]]  # (start_s, end_s) incl. the onset consonant

    @property
    def f0_hz(self) -> np.ndarray:
        """The F0 ground truth: Hz where voiced, 0 where unvoiced or silent."""
        return np.where(self.voiced, self.f0_contour, 0.0)

    @property
    def duration_s(self) -> float:
        """Length of the utterance in seconds."""
        return len(self.voiced) / CTRL_HZ


def random_voice(rng: np.random.Generator, f0_range: tuple[float, float] = (80.0, 250.0)) -> Voice:
    """Draw a speaker; the tract scale follows the base F0 (higher voices, shorter tracts)."""
    f0 = float(np.exp(rng.uniform(np.log(f0_range[0]), np.log(f0_range[1]))))
    scale = 0.9 + 0.3 * (np.log(f0 / 80.0) / np.log(250.0 / 80.0)) + rng.normal(0, 0.03)
    return Voice(
        f0_base=round(f0, 2),
        tract_scale=round(float(scale), 4),
        breathiness=round(float(rng.uniform(0.02, 0.12)), 4),
        jitter=round(float(rng.uniform(0.003, 0.012)), 4),
    )


def smooth(x: np.ndarray, width: int) -> np.ndarray:
    """Moving average with a Hann window of ``width`` samples (same length, edge-normalised)."""
    if width <= 1:
        return x.astype(float)
    win = np.hanning(width + 2)[1:-1]
    num = np.convolve(x, win, mode="same")
    den = np.convolve(np.ones_like(x, dtype=float), win, mode="same")
    return num / den


def smooth_noise(rng: np.random.Generator, n: int, width: int) -> np.ndarray:
    """Gaussian noise low-passed by a ``width``-sample Hann window, rescaled to unit std."""
    x = smooth(rng.standard_normal(n + 2 * width), width)[width : width + n]
    return (x - x.mean()) / (x.std() + 1e-9)


def _phrase_bounds(rng: np.random.Generator, duration: float, rate: float) -> list[tuple[float, float]]:
    t = rng.uniform(0.08, 0.25)
    end = duration - rng.uniform(0.1, 0.3)
    phrases = []
    while end - t > 0.4:
        length = min(rng.uniform(0.8, 2.4) / rate, end - t)
        phrases.append((t, t + length))
        t += length + rng.uniform(0.18, 0.5)
    return phrases or [(0.05, max(duration - 0.05, 0.1))]


def _syllables(
    rng: np.random.Generator, start: float, end: float, rate: float
) -> list[tuple[float, float, float]]:
    """(syllable start, nucleus start, end) times within one phrase."""
    out, t = [], start
    while end - t > 0.08:
        dur = min(float(np.clip(rng.gamma(8.0, 1.0 / 8.0) / (4.5 * rate), 0.09, 0.45)), end - t)
        cons = rng.uniform(0.25, 0.4) * dur if rng.random() < 0.6 else 0.0
        out.append((t, t + cons, t + dur))
        t += dur
    return out


def _frames(t0: float, t1: float, n: int) -> slice:
    return slice(min(int(round(t0 * CTRL_HZ)), n), min(int(round(t1 * CTRL_HZ)), n))


class _Tracks:
    """The control tracks of an utterance while it is being planned."""

    def __init__(self, rng: np.random.Generator, n: int, style: Style) -> None:
        self.n, self.t = n, np.arange(n) / CTRL_HZ
        self.st = 0.6 * smooth_noise(rng, n, 60) + style.f0_shift_st  # semitones re the voice's base F0
        self.amp_db, self.amp_shape, self.noise = np.zeros(n), np.zeros(n), np.zeros(n)
        self.voiced = np.zeros(n, bool)
        self.vowel_at = np.full(n, 5)

    def phrase(self, rng: np.random.Generator, p0: float, p1: float, style: Style) -> list[tuple[float, float]]:
        """Declination and loudness fall over the phrase, its syllables, the final movement."""
        ph, t = _frames(p0, p1, self.n), self.t
        self.st[ph] += -rng.uniform(1.0, 3.0) * (t[ph] - p0)  # declination, reset at each phrase
        self.amp_db[ph] += -2.0 * (t[ph] - p0) / max(p1 - p0, 0.1)
        syllables = _syllables(rng, p0, p1, style.rate)
        for s0, nuc, s1 in syllables:
            self.syllable(rng, s0, nuc, s1, style)
        fin = np.clip((t - (p1 - 0.35)) / 0.35, 0, 1) * (t < p1 + 0.2)
        self.st += style.f0_range * (4.0 if rng.random() < 0.25 else -3.0) * fin  # question rise / final fall
        return [(s0, s1) for s0, _, s1 in syllables]

    def syllable(self, rng: np.random.Generator, s0: float, nuc: float, s1: float, style: Style) -> None:
        """An optional unvoiced onset, a voiced nucleus, maybe stress and a pitch accent."""
        cons, nucleus = _frames(s0, nuc, self.n), _frames(nuc, s1, self.n)
        if rng.random() < 0.7:
            self.noise[cons] = rng.uniform(0.15, 0.4)  # fricative; otherwise a silent stop closure
        self.voiced[nucleus] = True
        k = nucleus.stop - nucleus.start
        self.amp_shape[nucleus] = np.sin(np.pi * (np.arange(k) + 0.5) / max(k, 1)) ** 0.5
        self.vowel_at[cons.start : nucleus.stop] = rng.integers(0, 5)
        if rng.random() < 0.3:
            self.amp_db[nucleus] += rng.uniform(2.0, 5.0)  # stress (loudness only)
        if rng.random() < style.accent_prob:
            centre, width = 0.5 * (nuc + s1), rng.uniform(0.25, 0.45)
            bump = np.clip(1 - ((self.t - centre) / width) ** 2, 0, None) ** 2
            self.st += style.f0_range * rng.uniform(2.0, 5.5) * bump  # pitch accent (rise-fall)


def plan_utterance(rng: np.random.Generator, voice: Voice, duration_s: float, style: Style = Style()) -> Plan:
    """Draw the control tracks of one utterance of ``duration_s`` seconds."""
    n = int(round(duration_s * CTRL_HZ))
    tr = _Tracks(rng, n, style)
    phrases = _phrase_bounds(rng, duration_s, style.rate)
    syllables = [syl for p0, p1 in phrases for syl in tr.phrase(rng, p0, p1, style)]
    effort = np.clip(style.effort + 0.25 * smooth_noise(rng, n, 150), 0, 1)
    st = tr.st + 0.08 * rng.standard_normal(n)
    amp = tr.amp_shape * 10 ** ((tr.amp_db + 6.0 * (effort - 0.5) + style.loudness_db) / 20)
    formants = _formant_tracks(tr.vowel_at, voice.tract_scale)
    f0 = np.clip(voice.f0_base * 2 ** (st / 12), 50, 550)
    return Plan(f0, tr.voiced, amp, tr.noise, effort, formants, phrases, syllables)


def _formant_tracks(vowel_at: np.ndarray, tract_scale: float) -> np.ndarray:
    tracks = VOWELS[vowel_at] * tract_scale
    return np.stack([smooth(tracks[:, i], 7) for i in range(4)], axis=1)


def _upsample(x: np.ndarray, n_audio: int) -> np.ndarray:
    grid = (np.arange(n_audio) + 0.5) / HOP - 0.5
    return np.interp(grid, np.arange(len(x)), x)


def _glottal_source(plan: Plan, voice: Voice, rng: np.random.Generator, n_audio: int) -> np.ndarray:
    f0 = _upsample(plan.f0_contour, n_audio) * (1 + voice.jitter * rng.standard_normal(n_audio))
    phase = np.cumsum(f0 / SR)
    pulses = np.diff(np.floor(phase), prepend=0.0)
    flow = lfilter([1.0], [1.0, -1.94, 0.9409], pulses)  # glottal flow: double pole at 0.97
    deriv = np.diff(flow, prepend=0.0)  # lip radiation
    bright = np.diff(deriv, prepend=0.0)  # effortful voice: flatter spectral tilt
    effort = _upsample(plan.effort, n_audio)
    src = deriv / (np.std(deriv) + 1e-9) + effort * 0.6 * bright / (np.std(bright) + 1e-9)
    gate = _upsample(smooth(plan.voiced.astype(float), 3), n_audio)
    return gate * (src + voice.breathiness * 3.0 * rng.standard_normal(n_audio))


def _resonator_polys(formants: np.ndarray, bandwidths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per block, the cascade of 4 two-pole resonators (unity gain at DC) as one filter.

    Returns the gains (n_blocks,) and denominators (n_blocks, 9). One ``lfilter`` call per
    block costs a fraction of a ``sosfilt`` call, whose input checks dominate 10 ms blocks.
    """
    r = np.exp(-np.pi * bandwidths / SR)
    theta = 2 * np.pi * np.minimum(formants, 0.45 * SR) / SR
    a1, a2 = -2 * r * np.cos(theta), np.broadcast_to(r**2, theta.shape)
    den = np.ones((len(formants), 1))
    for k in range(formants.shape[1]):
        section = np.stack([np.ones(len(formants)), a1[:, k], a2[:, k]], axis=1)
        den = np.stack([sum(den[:, i] * section[:, j - i] for i in range(den.shape[1]) if 0 <= j - i <= 2)
                        for j in range(den.shape[1] + 2)], axis=1)
    gain = np.prod(1 + a1 + a2, axis=1)
    return gain, den


def render(plan: Plan, voice: Voice, rng: np.random.Generator) -> np.ndarray:
    """Synthesize the audio of ``plan`` (float32, mono, :data:`SR` Hz, ``n * 160`` samples)."""
    n = len(plan.voiced)
    n_audio = n * HOP
    amp = _upsample(plan.amp, n_audio)
    fric = lfilter([1.0, -0.9], [1.0], rng.standard_normal(n_audio)) * _upsample(plan.noise, n_audio)
    src = _glottal_source(plan, voice, rng, n_audio) * amp + fric
    gain, den = _resonator_polys(plan.formants, BANDWIDTHS * np.sqrt(voice.tract_scale))
    out = np.empty(n_audio)
    zi = np.zeros(den.shape[1] - 1)
    for k in range(n):  # time-varying filter: new coefficients every block, state carried over
        seg = slice(k * HOP, (k + 1) * HOP)
        out[seg], zi = lfilter(gain[k : k + 1], den[k], src[seg], zi=zi)
    active = amp > 0.05
    if active.any():
        out *= np.sqrt(np.mean(amp[active] ** 2)) / (np.sqrt(np.mean(out[active] ** 2)) + 1e-12)
    out = LEVEL * out + NOISE_FLOOR * rng.standard_normal(n_audio)
    return np.clip(out, -1.0, 1.0).astype(np.float32)
