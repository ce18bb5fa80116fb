"""The planted relations are present in the written files, and the shuffled control removes them.

Drivers are recomputed here from what a user gets (the saved F0 track, the wav, the decoded mp4),
not taken from the generator, so a broken synthesizer or writer makes these tests fail.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf
import yaml

from affectlab.data.synth import generate
from affectlab.data.synth.face_render import FACE_AUS, random_identity, render_faces
from affectlab.data.synth.faces import PROTOTYPES
from affectlab.data.synth.speech_au import AUS
from affectlab.data.synth.video import read_mp4


def _corr(x: list[np.ndarray], y: list[np.ndarray]) -> float:
    return float(np.corrcoef(np.concatenate(x), np.concatenate(y))[0, 1])


def _delay(x: np.ndarray, frames: int) -> np.ndarray:
    return np.concatenate([np.zeros(frames), x[: len(x) - frames]])


def _f0_rise_driver(f0: np.ndarray, lag: int) -> np.ndarray:
    """Positive F0 slope (st/s) from a 100 Hz F0 track, near voicing, delayed, averaged to 25 Hz."""
    voiced = np.flatnonzero(f0 > 0)
    st = 12 * np.log2(np.interp(np.arange(len(f0)), voiced, f0[voiced]))
    rise = np.maximum(np.diff(st, prepend=st[0]) * 100, 0)
    near_voice = np.convolve((f0 > 0).astype(float), np.ones(31), "same") > 0
    rise = np.convolve(rise * near_voice, np.ones(20) / 20, "same")
    return _delay(rise, lag).reshape(-1, 4).mean(axis=1)


def _loudness_driver(audio: np.ndarray, lag: int) -> np.ndarray:
    """RMS per 10 ms, 300 ms moving average, delayed, averaged to 25 Hz."""
    rms = np.sqrt((audio.reshape(-1, 160) ** 2).mean(axis=1))
    return _delay(np.convolve(rms, np.ones(30) / 30, "same"), lag).reshape(-1, 4).mean(axis=1)


@pytest.fixture(scope="module")
def speech(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("speech")
    return {
        rel: Path(generate("speech-au", str(root / rel), subjects=4, items=5, seed=1, relation=rel,
                           min_duration_s=2.0, max_duration_s=3.0)).parent
        for rel in ("planted", "shuffled")
    }


def _speech_pairs(root: Path, au: str) -> tuple[list[np.ndarray], list[np.ndarray]]:
    lag = yaml.safe_load((root / "dataset.yaml").read_text())["planted"]["aus"][au]["lag_ms"] // 10
    drivers, labels = [], []
    for row in pd.read_csv(root / "manifest.csv").to_dict("records"):
        labels.append(pd.read_csv(root / row["labels"])[au].to_numpy())
        if au == "AU01":
            f0 = pd.read_csv(root / "f0" / row["subject"] / f"{row['sample_id']}.csv")["f0_hz"].to_numpy()
            drivers.append(_f0_rise_driver(f0, lag))
        else:
            drivers.append(_loudness_driver(sf.read(root / row["audio"])[0], lag))
    return drivers, labels


@pytest.mark.parametrize("au", ["AU01", "AU12"])
def test_speech_au_labels_follow_prosody_and_shuffling_removes_it(speech: dict[str, Path], au: str) -> None:
    planted = _corr(*_speech_pairs(speech["planted"], au))
    shuffled = _corr(*_speech_pairs(speech["shuffled"], au))
    assert planted > 0.5, f"{au}: planted correlation {planted:.2f}"
    assert abs(shuffled) < 0.2, f"{au}: shuffled correlation {shuffled:.2f}"


def test_speech_au_activity_is_episodic_with_every_phase_class(speech: dict[str, Path]) -> None:
    from affectlab.data.labels import au_phases

    root = speech["planted"]
    seqs = [pd.read_csv(root / p)[list(AUS)].to_numpy() for p in pd.read_csv(root / "manifest.csv")["labels"]]
    phases = [au_phases(np.round(s, 1)) for s in seqs]
    n_frames = sum(len(s) for s in seqs)
    share = {c: sum((p[c] == 1).sum(axis=0) for p in phases) / n_frames for c in ("onset", "apex", "offset")}
    occurrence = np.concatenate(seqs).__gt__(0).mean(axis=0)
    assert ((occurrence > 0.2) & (occurrence < 0.75)).all(), dict(zip(AUS, occurrence.round(2), strict=True))
    for cls, values in share.items():
        assert (values > 0.02).all(), (cls, dict(zip(AUS, values.round(3), strict=True)))


def test_faces_labels_follow_the_prototypes() -> None:
    from affectlab.data.synth.faces import clip_aus, valence_arousal

    rng = np.random.default_rng(0)
    for emotion, proto in PROTOTYPES.items():
        aus = clip_aus(rng, emotion, 50)
        peak = dict(zip(FACE_AUS, aus.max(axis=0), strict=True))
        assert all(peak[a] >= 1.5 for a, w in proto.items() if w >= 0.8), (emotion, peak)
        assert all(v <= 1.3 for a, v in peak.items() if a not in proto), (emotion, peak)
        apex = aus.max(axis=1) >= 0.9 * aus.max() if aus.max() > 0 else slice(None)
        valence = valence_arousal(rng, aus)[apex, 0].mean()
        if emotion == "happiness":
            assert valence > 0.5
        if emotion in ("sadness", "anger", "fear"):
            assert valence < -0.3


@pytest.mark.parametrize(("au", "region"), [("AU01", "upper"), ("AU02", "upper"), ("AU04", "upper"),
                                            ("AU12", "lower"), ("AU15", "lower"), ("AU25", "lower")])
def test_face_geometry_moves_where_the_au_acts(au: str, region: str) -> None:
    ident = random_identity(np.random.default_rng(3))
    aus = np.zeros((2, len(FACE_AUS)))
    aus[1, FACE_AUS.index(au)] = 5.0
    frames = render_faces(ident, aus, 64, np.zeros((2, 2)), np.ones(2)).astype(int)
    changed = np.abs(frames[1] - frames[0]).sum(axis=2) > 30
    rows = np.flatnonzero(changed.any(axis=1))
    assert changed.sum() >= 10, "the AU changed almost nothing"
    if region == "upper":
        assert rows.max() < 32
    else:
        assert rows.min() >= 32


def test_faces_shuffled_keeps_videos_and_moves_labels(tmp_path: Path) -> None:
    kw = {"subjects": 2, "items": 3, "seed": 4, "size": 28, "frames": 10}
    a = Path(generate("faces", str(tmp_path / "p"), relation="planted", **kw)).parent
    b = Path(generate("faces", str(tmp_path / "s"), relation="shuffled", **kw)).parent
    ma, mb = pd.read_csv(a / "manifest.csv"), pd.read_csv(b / "manifest.csv")
    assert sorted(ma["emotion"]) == sorted(mb["emotion"]) and (ma["emotion"] != mb["emotion"]).any()
    for va, vb, la, lb in zip(ma["video"], mb["video"], ma["labels"], mb["labels"], strict=True):
        assert (a / va).read_bytes() == (b / vb).read_bytes()
        assert (a / la).read_bytes() != (b / lb).read_bytes()


def _mouth_vs_loudness(root: Path) -> float:
    darkness, loudness = [], []
    for mp4 in sorted(root.glob("s*/*.mp4")):
        frames, audio = read_mp4(str(mp4))
        n = len(frames)
        size = frames.shape[1]  # mouth at about (0.51, 0.59) of the frame (see talking_face.MOUTH)
        box = frames[:, int(0.53 * size) : int(0.68 * size), int(0.42 * size) : int(0.6 * size)]
        darkness.append(-box.mean(axis=(1, 2, 3)))
        audio = np.pad(audio, (0, max(0, n * 640 - len(audio))))[: n * 640]
        loudness.append(np.sqrt((audio.reshape(n, 640) ** 2).mean(axis=1)))
    return _corr(darkness, loudness)


def test_talking_face_mouth_follows_the_audio_and_shuffling_removes_it(tmp_path: Path) -> None:
    kw = {"subjects": 1, "items": 4, "seed": 2, "size": 96, "min_duration_s": 1.5, "max_duration_s": 2.0}
    planted = _mouth_vs_loudness(Path(generate("talking-face", str(tmp_path / "p"), **kw)).parent)
    control = generate("talking-face", str(tmp_path / "s"), relation="shuffled", **kw)
    shuffled = _mouth_vs_loudness(Path(control).parent)
    assert planted > 0.5, planted
    assert abs(shuffled) < 0.3, shuffled


def test_ravdess_emotion_is_in_the_prosody(tmp_path: Path) -> None:
    root = Path(generate("ravdess", str(tmp_path / "r"), subjects=2, items=8, seed=0)).parent
    for actor in ("01", "02"):
        rms, dur = {}, {}
        for path in (root / f"Actor_{actor}").glob("*.wav"):
            audio, sr = sf.read(path)
            emotion = int(path.name.split("-")[2])
            rms[emotion], dur[emotion] = np.sqrt(np.mean(audio**2)), len(audio) / sr
        assert len(rms) == 8
        assert rms[5] > 2.0 * rms[4], "angry should be much louder than sad"
        assert dur[4] > dur[6], "sad should be slower (longer) than fearful"


def test_lma_features_follow_pad_and_shuffling_removes_it(tmp_path: Path) -> None:
    speeds = ["l_hand_speed", "r_hand_speed", "l_foot_speed", "r_foot_speed", "neck_speed"]
    result = {}
    for rel in ("planted", "shuffled"):
        root = Path(generate("lma", str(tmp_path / rel), subjects=3, items=30, seed=0, relation=rel)).parent
        table = pd.read_csv(root / "lma_features.csv")
        result[rel] = np.corrcoef(table[speeds].mean(axis=1), table["arousal"])[0, 1]
    assert result["planted"] > 0.8 and abs(result["shuffled"]) < 0.3, result


def test_talking_face_frames_show_a_detectable_face_with_the_mouth_where_expected(tmp_path: Path) -> None:
    import importlib.util

    dlib = pytest.importorskip("dlib")
    spec = importlib.util.find_spec("face_recognition_models")  # importing it needs pkg_resources
    if spec is None or spec.origin is None:
        pytest.skip("face_recognition_models is not installed")
    models = Path(spec.origin).parent / "models"
    predictor = dlib.shape_predictor(str(models / "shape_predictor_68_face_landmarks.dat"))
    kw = {"subjects": 1, "items": 1, "seed": 0, "size": 160, "min_duration_s": 0.5, "max_duration_s": 0.5}
    root = Path(generate("talking-face", str(tmp_path / "tf"), **kw)).parent
    frame = read_mp4(str(next(root.glob("s01/*.mp4"))))[0][0]
    faces = dlib.get_frontal_face_detector()(frame, 1)
    assert len(faces) == 1
    points = np.array([[p.x, p.y] for p in predictor(frame, faces[0]).parts()])
    mouth = points[60:68].mean(axis=0) / 160  # inner lips, as a fraction of the frame
    assert np.allclose(mouth, [0.51, 0.59], atol=0.05), mouth
