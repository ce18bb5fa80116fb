"""Decoding video frames and audio tracks with PyAV.

Frames are streamed (never the whole clip in memory unless asked): :class:`VideoReader` opens a
local path or ``s3://`` URI, reports the clip's geometry and frame rate, and yields RGB frames
(``H x W x 3`` uint8) at the native rate or resampled to a requested ``fps`` (each output time
takes the most recent decoded frame, so frames are dropped or repeated, never blended).
:func:`decode_audio` extracts a video's (or an audio file's) sound track as mono float32 for the
audio extractors. Every decoding problem surfaces as :class:`~affectlab.errors.MediaError`
naming the file.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from fractions import Fraction
from typing import Any

import numpy as np

from affectlab import storage
from affectlab.errors import MediaError

__all__ = ["VideoReader", "decode_audio", "read_frames"]


def _av_errors() -> tuple[type[BaseException], ...]:
    import av

    return (av.FFmpegError, OSError, ValueError)


def _local(stack: contextlib.ExitStack, uri: str) -> str:
    """A local path for ``uri`` (downloaded for the stack's lifetime when remote)."""
    try:
        return stack.enter_context(storage.local_copy(uri))
    except FileNotFoundError as exc:
        raise MediaError(f"{uri}: file not found") from exc


def _open_container(local_path: str, display: str) -> Any:
    import av

    if not os.path.exists(local_path):
        raise MediaError(f"{display}: file not found")
    if os.path.getsize(local_path) == 0:
        raise MediaError(f"{display}: empty file (0 bytes)")
    try:
        return av.open(local_path)
    except _av_errors() as exc:
        raise MediaError(f"{display}: cannot open as media ({type(exc).__name__}: {exc})") from exc


class VideoReader:
    """A decoded view of one video file; use as a context manager.

    Args:
        uri: Local path or ``s3://`` URI of the video.
        fps: Output frame rate; ``None`` keeps the native rate.

    Attributes:
        native_fps: The stream's average frame rate.
        fps: The output frame rate (``fps`` or ``native_fps``).
        width, height: Frame size in pixels.
        has_audio: Whether the container has an audio stream.

    Raises:
        MediaError: Missing, empty or undecodable file, or no video stream.
    """

    def __init__(self, uri: str, *, fps: float | None = None) -> None:
        if fps is not None and fps <= 0:
            raise MediaError(f"{uri}: requested fps must be positive, got {fps}")
        self.uri = uri
        self._requested_fps = fps
        self._stack = contextlib.ExitStack()
        self._container: Any = None

    def __enter__(self) -> VideoReader:
        try:
            self._open()
        except BaseException:
            self.close()
            raise
        return self

    def _open(self) -> None:
        self._container = _open_container(_local(self._stack, self.uri), self.uri)
        self._stack.callback(self._container.close)
        if not self._container.streams.video:
            raise MediaError(f"{self.uri}: no video stream")
        stream = self._container.streams.video[0]
        stream.thread_type = "AUTO"
        rate = stream.average_rate or stream.guessed_rate or stream.base_rate
        if not rate:
            raise MediaError(f"{self.uri}: video stream has no frame rate")
        self._stream = stream
        self.native_fps = float(Fraction(rate))
        self.fps = float(self._requested_fps or self.native_fps)
        self.width = int(stream.codec_context.width)
        self.height = int(stream.codec_context.height)
        self.has_audio = bool(self._container.streams.audio)

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the container and delete any temporary download."""
        self._stack.close()

    def _decoded(self) -> Iterator[tuple[float, np.ndarray]]:
        """(time in s from the first frame, RGB frame) for every decoded frame."""
        start = None
        try:
            for i, frame in enumerate(self._container.decode(self._stream)):
                t = frame.time if frame.time is not None else i / self.native_fps
                start = t if start is None else start
                yield t - start, frame.to_ndarray(format="rgb24")
        except _av_errors() as exc:
            raise MediaError(f"{self.uri}: decoding failed ({type(exc).__name__}: {exc})") from exc

    def frames(self) -> Iterator[np.ndarray]:
        """Yield RGB frames (H x W x 3 uint8) at :attr:`fps`.

        Raises:
            MediaError: The stream cannot be decoded or holds no frame.
        """
        if self._requested_fps is None:
            n = 0
            for _, image in self._decoded():
                n += 1
                yield image
        else:
            n = yield from _resample(self._decoded(), self.fps, 1.0 / self.native_fps)
        if n == 0:
            raise MediaError(f"{self.uri}: video stream holds no decodable frame")

    def batches(self, size: int) -> Iterator[np.ndarray]:
        """Yield frames in stacked batches (B x H x W x 3, B <= ``size``)."""
        batch: list[np.ndarray] = []
        for image in self.frames():
            batch.append(image)
            if len(batch) == size:
                yield np.stack(batch)
                batch = []
        if batch:
            yield np.stack(batch)


def _resample(
    decoded: Iterator[tuple[float, np.ndarray]], fps: float, last_duration: float
) -> Iterator[np.ndarray]:
    """Resample (time, frame) pairs to ``fps``: output time k/fps shows the latest frame <= it.

    Returns (as the generator's value) the number of frames yielded.
    """
    n = 0
    prev: tuple[float, np.ndarray] | None = None
    for t, image in decoded:
        if prev is not None:
            while n / fps < t - 1e-9:  # output times covered by the previous frame
                yield prev[1]
                n += 1
        prev = (t, image)
    if prev is not None:
        end = prev[0] + last_duration
        while n / fps < end - 1e-9:
            yield prev[1]
            n += 1
    return n


def read_frames(uri: str, *, fps: float | None = None) -> tuple[np.ndarray, float]:
    """Decode a whole clip: ``(frames T x H x W x 3 uint8, fps)``. Meant for short clips and tests."""
    with VideoReader(uri, fps=fps) as reader:
        return np.stack(list(reader.frames())), reader.fps


def _declared_seconds(container: Any, stream: Any) -> float | None:
    """The track's (else the container's) duration from the file's metadata, if it states one."""
    if stream.duration is not None and stream.time_base is not None:
        return float(stream.duration * stream.time_base)
    if container.duration is not None:
        return container.duration / 1_000_000  # av.time_base: microseconds
    return None


def decode_audio(uri: str, *, sample_rate: int | None = None, max_seconds: float | None = None) -> tuple[np.ndarray, int]:
    """Decode the first audio track of a video or audio file as mono float32.

    Args:
        uri: Local path or ``s3://`` URI (mp4, mkv, webm, wav, ...).
        sample_rate: Resample to this rate; ``None`` keeps the track's rate.
        max_seconds: Refuse a longer track: from the metadata before decoding, and while decoding
            (metadata can be missing or wrong), so memory stays bounded. ``None``: no limit.

    Returns:
        ``(samples, sample_rate)``: a 1-D float32 array in [-1, 1] and its rate in Hz.

    Raises:
        MediaError: Missing/empty/corrupt file, ``no audio track``, an empty or too long track.
    """
    import av

    from affectlab.features.sound import check_duration

    with contextlib.ExitStack() as stack:
        container = stack.enter_context(_open_container(_local(stack, uri), uri))
        if not container.streams.audio:
            raise MediaError(f"{uri}: no audio track")
        stream = container.streams.audio[0]
        declared = _declared_seconds(container, stream)
        if declared is not None:
            check_duration(uri, declared, max_seconds)
        rate = int(sample_rate or stream.rate or stream.codec_context.sample_rate)
        if rate <= 0:
            raise MediaError(f"{uri}: the audio track states no sample rate")
        limit = None if max_seconds is None else int(max_seconds * rate)
        resampler = av.AudioResampler(format="flt", layout="mono", rate=rate)
        chunks: list[np.ndarray] = []
        n = 0
        try:
            for frame in container.decode(stream):
                for f in resampler.resample(frame):
                    chunks.append(f.to_ndarray().reshape(-1))
                    n += len(chunks[-1])
                if limit is not None and n > limit:
                    check_duration(uri, n / rate, max_seconds)
            chunks.extend(f.to_ndarray().reshape(-1) for f in resampler.resample(None))
        except _av_errors() as exc:
            raise MediaError(f"{uri}: audio decoding failed ({type(exc).__name__}: {exc})") from exc
    if not chunks or sum(len(c) for c in chunks) == 0:
        raise MediaError(f"{uri}: audio track holds no samples")
    return np.concatenate(chunks).astype(np.float32, copy=False), rate

