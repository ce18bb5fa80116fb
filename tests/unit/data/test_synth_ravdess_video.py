"""``synth ravdess`` with video: options, layout and streams, planted faces, shuffling, detectability.

Faces are judged from what a user gets (decoded mp4s, rendered frames, dlib's detector), not
from the generator's internals, except where the shuffling plan names each file's source.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import yaml

from affectlab.data.cards import build_manifest, load_card
from affectlab.data.check import check_manifest
from affectlab.data.synth import generate
from affectlab.data.synth import ravdess as R
from affectlab.data.synth.base import SynthRequest
from affectlab.data.synth.face_render import FACE_AUS, Identity, random_identity, render_faces
from affectlab.data.synth.video import read_mp4
from affectlab.errors import ConfigError


def _apex_aus(emotion: str, strong: bool = False) -> np.ndarray:
    """One frame (1, 9) of ``emotion`` at the middle of the apex range."""
    aus = np.zeros((1, len(FACE_AUS)))
    for au, weight in R.FACE_PROTOTYPES[emotion].items():
        aus[0, FACE_AUS.index(au)] = min(weight * np.mean(R.APEX) * (R.STRONG if strong else 1.0), 5.0)
    return aus


def _render(ident: Identity, aus: np.ndarray, size: int) -> np.ndarray:
    return render_faces(ident, aus, size, np.zeros((len(aus), 2)), np.ones(len(aus)))


def _grey(frames: np.ndarray) -> np.ndarray:
    return frames.astype(float) @ np.array([0.299, 0.587, 0.114])


# ---------------------------------------------------------------- options


def test_options_default_to_audio_only_and_video_to_full_av() -> None:
    assert R.RavdessSynthOptions().written == ("audio-only",)
    assert R.RavdessSynthOptions(video=True).written == ("full-AV",)
    both = R.RavdessSynthOptions(video=True, modalities="audio-only, full-AV")
    assert both.written == ("full-AV", "audio-only")


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"modalities": ["full-AV"]}, "need video: true"),
        ({"size": 128}, "size applies only with video: true"),
        ({"video": True, "size": 99}, "size must be even"),
        ({"video": True, "size": 32}, "size"),
        ({"video": True, "modalities": ["full-AV", "full-AV"]}, "twice"),
        ({"video": True, "modalities": []}, "at least one of"),
        ({"video": True, "modalities": ["audio"]}, "full-AV"),
    ],
)
def test_bad_options_name_the_value_and_the_choices(tmp_path: Path, options: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        generate("ravdess", str(tmp_path / "x"), subjects=1, items=1, seed=0, **options)
    assert not (tmp_path / "x").exists()


# ---------------------------------------------------------------- layout and streams


def test_video_corpus_writes_every_modality_with_matching_streams(tmp_path: Path) -> None:
    card_path = generate(
        "ravdess", str(tmp_path / "r"), subjects=1, items=2, seed=3, video=True, size=64,
        modalities=["full-AV", "video-only", "audio-only"],
    )
    root = Path(card_path).parent
    names = sorted(p.name for p in (root / "Actor_01").iterdir())
    assert names == sorted(
        f"{m}-01-{e}-01-01-01-01.{'wav' if m == '03' else 'mp4'}" for m in ("01", "02", "03") for e in ("01", "02")
    )
    for emotion in ("01", "02"):
        wav, sr = sf.read(root / "Actor_01" / f"03-01-{emotion}-01-01-01-01.wav")
        av_frames, av_audio = read_mp4(str(root / "Actor_01" / f"01-01-{emotion}-01-01-01-01.mp4"))
        v_frames, v_audio = read_mp4(str(root / "Actor_01" / f"02-01-{emotion}-01-01-01-01.mp4"))
        assert sr == 16000 and v_audio is None and av_audio is not None
        assert av_frames.shape == (int(np.ceil(len(wav) / sr * 25)), 64, 64, 3)
        assert np.array_equal(av_frames, v_frames)
        assert abs(len(av_audio) - len(wav)) < 2048  # AAC pads to whole 1024-sample frames
        n = min(len(wav), len(av_audio)) - 2048
        assert np.corrcoef(wav[1024:n], av_audio[1024:n])[0, 1] > 0.9
    card = yaml.safe_load(Path(card_path).read_text())
    assert card["options"]["glob"] == ["**/*.mp4", "**/*.wav"]
    assert card["planted"]["modalities"] == ["full-AV", "video-only", "audio-only"]
    assert set(card["planted"]["face_prototypes"]) == set(R.EMOTIONS)
    manifest = build_manifest(load_card(card_path))
    report = check_manifest(manifest)
    assert report.ok and report.n_recordings == 6, report.missing
    rows = {r["sample_id"]: r for r in manifest.to_pylist()}
    assert rows["01-01-02-01-01-01-01"]["audio_path"] == rows["01-01-02-01-01-01-01"]["video_path"]
    assert rows["02-01-02-01-01-01-01"]["audio_path"] is None
    assert rows["02-01-02-01-01-01-01"]["emotion"] == "calm"


@pytest.mark.parametrize("options", [{}, {"video": True, "modalities": "audio-only"}])
def test_audio_only_corpora_write_wavs_only(tmp_path: Path, options: dict) -> None:
    root = Path(generate("ravdess", str(tmp_path / "a"), subjects=1, items=2, seed=0, **options)).parent
    assert sorted(p.suffix for p in root.rglob("*.*") if p.name != "dataset.yaml") == [".wav", ".wav"]
    card = yaml.safe_load((root / "dataset.yaml").read_text())
    assert card["options"]["glob"] == ["**/*.wav"] and "face_prototypes" not in card["planted"]


def test_cli_video_flags(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from affectlab.cli import main

    out = tmp_path / "cli"
    main(["synth", "ravdess", "--out", str(out), "--subjects", "1", "--items", "1", "--video", "--size", "64",
          "--modalities", "video-only,audio-only"])
    assert "card:" in capsys.readouterr().out
    assert sorted(p.name for p in (out / "Actor_01").iterdir()) == ["02-01-01-01-01-01-01.mp4",
                                                                    "03-01-01-01-01-01-01.wav"]
    with pytest.raises(SystemExit) as exit_:
        main(["synth", "lma", "--out", str(tmp_path / "l"), "--video"])
    assert exit_.value.code == 2 and "--video applies to ravdess" in capsys.readouterr().err


# ---------------------------------------------------------------- planted faces


def test_emotion_prototypes_look_distinct_and_strong_is_stronger() -> None:
    for seed in (0, 4, 11):
        ident = random_identity(np.random.default_rng(seed))
        faces = {e: _grey(_render(ident, _apex_aus(e), 64))[0] for e in R.EMOTIONS}
        for a, b in itertools.combinations(R.EMOTIONS, 2):
            changed = np.abs(faces[a] - faces[b]) > 8
            assert changed.sum() >= 12, (seed, a, b, int(changed.sum()))
        neutral = faces["neutral"]
        for emotion in R.EMOTIONS[1:]:
            strong = _grey(_render(ident, _apex_aus(emotion, strong=True), 64))[0]
            assert np.abs(strong - neutral).sum() > 1.2 * np.abs(faces[emotion] - neutral).sum(), emotion


def test_expression_follows_an_onset_apex_offset_envelope() -> None:
    rng = np.random.default_rng(0)
    for _ in range(20):
        aus = R.expression_aus(rng, "happy", False, 60)
        smile = aus[:, FACE_AUS.index("AU12")]
        assert smile[0] < 0.3 * smile.max() and smile[-1] < 0.5 * smile.max()
        assert smile[30] > 0.9 * smile.max() and 2.2 <= smile.max() <= 3.2
        assert np.all(aus[:, [FACE_AUS.index(a) for a in FACE_AUS if a not in ("AU06", "AU12")]] == 0)
    strong = R.expression_aus(rng, "surprised", True, 60)[:, FACE_AUS.index("AU25")].max()
    assert strong >= 1.6 * 2.4 - 0.2
    with pytest.raises(ValueError, match="unknown emotion 'bored'.*surprised"):
        R.expression_aus(rng, "bored", False, 10)


@pytest.mark.parametrize("relation", ["planted", "shuffled"])
def test_face_and_voice_follow_the_same_source(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, relation: str
) -> None:
    """Planted: both follow the file's name; shuffled: both follow another file's (one cycle)."""
    faces: list[tuple[str, bool]] = []
    voices: list[tuple[str, bool]] = []
    expression_aus, style_for = R.expression_aus, R.style_for

    def record_face(rng: np.random.Generator, emotion: str, strong: bool, n: int) -> np.ndarray:
        faces.append((emotion, strong))
        return expression_aus(rng, emotion, strong, n)

    def record_voice(emotion: str, strong: bool) -> object:
        voices.append((emotion, strong))
        return style_for(emotion, strong)

    monkeypatch.setattr(R, "expression_aus", record_face)
    monkeypatch.setattr(R, "style_for", record_voice)
    generate("ravdess", str(tmp_path / "r"), subjects=2, items=4, seed=1, relation=relation, video=True, size=64)
    named = [(R.EMOTIONS[e - 1], i == 2) for _ in range(2) for e, i, _, _ in R.COMBINATIONS[:4]]
    assert faces == voices and len(faces) == 8
    if relation == "planted":
        assert faces == named
    else:
        assert faces != named and sorted(faces) == sorted(named)  # the same expressions, moved
        sources = [src for _, _, src in R.file_sources(SynthRequest("ravdess", "", 2, 4, 1, relation))]
        assert faces == [(R.EMOTIONS[e - 1], i == 2) for e, i in sources]


# ---------------------------------------------------------------- detectability


@pytest.fixture(scope="module")
def dlib_backend() -> object:
    pytest.importorskip("dlib")
    from affectlab.features.faces import build_backend

    try:
        return build_backend("dlib")
    except ConfigError as exc:
        pytest.skip(f"dlib weights unavailable: {exc}")


def _identities_across_skin_tones(n: int) -> list[Identity]:
    """``n`` identities spread from the darkest to the lightest skin of a pool of 60."""
    pool = [random_identity(np.random.default_rng(seed)) for seed in range(60)]
    pool.sort(key=lambda ident: float(np.dot(ident.skin, [0.299, 0.587, 0.114])))
    return [pool[i] for i in np.linspace(0, len(pool) - 1, n).round().astype(int)]


@pytest.mark.parametrize("size", [64, 128])
def test_dlib_detects_the_rendered_face_for_every_skin_tone(dlib_backend: object, size: int) -> None:
    aus = np.concatenate([_apex_aus(e, strong=e != "neutral") for e in R.EMOTIONS])
    rng = np.random.default_rng(size)
    head = rng.uniform(-R.HEAD_AMPLITUDE, R.HEAD_AMPLITUDE, (len(aus), 2))
    rates = []
    for ident in _identities_across_skin_tones(10):
        frames = render_faces(ident, aus, size, head, np.ones(len(aus)))
        rates.append(dlib_backend.detect(frames).detected.mean())  # type: ignore[attr-defined]
    assert min(rates) >= 0.9, np.round(rates, 2)
