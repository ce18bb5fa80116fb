"""openSMILE extractors: exact parity with opensmile.Smile, decoding, bad input, F0."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import opensmile
import pytest
import soundfile as sf
from scipy.signal import resample_poly

from affectlab.errors import ConfigError, MediaError, RegistryError
from affectlab.features.audio import (
    OpenSmileExtractor,
    n_feature_frames,
    read_audio,
    read_audio_info,
    resampled_length,
    semitones_to_hz,
)

SR = 16000


def _voice(seconds: float, sr: int = SR, f0: float = 150.0, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    freq = f0 * (1 + 0.1 * np.sin(2 * np.pi * 0.7 * t))
    phase = 2 * np.pi * np.cumsum(freq) / sr
    x = sum(np.sin(k * phase) / k for k in range(1, 6)) * 0.2 + 0.003 * rng.standard_normal(len(t))
    return x.astype(np.float32)


def _smile(level: str, feature_set: str = "eGeMAPSv02") -> opensmile.Smile:
    return opensmile.Smile(feature_set=getattr(opensmile.FeatureSet, feature_set),
                           feature_level=getattr(opensmile.FeatureLevel, level))


def _row(path: Path | str) -> dict[str, str]:
    return {"sample_id": "x1", "subject": "s1", "audio_path": str(path)}


@pytest.fixture(scope="module")
def egemaps() -> OpenSmileExtractor:
    return OpenSmileExtractor("egemaps")


@pytest.fixture(scope="module")
def wav16(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("audio") / "voice.wav"
    sf.write(path, _voice(1.7), SR, subtype="PCM_16")
    return path


def test_egemaps_values_are_exactly_opensmile_process_file(egemaps: OpenSmileExtractor, wav16: Path) -> None:
    out = egemaps.process(_row(wav16))
    reference = _smile("LowLevelDescriptors").process_file(str(wav16))
    assert out["features"].dtype == np.float32
    np.testing.assert_array_equal(out["features"], reference.to_numpy())
    assert egemaps.names == list(reference.columns)
    assert out["n_frames"] == len(reference) == n_feature_frames(len(_voice(1.7)))
    st = reference["F0semitoneFrom27.5Hz_sma3nz"].to_numpy()
    expected_hz = np.where(st > 0, np.clip(27.5 * 2 ** (st.astype(np.float64) / 12), 50, 550), 0)
    np.testing.assert_allclose(out["f0_hz"], expected_hz, rtol=1e-6)
    voiced = out["f0_hz"] > 0
    assert voiced.mean() > 0.5 and abs(np.median(out["f0_hz"][voiced]) - 150) < 15
    assert (out["f0_id"][~voiced] == 2).all() and (out["f0_id"][voiced] >= 3).all()


def test_compare_with_deltas_is_the_130_dim_set(wav16: Path) -> None:
    out = OpenSmileExtractor("compare", deltas=True).process(_row(wav16))
    lld = _smile("LowLevelDescriptors", "ComParE_2016").process_file(str(wav16)).to_numpy()
    deltas = _smile("LowLevelDescriptors_Deltas", "ComParE_2016").process_file(str(wav16)).to_numpy()
    assert out["features"].shape == (len(lld), 130)
    np.testing.assert_array_equal(out["features"][:, :65], lld)
    np.testing.assert_array_equal(out["features"][:, 65:], deltas[: len(lld)])


def test_functionals_give_one_row(wav16: Path) -> None:
    out = OpenSmileExtractor("egemaps_functionals").process(_row(wav16))
    reference = _smile("Functionals").process_file(str(wav16)).to_numpy()
    assert out["features"].shape == (1, 88) and out["n_frames"] == 1
    np.testing.assert_array_equal(out["features"], reference)


def test_other_rates_and_channels_are_mixed_and_resampled(egemaps: OpenSmileExtractor, tmp_path: Path) -> None:
    left, right = _voice(1.2, 44100, 140, seed=1), _voice(1.2, 44100, 140, seed=2)
    path = tmp_path / "stereo44k.wav"
    sf.write(path, np.stack([left, right], axis=1), 44100, subtype="FLOAT")
    signal, info = read_audio(str(path))
    assert info["converted"] and info["sample_rate"] == 44100 and info["channels"] == 2
    decoded, _ = sf.read(path, dtype="float32", always_2d=True)
    expected = resample_poly(decoded.mean(axis=1, dtype=np.float32), 160, 441).astype(np.float32)
    np.testing.assert_array_equal(signal, expected)
    assert len(signal) == resampled_length(len(left), 44100)
    out = egemaps.process(_row(path))
    reference = _smile("LowLevelDescriptors").process_signal(expected, SR).to_numpy()
    np.testing.assert_array_equal(out["features"], reference)
    assert out["sample_rate_hz"] == 44100 and out["channels"] == 2


def test_silence_is_not_an_error(egemaps: OpenSmileExtractor, tmp_path: Path) -> None:
    path = tmp_path / "silence.wav"
    sf.write(path, np.zeros(SR, np.float32), SR, subtype="PCM_16")
    out = egemaps.process(_row(path))
    assert out["n_frames"] == n_feature_frames(SR)
    assert (out["f0_hz"] == 0).all() and (out["f0_id"] == 2).all()


@pytest.mark.parametrize("n", [960, 1000, 1759, 16047, 23999])
def test_frame_count_formula_matches_opensmile(n: int) -> None:
    x = _voice(n / SR)[:n]
    assert len(x) == n
    for feature_set in ("eGeMAPSv02", "ComParE_2016"):
        assert len(_smile("LowLevelDescriptors", feature_set).process_signal(x, SR)) == n_feature_frames(n)


def _bad_files(tmp: Path) -> dict[str, tuple[Path, str]]:
    good = tmp / "good.wav"
    sf.write(good, _voice(0.5), SR, subtype="PCM_16")
    data = good.read_bytes()
    files = {
        "zero_bytes": (tmp / "zero.wav", b""),
        "truncated_header": (tmp / "trunc.wav", data[:30]),
        "not_audio": (tmp / "junk.wav", os.urandom(4000)),
        "text_named_wav": (tmp / "text.wav", b"hello, this is not audio\n" * 40),
        "unsupported_ext": (tmp / "clip.xyz", data),
        "text_file": (tmp / "notes.txt", b"plain text"),
    }
    for path, content in files.values():
        path.write_bytes(content)
    short = tmp / "short.wav"
    sf.write(short, _voice(0.03), SR, subtype="PCM_16")
    reasons = {
        "zero_bytes": "empty file", "truncated_header": "cannot decode", "not_audio": "cannot decode",
        "text_named_wav": "cannot decode", "unsupported_ext": "unsupported audio format", "text_file": "unsupported audio format",
    }
    out = {k: (p, reasons[k]) for k, (p, _) in files.items()}
    out["too_short"] = (short, "too short")
    out["missing"] = (tmp / "nope.wav", "not found")
    return out


def test_bad_inputs_raise_media_errors_naming_the_file(egemaps: OpenSmileExtractor, tmp_path: Path) -> None:
    for case, (path, reason) in _bad_files(tmp_path).items():
        with pytest.raises(MediaError, match=reason) as info:
            egemaps.process(_row(path))
        assert str(path) in str(info.value), case
    with pytest.raises(MediaError, match="not found"):
        read_audio_info(str(tmp_path / "missing.wav"))


def test_describe_validates_options() -> None:
    with pytest.raises(RegistryError, match="egemaps"):
        OpenSmileExtractor.describe("gemaps")
    with pytest.raises(ConfigError, match="deltas"):
        OpenSmileExtractor.describe("egemaps", deltas=True)
    with pytest.raises(ConfigError, match="f0_step"):
        OpenSmileExtractor.describe("egemaps", f0_step=7.0)
    a = OpenSmileExtractor.describe("compare")
    b = OpenSmileExtractor.describe("compare", deltas=True)
    assert a["params"] != b["params"] and a["params"]["opensmile"] == opensmile.__version__


def test_semitones_to_hz() -> None:
    np.testing.assert_allclose(semitones_to_hz(np.array([0.0, 12.0, 24.0, -1.0])), [0, 55.0, 110.0, 0])


def test_audio_track_of_a_video_container(egemaps: OpenSmileExtractor, tmp_path: Path) -> None:
    from affectlab.data.synth.video import write_mp4

    frames = np.zeros((25, 32, 32, 3), np.uint8)
    write_mp4(str(tmp_path / "clip.mp4"), frames, fps=25, audio=_voice(1.0, 16000, 180), sample_rate=16000)
    out = egemaps.process(_row(tmp_path / "clip.mp4"))
    assert out["duration_s"] == pytest.approx(1.0, abs=0.1)
    voiced = out["f0_hz"] > 0
    assert voiced.mean() > 0.5 and abs(np.median(out["f0_hz"][voiced]) - 180) < 20
    write_mp4(str(tmp_path / "mute.mp4"), frames, fps=25)
    with pytest.raises(MediaError, match="no audio track"):
        egemaps.process(_row(tmp_path / "mute.mp4"))
