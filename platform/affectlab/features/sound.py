"""Reading sound files with libsndfile, defensively (what :func:`affectlab.features.audio.read_audio`
decodes; video containers go through :func:`affectlab.features.video.decode_audio` instead).

Every problem is a :class:`~affectlab.errors.MediaError` whose message starts with the file and
says why; the preprocessing stage records it in ``<out>/errors/`` and goes on. Before a single
sample is decoded, from the header only (a local file is opened in place, not read whole):

- the extension is one of :data:`AUDIO_EXTENSIONS`; the file exists, is a regular file, not empty;
- libsndfile can parse the header;
- the sample rate lies within :data:`MIN_SAMPLE_RATE` .. :data:`MAX_SAMPLE_RATE` (a bogus header
  rate would make the resampler design a filter of billions of taps);
- the duration is at most ``max_seconds`` (default :data:`MAX_SECONDS`, ``affectlab preprocess
  --max-duration``): an hours-long file is refused without being read, which bounds a worker's
  memory;
- a WAV's data chunk holds what its header declares (an interrupted copy would otherwise give
  features of part of the recording, silently).

While decoding, block by block (channels averaged per block, so memory is the mono signal
whatever the channel count), every sample must be finite (a float WAV can hold NaN or inf) and
within [-1, 1] (openSMILE multiplies by 32768 and casts to 16-bit integers: NaN becomes an
arbitrary value and larger samples wrap around to the other sign, both silently).
"""

from __future__ import annotations

import contextlib
import io as _io
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO

import numpy as np

from affectlab import storage
from affectlab.errors import MediaError

__all__ = [
    "AUDIO_EXTENSIONS",
    "MAX_SAMPLE_RATE",
    "MAX_SECONDS",
    "MIN_SAMPLE_RATE",
    "SoundInfo",
    "check_duration",
    "check_sample_rate",
    "check_samples",
    "read_mono",
    "sound_info",
]

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".oga", ".mp3", ".aif", ".aiff", ".au")
MIN_SAMPLE_RATE = 4000  # below this there is no speech band left to analyse
MAX_SAMPLE_RATE = 384000  # the highest rate audio interfaces record at
MAX_SECONDS = 3600.0  # default duration limit: about 0.7 GB of worker memory for eGeMAPS LLDs
PEAK_LIMIT = 1.0 + 1e-6  # float samples beyond +-1 (more than rounding) would wrap in openSMILE
_BLOCK_FRAMES = 1 << 16
_TRUNCATION_SLACK = 16  # bytes a WAV's data chunk may fall short of its declared size (padding)


@dataclass(frozen=True)
class SoundInfo:
    """Header facts of a sound file."""

    sample_rate: int
    channels: int
    frames: int
    subtype: str

    @property
    def duration_s(self) -> float:
        """Length in seconds."""
        return self.frames / self.sample_rate


def check_sample_rate(uri: str, rate: float) -> None:
    """Raise MediaError when ``rate`` is outside :data:`MIN_SAMPLE_RATE` .. :data:`MAX_SAMPLE_RATE`."""
    if not MIN_SAMPLE_RATE <= rate <= MAX_SAMPLE_RATE:
        raise MediaError(f"{uri}: sample rate {rate:g} Hz is outside the supported {MIN_SAMPLE_RATE}-{MAX_SAMPLE_RATE} Hz "
                         "(a damaged header?)")


def check_duration(uri: str, seconds: float, max_seconds: float | None) -> None:
    """Raise MediaError when ``seconds`` exceeds ``max_seconds`` (``None``: no limit)."""
    if max_seconds is not None and seconds > max_seconds:
        raise MediaError(f"{uri}: {seconds / 3600:.2f} h of audio is longer than the {max_seconds:g} s limit; "
                         "raise it with `affectlab preprocess --max-duration SECONDS` (a worker holds the whole "
                         "signal: about 0.7 GB per hour) or cut the file")


def check_samples(uri: str, x: np.ndarray, *, float_input: bool = True) -> None:
    """Raise MediaError when a decoded (mono) signal holds NaN / inf, or float samples beyond +-1."""
    finite = np.isfinite(x)
    if not finite.all():
        bad = int(x.size - np.count_nonzero(finite))
        first = int(np.argmin(finite))
        raise MediaError(f"{uri}: {bad} sample(s) are NaN or infinite (the first at sample {first}); "
                         "openSMILE would turn them into arbitrary values")
    if float_input and x.size:
        peak = float(np.max(np.abs(x)))
        if peak > PEAK_LIMIT:
            raise MediaError(f"{uri}: float samples reach {peak:.6g}, outside [-1, 1] (openSMILE reads 16-bit "
                             "values: they would wrap around); normalise the file or convert it to 16-bit PCM")


@contextlib.contextmanager
def _raw(uri: str) -> Iterator[tuple[BinaryIO, Any]]:
    """A seekable binary handle on the file and what libsndfile should open: the local path (its
    errors then name the format problem), or the downloaded bytes of a remote file."""
    ext = os.path.splitext(uri)[1].lower()
    if ext not in AUDIO_EXTENSIONS:
        from affectlab.features.audio import VIDEO_CONTAINERS

        known = ", ".join(AUDIO_EXTENSIONS + VIDEO_CONTAINERS)
        raise MediaError(f"{uri}: unsupported audio format {ext or '(no extension)'!r}; supported: {known}")
    if storage.is_remote(uri):
        try:
            data = storage.read_bytes(uri)
        except FileNotFoundError as exc:
            raise MediaError(f"{uri}: audio file not found") from exc
        if not data:
            raise MediaError(f"{uri}: empty file (0 bytes)")
        buffer = _io.BytesIO(data)
        yield buffer, buffer
        return
    path = storage.filesystem(uri)[1]
    if os.path.isdir(path):
        raise MediaError(f"{uri}: is a directory, not an audio file")
    if not os.path.isfile(path):
        raise MediaError(f"{uri}: audio file not found" if not os.path.exists(path) else f"{uri}: not a regular file")
    if os.path.getsize(path) == 0:
        raise MediaError(f"{uri}: empty file (0 bytes)")
    with open(path, "rb") as handle:
        yield handle, path


def _wav_data_sizes(raw: BinaryIO) -> tuple[int, int] | None:
    """``(declared, present)`` bytes of a RIFF/WAVE file's ``data`` chunk; None when the file is
    not such a WAV or the writer left the size open (0 or ``0xFFFFFFFF``: a streamed WAV)."""
    raw.seek(0, os.SEEK_END)
    size = raw.tell()
    raw.seek(0)
    head = raw.read(12)
    if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        return None
    pos = 12
    for _ in range(256):  # chunks before `data` (fmt, LIST, fact...): a handful in practice
        raw.seek(pos)
        chunk = raw.read(8)
        if len(chunk) < 8:
            return None
        declared = int.from_bytes(chunk[4:], "little")
        if chunk[:4] == b"data":
            return None if declared in (0, 0xFFFFFFFF) else (declared, size - pos - 8)
        pos += 8 + declared + (declared & 1)
    return None


def _check_header(uri: str, snd: Any, sizes: tuple[int, int] | None, max_seconds: float | None) -> SoundInfo:
    info = SoundInfo(int(snd.samplerate), int(snd.channels), int(snd.frames), str(snd.subtype))
    check_sample_rate(uri, info.sample_rate)
    if info.frames <= 0 or info.channels <= 0:
        raise MediaError(f"{uri}: no audio samples in file")
    check_duration(uri, info.duration_s, max_seconds)
    if sizes is not None and sizes[1] + _TRUNCATION_SLACK < sizes[0]:
        declared, present = sizes
        raise MediaError(f"{uri}: truncated WAV: the header declares {declared} bytes of audio, the file holds "
                         f"{max(present, 0)} ({max(present, 0) / declared:.0%}); an interrupted copy?")
    return info


@contextlib.contextmanager
def _sound(uri: str, max_seconds: float | None) -> Iterator[tuple[Any, SoundInfo]]:
    """The open ``soundfile.SoundFile`` and its checked header (module docstring)."""
    import soundfile as sf

    with _raw(uri) as (raw, source):
        sizes = _wav_data_sizes(raw)  # before libsndfile: it expects a shared handle where it left it
        raw.seek(0)
        try:
            snd = sf.SoundFile(source)
        except Exception as exc:  # noqa: BLE001 - libsndfile raises several types
            reason = getattr(exc, "error_string", None) or str(exc)  # libsndfile's words, without the handle
            if "does not exist or is not a regular file" in reason:  # what it says of data it cannot parse
                reason = "format not recognised"  # (the file exists and is regular: checked above)
            raise MediaError(f"{uri}: cannot decode audio: not a format libsndfile reads, or a damaged header "
                             f"(libsndfile: {reason})") from exc
        with snd:
            yield snd, _check_header(uri, snd, sizes, max_seconds)


def sound_info(uri: str) -> SoundInfo:
    """Header facts of a sound file, checked (module docstring); no sample is decoded.

    Raises:
        MediaError: Missing, empty, unsupported, undecodable, implausible or truncated file.
    """
    with _sound(uri, None) as (_, info):
        return info


def read_mono(uri: str, *, max_seconds: float | None = MAX_SECONDS) -> tuple[np.ndarray, SoundInfo]:
    """Decode a sound file to mono float32 at its own rate (channels averaged), checked.

    Args:
        uri: Local path or ``s3://`` URI.
        max_seconds: Refuse longer files from the header (``None``: no limit).

    Returns:
        ``(signal, info)``: the mono signal and the file's header facts.

    Raises:
        MediaError: Any check of the module docstring fails; the message names the file.
    """
    with _sound(uri, max_seconds) as (snd, info):
        out = np.empty(info.frames, np.float32)
        n = 0
        limit = None if max_seconds is None else int(max_seconds * info.sample_rate)
        try:
            for block in snd.blocks(blocksize=_BLOCK_FRAMES, dtype="float32", always_2d=True):
                x = block[:, 0] if info.channels == 1 else block.mean(axis=1, dtype=np.float32)
                if n + len(x) > len(out):  # the header under-counted (some compressed formats)
                    out = np.concatenate([out[:n], np.empty(max(len(x), len(out) // 2), np.float32)])
                out[n:n + len(x)] = x
                n += len(x)
                if limit is not None and n > limit:
                    check_duration(uri, n / info.sample_rate, max_seconds)
        except MediaError:
            raise
        except Exception as exc:  # noqa: BLE001 - libsndfile raises several types mid-stream
            raise MediaError(f"{uri}: decoding failed after {n} samples ({type(exc).__name__}: {exc})") from exc
    signal = out[:n]
    check_samples(uri, signal, float_input=info.subtype in ("FLOAT", "DOUBLE"))
    return signal, info
