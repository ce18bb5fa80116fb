"""openSMILE audio extractors (eGeMAPSv02, ComParE_2016; LLDs at 100 frames/s, or functionals).

Audio decoding (:func:`read_audio`): the file is read with libsndfile (``soundfile``) as
float32, exactly as ``opensmile.Smile.process_file`` reads it. Multi-channel audio is mixed to
mono by averaging the channels (openSMILE's own default would keep only channel 0); audio at
another sample rate is resampled to 16 kHz with ``scipy.signal.resample_poly`` (polyphase,
Kaiser window). Video containers (``.mp4``, ``.mkv``, ... as in lrs / affwild2 manifests) give
their first audio track, decoded and mixed to mono by FFmpeg through PyAV
(:func:`affectlab.features.video.decode_audio`), then resampled the same way; a video without a
sound track is an error ("no audio track"). A 16 kHz mono file goes to openSMILE untouched, so its features are exactly
``Smile(...).process_file(path)``; for other files they are exactly
``Smile(...).process_signal(mono_16k, 16000)`` of the converted signal (clipped to the 16-bit
range that openSMILE reads: resampling can overshoot full scale).

Broken and hostile files are refused with a :class:`~affectlab.errors.MediaError` naming the
file, before anything large is allocated (:mod:`affectlab.features.sound`): implausible sample
rates, recordings longer than ``max_seconds`` (default :data:`MAX_SECONDS`; ``affectlab
preprocess --max-duration``), truncated WAVs, NaN / infinite samples and float samples beyond
+-1. A feature row with a non-finite value is never written (an error instead).

Feature sets (:data:`AUDIO_SETS`, names used by ``affectlab preprocess --audio``):

======================  ======  ==================================================================
name                    D       what
======================  ======  ==================================================================
egemaps                 25      eGeMAPSv02 LLDs, plus ``f0_hz`` / ``f0_id`` columns (below)
compare                 65/130  ComParE_2016 LLDs; with ``deltas=True`` LLDs + first-order deltas
                                (the 130-dim set of ``003``); the two openSMILE outputs are aligned
                                by position on the LLD frames (the delta stream ends with up to two
                                duplicated end-of-stream frames, which are dropped)
egemaps_functionals     88      eGeMAPSv02 functionals: one row (T = 1) per recording
compare_functionals     6373    ComParE_2016 functionals: T = 1
======================  ======  ==================================================================

F0: ``F0semitoneFrom27.5Hz_sma3nz`` is semitones above 27.5 Hz, 0 when unvoiced, so
``f0_hz = 27.5 * 2 ** (st / 12)`` for ``st > 0`` and 0 otherwise, clipped to 50-550 Hz (``000``);
``f0_id`` quantizes it with :func:`affectlab.data.labels.f0_vocab` (``f0_step``). Silence is
not an error: F0 is then all 0 (unvoiced).

Frame timing. Both LLD sets frame the audio twice with a 10 ms hop (:data:`LLD_HOP_S`), both
framers ``frameCenterSpecial = left`` (frame ``t`` starts at ``t * 10 ms``): a 20 ms Hamming
window for energy, spectral and MFCC descriptors and a 60 ms Gaussian window for F0, voicing,
jitter, shimmer, HNR and formants (:data:`LLD_WINDOWS_S`; openSMILE 2.6 configs
``gemaps/v01b/GeMAPSv01b_core.lld.conf.inc`` ``[gemapsv01b_frame25]`` / ``[gemapsv01b_frame60]``,
used by eGeMAPSv02, and ``compare/ComParE_2016_core.lld.conf.inc`` ``[is13_frame25]`` /
``[is13_frame60]``); the 3-frame ``sma`` smoothing is centred and shifts nothing. A frame's time
is the centre of its analysis window (the project's convention,
:mod:`affectlab.data.labels` "Alignment"); one time per frame, the centre of the whole 60 ms
span, ``t * 10 ms + 30 ms`` (:data:`FRAME_OFFSET_S`, :func:`frame_times_s`). That is exact for
the 60 ms descriptors (F0 included); the 20 ms ones are centred 20 ms earlier, at
``t * 10 ms + 10 ms``. A clip of ``n`` samples at 16 kHz gives :func:`n_feature_frames`
``= (n - 800) // 160 + 1`` frames for both sets (checked in the tests). Clips shorter than the
longest analysis window (60 ms) are rejected (openSMILE would emit a row of NaN).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from affectlab.data.labels import clip_f0, f0_vocab, quantize_f0
from affectlab.errors import MediaError, unknown_name_error
from affectlab.features.sound import (
    AUDIO_EXTENSIONS,
    MAX_SECONDS,
    check_sample_rate,
    check_samples,
    read_mono,
    sound_info,
)

__all__ = [
    "AUDIO_EXTENSIONS",
    "AUDIO_SETS",
    "FRAME_OFFSET_S",
    "FRAME_RATE_HZ",
    "LLD_HOP_S",
    "LLD_WINDOWS_S",
    "MAX_SECONDS",
    "MIN_SECONDS",
    "TARGET_SR",
    "OpenSmileExtractor",
    "n_feature_frames",
    "read_audio",
    "read_audio_info",
    "frame_times_s",
    "semitones_to_hz",
]

TARGET_SR = 16000
LLD_HOP_S = 0.010  # openSMILE frameStep of both LLD framers
LLD_WINDOWS_S = (0.020, 0.060)  # openSMILE frameSize of the short and the long LLD framer
FRAME_RATE_HZ = 1.0 / LLD_HOP_S
# time of LLD frame 0: the centre of its longest analysis window (module docstring)
FRAME_OFFSET_S = max(LLD_WINDOWS_S) / 2
MIN_SECONDS = 0.06
INT16_MAX_FLOAT = 32767 / 32768  # the largest sample openSMILE's 16-bit conversion keeps
# the sound track of a video (lrs / affwild2 manifests point audio_path at the video)
VIDEO_CONTAINERS = (".mp4", ".m4v", ".mkv", ".webm", ".avi", ".mov", ".mpg", ".mpeg")
F0_COLUMN = "F0semitoneFrom27.5Hz_sma3nz"


@dataclass(frozen=True)
class AudioSet:
    """One openSMILE configuration: feature set and level names (opensmile enums by name)."""

    feature_set: str
    level: str
    lld: bool
    f0: bool = False


AUDIO_SETS: dict[str, AudioSet] = {
    "egemaps": AudioSet("eGeMAPSv02", "LowLevelDescriptors", lld=True, f0=True),
    "compare": AudioSet("ComParE_2016", "LowLevelDescriptors", lld=True),
    "egemaps_functionals": AudioSet("eGeMAPSv02", "Functionals", lld=False),
    "compare_functionals": AudioSet("ComParE_2016", "Functionals", lld=False),
}


def semitones_to_hz(st: np.ndarray) -> np.ndarray:
    """eGeMAPS F0 semitones (re 27.5 Hz; 0 = unvoiced) to Hz (0 = unvoiced), float32."""
    st = np.asarray(st, dtype=np.float64)
    return np.where(st > 0, 27.5 * np.power(2.0, st / 12.0), 0.0).astype(np.float32)


def n_feature_frames(n_samples_16k: int) -> int:
    """Number of openSMILE LLD frames (10 ms hop) for a 16 kHz clip of ``n_samples_16k``."""
    return max(0, (int(n_samples_16k) - 800) // 160 + 1)


def frame_times_s(n_frames: int) -> np.ndarray:
    """Time in seconds of LLD frames ``0 .. n_frames-1``: ``FRAME_OFFSET_S + t * LLD_HOP_S`` (float64)."""
    return FRAME_OFFSET_S + np.arange(int(n_frames), dtype=np.float64) / FRAME_RATE_HZ


def resampled_length(n_samples: int, sample_rate: int) -> int:
    """Length after :func:`read_audio`'s resampling to 16 kHz."""
    if sample_rate == TARGET_SR:
        return int(n_samples)
    g = math.gcd(TARGET_SR, int(sample_rate))
    return math.ceil(n_samples * (TARGET_SR // g) / (sample_rate // g))


def _is_container(uri: str) -> bool:
    return os.path.splitext(uri)[1].lower() in VIDEO_CONTAINERS


def _decode_container(uri: str, max_seconds: float | None = None) -> tuple[np.ndarray, int]:
    """A video's first audio track, mixed to mono by FFmpeg (PyAV), at its own rate."""
    from affectlab.features.video import decode_audio

    samples, rate = decode_audio(uri, max_seconds=max_seconds)
    check_sample_rate(uri, rate)
    return samples, rate


def read_audio_info(uri: str) -> dict[str, Any]:
    """Header facts of an audio file: ``sample_rate``, ``channels``, ``frames``, ``duration_s``.

    A sound file's header is read and checked (:mod:`affectlab.features.sound`) without decoding
    its samples; a video container's track is decoded.

    Raises:
        MediaError: Missing, empty, unsupported, undecodable, implausible or truncated file.
    """
    if _is_container(uri):
        samples, rate = _decode_container(uri)
        return {"sample_rate": rate, "channels": 1, "frames": len(samples), "duration_s": len(samples) / rate}
    info = sound_info(uri)
    return {"sample_rate": info.sample_rate, "channels": info.channels, "frames": info.frames,
            "duration_s": info.duration_s}


def read_audio(uri: str, *, max_seconds: float | None = MAX_SECONDS) -> tuple[np.ndarray, dict[str, Any]]:
    """Decode audio to a 16 kHz mono float32 signal (see module docstring).

    The file is checked first (:mod:`affectlab.features.sound`: plausible header, at most
    ``max_seconds`` long, not truncated, finite samples within [-1, 1]); after resampling the
    signal is clipped to the 16-bit range openSMILE reads (resampling can overshoot full scale, and
    a float sample of exactly 1.0 would wrap; a 16 kHz integer-PCM file is never changed by it).

    Args:
        uri: Local path or ``s3://`` URI of a sound file or a video container.
        max_seconds: Refuse longer recordings (``None``: no limit); default :data:`MAX_SECONDS`.

    Returns:
        ``(signal, info)``; ``info`` has the original ``sample_rate``, ``channels``,
        ``duration_s`` and ``converted`` (True when mixed down or resampled).

    Raises:
        MediaError: Missing, empty, unsupported, undecodable, implausible, too long, truncated or
            too short (< 60 ms) audio, or NaN / out-of-range samples.
    """
    container = _is_container(uri)
    if container:
        x, sr = _decode_container(uri, max_seconds)
        check_samples(uri, x, float_input=False)
        channels = 1
    else:
        x, header = read_mono(uri, max_seconds=max_seconds)
        sr, channels = header.sample_rate, header.channels
    if x.shape[0] == 0:
        raise MediaError(f"{uri}: no audio samples in file")
    info = {"sample_rate": int(sr), "channels": int(channels), "duration_s": x.shape[0] / sr,
            "converted": container or channels > 1 or sr != TARGET_SR}
    if info["duration_s"] < MIN_SECONDS:
        raise MediaError(
            f"{uri}: clip too short ({info['duration_s'] * 1000:.1f} ms); openSMILE needs at least "
            f"{MIN_SECONDS * 1000:.0f} ms (one analysis frame)"
        )
    if sr != TARGET_SR:
        from scipy.signal import resample_poly

        g = math.gcd(TARGET_SR, int(sr))
        x = resample_poly(x, TARGET_SR // g, int(sr) // g).astype(np.float32)
    np.clip(x, -1.0, INT16_MAX_FLOAT, out=x)
    return np.ascontiguousarray(x), info


def _smile(feature_set: str, level: str) -> Any:
    import opensmile

    return opensmile.Smile(
        feature_set=getattr(opensmile.FeatureSet, feature_set),
        feature_level=getattr(opensmile.FeatureLevel, level),
    )


class OpenSmileExtractor:
    """Extractor (:mod:`affectlab.features.base`) for one of :data:`AUDIO_SETS`.

    Args:
        feature_set: A name in :data:`AUDIO_SETS`.
        deltas: ``compare`` only: append first-order deltas (65 -> 130 dims).
        f0_step: ``egemaps`` only: F0 quantization step in Hz for ``f0_id`` (must divide 500).
        max_seconds: Longer recordings are errors, refused from their header (``None``: no
            limit). Not part of the set's parameters: it decides which files are read, not what
            their rows hold, so changing it keeps the set version (and resumes).

    Raises:
        RegistryError: Unknown ``feature_set``.
        ConfigError: ``deltas`` for a set without deltas, a bad ``f0_step`` or ``max_seconds``.
    """

    kind = "features"
    requires = ("audio_path",)
    path_column = "audio_path"
    num_cpus = 1.0
    version = "1"

    def __init__(self, feature_set: str = "egemaps", *, deltas: bool = False, f0_step: float = 10.0,
                 max_seconds: float | None = MAX_SECONDS) -> None:
        ident = self.describe(feature_set, deltas=deltas, f0_step=f0_step, max_seconds=max_seconds)
        self.max_seconds = max_seconds
        self.name = ident["name"]
        self._params = ident["params"]
        self.spec = AUDIO_SETS[feature_set]
        self.smile = _smile(self.spec.feature_set, self.spec.level)
        self.smile_deltas = _smile(self.spec.feature_set, "LowLevelDescriptors_Deltas") if deltas else None
        self.names = list(self.smile.feature_names)
        if self.smile_deltas is not None:
            self.names += list(self.smile_deltas.feature_names)
        self.f0_index = self.names.index(F0_COLUMN) if self.spec.f0 else None
        self.f0_step = f0_step

    @classmethod
    def describe(cls, feature_set: str = "egemaps", *, deltas: bool = False, f0_step: float = 10.0,
                 max_seconds: float | None = MAX_SECONDS) -> dict[str, Any]:
        """Name, version and parameters without constructing openSMILE (see pipeline)."""
        import opensmile

        from affectlab.errors import ConfigError

        if max_seconds is not None and not (isinstance(max_seconds, (int, float)) and 0 < max_seconds < math.inf):
            raise ConfigError(f"max_seconds: must be a positive number of seconds (or None: no limit), got {max_seconds!r}")
        spec = AUDIO_SETS.get(feature_set)
        if spec is None:
            raise unknown_name_error("audio feature set", feature_set, list(AUDIO_SETS))
        if deltas and feature_set != "compare":
            raise ConfigError(f"deltas: only the 'compare' set has openSMILE deltas, not {feature_set!r}")
        params: dict[str, Any] = {"opensmile_feature_set": spec.feature_set, "level": spec.level,
                                  "sample_rate": TARGET_SR, "mixdown": "mean", "opensmile": opensmile.__version__}
        if feature_set == "compare":
            params["deltas"] = bool(deltas)
        if spec.f0:
            f0_vocab(f0_step)  # validates the step
            params["f0_step"] = float(f0_step)
        return {"name": feature_set, "version": cls.version, "params": params}

    def params(self) -> dict[str, Any]:
        """Parameters that determine the output (hashed into the set version)."""
        return dict(self._params)

    def _check_finite(self, uri: str, values: np.ndarray) -> None:
        """Never write NaN / inf features silently: an error naming the file and the columns."""
        bad = ~np.isfinite(values)
        if bad.any():
            columns = [self.names[j] for j in np.flatnonzero(bad.any(axis=0))]
            raise MediaError(f"{uri}: openSMILE returned {int(bad.sum())} non-finite value(s) (NaN/inf) in "
                             f"{len(columns)} column(s) ({', '.join(columns[:4])}{' ...' if len(columns) > 4 else ''}); "
                             "row not written")

    def metadata(self) -> dict[str, Any]:
        """Schema metadata: the feature names of the ``features`` column."""
        return {"columns": {"features": self.names}, "feature_set": self.name}

    def process(self, row: dict[str, Any]) -> dict[str, Any]:
        """Extract one recording (see module docstring for the columns)."""
        signal, info = read_audio(row["audio_path"], max_seconds=self.max_seconds)
        values = self.smile.process_signal(signal, TARGET_SR).to_numpy(dtype=np.float32)
        if self.smile_deltas is not None:
            deltas = self.smile_deltas.process_signal(signal, TARGET_SR).to_numpy(dtype=np.float32)
            if len(deltas) < len(values):
                raise MediaError(f"{row['audio_path']}: openSMILE gave {len(deltas)} delta frames for {len(values)} LLD frames")
            values = np.hstack([values, deltas[: len(values)]])
        self._check_finite(row["audio_path"], values)
        out: dict[str, Any] = {
            "sample_id": row["sample_id"],
            "subject": row["subject"],
            "n_frames": int(values.shape[0]),
            "frame_rate_hz": FRAME_RATE_HZ if self.spec.lld else 0.0,
            "duration_s": float(info["duration_s"]),
            "sample_rate_hz": int(info["sample_rate"]),
            "channels": int(info["channels"]),
            "features": np.ascontiguousarray(values),
        }
        if self.f0_index is not None:
            f0 = clip_f0(semitones_to_hz(values[:, self.f0_index]))
            out["f0_hz"] = f0
            out["f0_id"] = quantize_f0(f0, self.f0_step)
        return out
