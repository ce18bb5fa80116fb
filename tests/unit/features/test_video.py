"""PyAV decoding: frames at native or resampled fps, audio tracks, bad files, s3 inputs."""

from __future__ import annotations

import os

import numpy as np
import pytest

from affectlab import storage
from affectlab.data.synth.video import write_mp4
from affectlab.errors import MediaError
from affectlab.features.video import VideoReader, decode_audio, read_frames


def _frames(n: int = 20, size: int = 64) -> np.ndarray:
    """Smooth gradients with a bright square moving 2 px per frame (codec friendly, frames distinct)."""
    yy, xx = np.mgrid[0:size, 0:size]
    base = np.stack([xx * 3, yy * 3, (xx + yy) * 2], axis=-1).clip(0, 255).astype(np.uint8)
    out = np.repeat(base[None], n, axis=0)
    for i in range(n):
        out[i, 20:36, 2 * i : 2 * i + 16] = 250
    return out


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("clips")
    tone = (0.3 * np.sin(2 * np.pi * 440 * np.arange(16000) / 16000)).astype(np.float32)
    paths = {name: str(root / f"{name}.mp4") for name in ("av", "silent", "empty", "corrupt", "truncated")}
    write_mp4(paths["av"], _frames(), fps=25, audio=tone, sample_rate=16000)
    write_mp4(paths["silent"], _frames(), fps=25)
    open(paths["empty"], "wb").close()
    with open(paths["corrupt"], "wb") as f:
        f.write(np.random.default_rng(1).bytes(4000))
    with open(paths["av"], "rb") as f:
        data = f.read()
    with open(paths["truncated"], "wb") as f:
        f.write(data[: len(data) // 2])
    return paths


def test_native_rate_frames_match_the_encoded_ones(clips: dict[str, str]) -> None:
    frames, fps = read_frames(clips["av"])
    assert fps == 25.0 and frames.shape == (20, 64, 64, 3) and frames.dtype == np.uint8
    assert np.abs(frames.astype(int) - _frames().astype(int)).mean() < 12  # lossy codec
    with VideoReader(clips["av"]) as reader:
        assert (reader.width, reader.height, reader.has_audio) == (64, 64, True)
        sizes = [len(b) for b in reader.batches(8)]
    assert sizes == [8, 8, 4]


@pytest.mark.parametrize(("fps", "expected"), [(10.0, 8), (50.0, 40), (25.0, 20)])
def test_resampling_drops_or_repeats_frames(clips: dict[str, str], fps: float, expected: int) -> None:
    frames, out_fps = read_frames(clips["av"], fps=fps)
    assert out_fps == fps and len(frames) == expected
    native, _ = read_frames(clips["av"])
    if fps == 50.0:  # each native frame shown twice, in order
        np.testing.assert_array_equal(frames[0::2], native)
        np.testing.assert_array_equal(frames[1::2], native)
    if fps == 10.0:  # output time k/10 s shows native frame floor(2.5 k)
        np.testing.assert_array_equal(frames, native[(np.arange(8) * 2.5).astype(int)])


def test_decode_audio_mono_float32(clips: dict[str, str]) -> None:
    audio, sr = decode_audio(clips["av"])
    assert sr == 16000 and audio.dtype == np.float32 and audio.ndim == 1
    assert 16000 <= len(audio) <= 16000 + 2048  # AAC priming/padding
    assert 0.25 < np.abs(audio).max() < 0.35
    spectrum = np.abs(np.fft.rfft(audio[2048:10240]))
    assert abs(np.argmax(spectrum) * 16000 / 8192 - 440) < 5
    down, sr8 = decode_audio(clips["av"], sample_rate=8000)
    assert sr8 == 8000 and abs(len(down) - len(audio) / 2) < 600


def test_missing_audio_track(clips: dict[str, str]) -> None:
    with pytest.raises(MediaError, match="no audio track"):
        decode_audio(clips["silent"])


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("empty", "empty file"),
        ("corrupt", "cannot open"),
        ("truncated", "cannot open|decoding failed"),
        ("nope", "not found"),
    ],
)
def test_bad_files_raise_media_errors_naming_the_file(clips: dict[str, str], name: str, message: str) -> None:
    path = clips.get(name, os.path.join(os.path.dirname(clips["av"]), "nope.mp4"))
    with pytest.raises(MediaError, match=message) as info:
        read_frames(path)
    assert os.path.basename(path) in str(info.value)
    with pytest.raises(MediaError):
        decode_audio(path)


def test_audio_only_file_has_no_video_stream(tmp_path) -> None:  # noqa: ANN001
    import soundfile

    path = str(tmp_path / "tone.wav")
    soundfile.write(path, np.zeros(1600, np.float32), 16000)
    with pytest.raises(MediaError, match="no video stream"):
        read_frames(path)
    audio, sr = decode_audio(path)
    assert sr == 16000 and len(audio) == 1600


def test_bad_fps_is_rejected(clips: dict[str, str]) -> None:
    with pytest.raises(MediaError, match="fps must be positive"):
        VideoReader(clips["av"], fps=0)


def test_reads_from_s3(clips: dict[str, str], s3_bucket: str) -> None:
    uri = f"{s3_bucket}/videos/av.mp4"
    with open(clips["av"], "rb") as f:
        storage.write_bytes(uri, f.read())
    frames, fps = read_frames(uri, fps=10)
    assert frames.shape == (8, 64, 64, 3) and fps == 10
    audio, sr = decode_audio(uri)
    assert sr == 16000 and len(audio) >= 16000
    with pytest.raises(MediaError, match="not found"):
        read_frames(f"{s3_bucket}/videos/missing.mp4")
