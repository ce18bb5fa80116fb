"""Deterministic MP4 writing with PyAV (H.264 video, optional AAC audio).

Byte-identical output for identical input (with the same PyAV/FFmpeg build): the x264 encoder
runs single-threaded (its multi-threaded modes may decide differently run to run) and without
macroblock-tree rate control (with it, PyAV 18's x264 wrote different bytes for the same frames
in about half of repeated encodes within one process, depending on earlier allocations), and the
``bitexact`` format and codec flags keep FFmpeg from writing its version string. The x264
version string that x264 itself embeds is part of the bytes, so files from different PyAV
wheels differ while their decoded frames stay close.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["even_frame_size", "read_mp4", "write_mp4"]

AUDIO_FRAME = 1024  # samples per AAC frame


def write_mp4(
    path: str,
    frames: np.ndarray,
    *,
    fps: int = 25,
    audio: np.ndarray | None = None,
    sample_rate: int = 16000,
    crf: int = 12,
) -> None:
    """Write RGB ``frames`` (T, H, W, 3) uint8 as H.264 (yuv420p) MP4, with mono AAC ``audio``.

    Args:
        path: Output file.
        frames: Video frames; H and W must be even.
        fps: Frame rate.
        audio: Optional float waveform in [-1, 1] at ``sample_rate``.
        sample_rate: Audio sample rate.
        crf: x264 constant rate factor (lower is better quality; 12 is visually lossless).
    """
    import av

    bitexact = av.codec.context.Flags.bitexact
    with av.open(path, "w", format="mp4", options={"fflags": "+bitexact"}) as container:
        video = container.add_stream("libx264", rate=fps)
        video.width, video.height = int(frames.shape[2]), int(frames.shape[1])
        video.pix_fmt = "yuv420p"
        # mbtree=0: x264's macroblock-tree rate control gave different bytes run to run here
        video.options = {"crf": str(crf), "preset": "veryfast", "threads": "1", "x264-params": "mbtree=0"}
        video.codec_context.thread_count = 1
        video.codec_context.flags |= bitexact
        sound = None
        if audio is not None:
            sound = container.add_stream("aac", rate=sample_rate)
            sound.layout = "mono"
            sound.codec_context.flags |= bitexact
        for i, frame in enumerate(frames):
            vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
            vf.pts = i
            container.mux(video.encode(vf))
        container.mux(video.encode(None))
        if sound is not None:
            _encode_audio(container, sound, np.asarray(audio, dtype=np.float32), sample_rate)


def _encode_audio(container: Any, stream: Any, audio: np.ndarray, sample_rate: int) -> None:
    import av

    for start in range(0, len(audio), AUDIO_FRAME):
        chunk = np.ascontiguousarray(audio[None, start : start + AUDIO_FRAME])
        af = av.AudioFrame.from_ndarray(chunk, format="fltp", layout="mono")
        af.sample_rate = sample_rate
        af.pts = start
        container.mux(stream.encode(af))
    container.mux(stream.encode(None))


def read_mp4(path: str) -> tuple[np.ndarray, np.ndarray | None]:
    """Decode an MP4 into RGB frames (T, H, W, 3) uint8 and its first audio track (or None)."""
    import av

    with av.open(path) as container:
        frames = np.stack([f.to_ndarray(format="rgb24") for f in container.decode(video=0)])
    audio = None
    with av.open(path) as container:
        if container.streams.audio:
            audio = np.concatenate([f.to_ndarray()[0] for f in container.decode(audio=0)])
    return frames, audio


def even_frame_size(value: int) -> int:
    """``value`` when even (H.264 with 4:2:0 chroma needs even frame sides).

    Raises:
        ValueError: An odd size (pydantic reports it under the option's name).
    """
    if value % 2:
        raise ValueError(f"size must be even (H.264 4:2:0), got {value}")
    return value
