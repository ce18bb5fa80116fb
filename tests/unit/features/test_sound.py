"""Defensive sound decoding (affectlab.features.sound): broken and hostile files are refused with a
message naming the file, before anything large is read; plausible ones decode exactly."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from affectlab.errors import ConfigError, MediaError
from affectlab.features.audio import INT16_MAX_FLOAT, OpenSmileExtractor, read_audio
from affectlab.features.sound import read_mono, sound_info

SR = 16000


def _tone(seconds: float, sr: int = SR, amplitude: float = 0.3) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    return (amplitude * np.sin(2 * np.pi * 220 * t)).astype(np.float32)


def _wav(path: Path, x: np.ndarray, sr: int = SR, subtype: str = "PCM_16") -> Path:
    sf.write(path, x, sr, subtype=subtype, format="WAV")
    return path


def _set_rate(path: Path, rate: int) -> None:
    data = bytearray(path.read_bytes())
    data[24:28] = rate.to_bytes(4, "little")
    path.write_bytes(bytes(data))


def test_truncated_wav_is_refused_and_a_streamed_one_is_read(tmp_path: Path) -> None:
    data = _wav(tmp_path / "full.wav", _tone(1.0)).read_bytes()
    cut = tmp_path / "cut.wav"
    cut.write_bytes(data[: 44 + 8000])
    with pytest.raises(MediaError, match=r"cut\.wav: truncated WAV: the header declares 32000 bytes.*holds 8000"):
        read_mono(str(cut))
    streamed = tmp_path / "streamed.wav"  # a writer that did not know the length: size 0xFFFFFFFF
    streamed.write_bytes(data[:40] + (0xFFFFFFFF).to_bytes(4, "little") + data[44:])
    assert len(read_mono(str(streamed))[0]) == SR


@pytest.mark.parametrize("rate", [3, 2_000_000_000])
def test_implausible_header_rates_are_refused_before_decoding(tmp_path: Path, rate: int) -> None:
    path = _wav(tmp_path / "r.wav", _tone(0.5))
    _set_rate(path, rate)
    with pytest.raises(MediaError, match=r"r\.wav: sample rate .* is outside the supported 4000-384000 Hz"):
        read_audio(str(path))


def test_duration_limit_is_checked_from_the_header_of_a_sparse_file(tmp_path: Path) -> None:
    path = tmp_path / "long.wav"
    frames = 3 * 3600 * SR
    header = _wav(tmp_path / "h.wav", np.zeros(1, np.float32)).read_bytes()[:44]
    header = header[:4] + (36 + 2 * frames).to_bytes(4, "little") + header[8:40] + (2 * frames).to_bytes(4, "little")
    with open(path, "wb") as fh:
        fh.write(header)
        fh.truncate(44 + 2 * frames)  # 345 MB, sparse
    assert sound_info(str(path)).duration_s == 3 * 3600
    with pytest.raises(MediaError, match=r"long\.wav: 3\.00 h of audio is longer than the 3600 s limit.*--max-duration"):
        read_audio(str(path))
    short = _wav(tmp_path / "two.wav", _tone(2.0))
    with pytest.raises(MediaError, match="longer than the 1 s limit"):
        read_audio(str(short), max_seconds=1)
    assert len(read_audio(str(short), max_seconds=None)[0]) == 2 * SR


def test_nan_and_out_of_range_float_samples_are_refused(tmp_path: Path) -> None:
    x = _tone(0.5)
    x[100:110] = np.nan
    with pytest.raises(MediaError, match=r"nan\.wav: 10 sample\(s\) are NaN or infinite \(the first at sample 100\)"):
        read_audio(str(_wav(tmp_path / "nan.wav", x, subtype="FLOAT")))
    with pytest.raises(MediaError, match=r"hot\.wav: float samples reach 9830.*outside \[-1, 1\]"):
        read_audio(str(_wav(tmp_path / "hot.wav", _tone(0.5) * 32767, subtype="FLOAT")))


def test_full_scale_is_clipped_to_the_16_bit_range_openSMILE_reads(tmp_path: Path) -> None:
    # float 1.0 would become 32768 and wrap to -32768 in openSMILE's int16 cast; resampling a
    # full-scale square wave overshoots 1.0 (Gibbs)
    square = np.sign(np.sin(2 * np.pi * 300 * np.arange(44100) / 44100)).astype(np.float32)
    signal, info = read_audio(str(_wav(tmp_path / "square.wav", square, 44100, subtype="FLOAT")))
    assert info["converted"] and signal.max() <= INT16_MAX_FLOAT and signal.min() >= -1.0


def test_many_channels_are_averaged_block_by_block_exactly(tmp_path: Path) -> None:
    x = np.stack([_tone(1.5, amplitude=0.1 * (c + 1)) for c in range(6)], axis=1)
    path = _wav(tmp_path / "six.wav", x)
    signal, info = read_mono(str(path))
    decoded, _ = sf.read(path, dtype="float32", always_2d=True)
    np.testing.assert_array_equal(signal, decoded.mean(axis=1, dtype=np.float32))
    assert info.channels == 6


def test_a_directory_named_like_audio_is_named_as_such(tmp_path: Path) -> None:
    (tmp_path / "dir.wav").mkdir()
    with pytest.raises(MediaError, match=r"dir\.wav: is a directory"):
        read_audio(str(tmp_path / "dir.wav"))


def test_max_seconds_is_validated_and_not_part_of_the_set_version() -> None:
    assert OpenSmileExtractor.describe("egemaps", max_seconds=60) == OpenSmileExtractor.describe("egemaps")
    assert OpenSmileExtractor.describe("egemaps", max_seconds=None)["params"] == OpenSmileExtractor.describe()["params"]
    for bad in (0, -5, float("nan"), "long"):
        with pytest.raises(ConfigError, match="max_seconds"):
            OpenSmileExtractor.describe("egemaps", max_seconds=bad)


def test_video_track_longer_than_the_limit_is_refused(tmp_path: Path) -> None:
    from affectlab.data.synth.video import write_mp4
    from affectlab.features.video import decode_audio

    path = str(tmp_path / "clip.mp4")
    write_mp4(path, np.zeros((25, 32, 32, 3), np.uint8), fps=25, audio=_tone(1.0), sample_rate=SR)
    with pytest.raises(MediaError, match=r"clip\.mp4: .* longer than the 0\.5 s limit"):
        decode_audio(path, max_seconds=0.5)
    assert len(decode_audio(path, max_seconds=5)[0]) >= SR
