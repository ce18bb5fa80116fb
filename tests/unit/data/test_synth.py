"""Synthetic corpora: layout, adapters, determinism, validation and the planted relations."""

from __future__ import annotations

import filecmp
import os
from pathlib import Path

import pandas as pd
import pytest
import soundfile as sf
import yaml

from affectlab.data.cards import build_manifest, load_card
from affectlab.data.check import check_manifest
from affectlab.data.synth import KINDS, generate
from affectlab.data.synth.speech_au import AUS
from affectlab.errors import ConfigError, RegistryError

TINY = {  # kind -> (subjects, items, options): small enough for seconds
    "speech-au": (2, 2, {"min_duration_s": 2.0, "max_duration_s": 3.0}),
    "faces": (2, 2, {"size": 28, "frames": 12}),
    "talking-face": (1, 2, {"size": 96, "min_duration_s": 0.6, "max_duration_s": 0.8}),
    "ravdess": (2, 2, {}),
    "lma": (2, 5, {}),
}


def _make(root: Path, kind: str, seed: int = 0, relation: str = "planted", name: str = "") -> str:
    subjects, items, options = TINY[kind]
    out = root / (name or f"{kind}-{seed}-{relation}")
    return generate(kind, str(out), subjects=subjects, items=items, seed=seed, relation=relation, **options)


def _files(root: str) -> list[str]:
    return sorted(os.path.relpath(os.path.join(d, f), root) for d, _, fs in os.walk(root) for f in fs)


def test_registry_lists_the_kinds_with_their_adapters() -> None:
    assert {k: v.adapter for k, v in KINDS.items()} == {
        "speech-au": "csv", "faces": "csv", "talking-face": "lrs", "ravdess": "ravdess", "lma": "lma", "visemes": "lrs",
    }


@pytest.mark.parametrize("kind", sorted(TINY))
def test_each_kind_passes_its_adapter_check(tmp_path: Path, kind: str) -> None:
    card_path = _make(tmp_path, kind)
    loaded = load_card(card_path)
    assert loaded.adapter.name == KINDS[kind].adapter
    report = check_manifest(build_manifest(loaded))
    subjects, items, _ = TINY[kind]
    assert report.ok, report.missing
    assert (report.n_recordings, report.n_subjects) == (subjects * items, subjects)
    planted = yaml.safe_load(Path(card_path).read_text())["planted"]
    assert isinstance(planted, dict) and planted["relation"] == "planted" and planted["seed"] == 0


@pytest.mark.parametrize("kind", ["speech-au", "faces", "talking-face", "ravdess", "lma"])
def test_same_seed_gives_identical_files_and_another_seed_differs(tmp_path: Path, kind: str) -> None:
    a = os.path.dirname(_make(tmp_path, kind, seed=5, name="a"))
    b = os.path.dirname(_make(tmp_path, kind, seed=5, name="b"))
    c = os.path.dirname(_make(tmp_path, kind, seed=6, name="c"))
    files = _files(a)
    assert files == _files(b) == _files(c)
    match, mismatch, errors = filecmp.cmpfiles(a, b, files, shallow=False)
    assert mismatch == [] and errors == [] and len(match) == len(files)
    _, differ, _ = filecmp.cmpfiles(a, c, files, shallow=False)
    # ids-only manifests and short transcripts may coincide; media, labels, features may not
    data_files = [f for f in files if f not in ("dataset.yaml", "manifest.csv") and not f.endswith(".txt")]
    assert data_files and set(data_files) <= set(differ)


def test_speech_au_layout(tmp_path: Path) -> None:
    root = Path(_make(tmp_path, "speech-au")).parent
    manifest = pd.read_csv(root / "manifest.csv", dtype=str, keep_default_na=False)
    assert list(manifest.columns) == [
        "sample_id", "subject", "audio", "video", "labels", "emotion", "transcript", "valence", "arousal",
    ]
    assert manifest["sample_id"].tolist() == ["s01_u001", "s01_u002", "s02_u001", "s02_u002"]
    for row in manifest.to_dict("records"):
        assert row["audio"] == f"audio/{row['subject']}/{row['sample_id']}.wav"
        info = sf.info(root / row["audio"])
        assert (info.samplerate, info.channels, info.subtype) == (16000, 1, "PCM_16")
        assert 2.0 <= info.duration <= 3.0
        labels = pd.read_csv(root / row["labels"])
        assert list(labels.columns) == ["frame", *AUS]
        assert len(labels) == round(info.duration * 25) and labels["frame"].tolist() == list(range(len(labels)))
        assert labels[list(AUS)].to_numpy().min() >= 0 and labels[list(AUS)].to_numpy().max() <= 5
        f0 = pd.read_csv(root / "f0" / row["subject"] / f"{row['sample_id']}.csv")
        assert list(f0.columns) == ["time_s", "f0_hz"] and len(f0) == round(info.duration * 100)
        voiced = f0["f0_hz"][f0["f0_hz"] > 0]
        assert 0.3 < len(voiced) / len(f0) < 0.95 and voiced.between(50, 550).all()
    card = yaml.safe_load((root / "dataset.yaml").read_text())
    assert card["adapter"] == "csv" and card["root"] == "." and card["options"] == {"manifest": "manifest.csv"}
    assert card["frame_labels"] == {"rate_hz": 25}
    assert set(card["planted"]["aus"]) == set(AUS)


def test_validation_errors_name_the_option(tmp_path: Path) -> None:
    with pytest.raises(RegistryError, match="speech-au"):
        generate("speech", str(tmp_path / "x"), subjects=1, items=1, seed=0)
    with pytest.raises(ConfigError) as err:
        generate("faces", str(tmp_path / "x"), subjects=0, items=1, seed=-1, relation="random", size=50)
    message = str(err.value)
    for key in ("subjects", "seed", "relation", "size"):
        assert key in message
    with pytest.raises(ConfigError, match="shuffled"):
        generate("lma", str(tmp_path / "x"), subjects=1, items=1, seed=0, relation="shuffled")
    with pytest.raises(ConfigError, match="actors"):
        generate("ravdess", str(tmp_path / "x"), subjects=25, items=1, seed=0)
    with pytest.raises(ConfigError, match="frobnicate"):
        generate("lma", str(tmp_path / "x"), subjects=1, items=1, seed=0, frobnicate=1)
    assert not (tmp_path / "x").exists()


def test_output_directory_rules(tmp_path: Path) -> None:
    other = tmp_path / "other"
    other.mkdir()
    (other / "keep.txt").write_text("mine")
    with pytest.raises(ConfigError, match="not empty"):
        generate("lma", str(other), subjects=1, items=2, seed=0, overwrite=True)
    assert (other / "keep.txt").read_text() == "mine"
    out = tmp_path / "corpus"
    generate("lma", str(out), subjects=1, items=2, seed=0)
    with pytest.raises(ConfigError, match="not empty"):
        generate("lma", str(out), subjects=1, items=2, seed=0)
    generate("lma", str(out), subjects=2, items=2, seed=0, overwrite=True)
    assert len(pd.read_csv(out / "lma_features.csv")) == 4
    assert not list(tmp_path.glob("*partial*"))


def test_a_larger_corpus_extends_a_smaller_one(tmp_path: Path) -> None:
    small = generate("lma", str(tmp_path / "s"), subjects=1, items=3, seed=2)
    large = generate("lma", str(tmp_path / "l"), subjects=2, items=3, seed=2)
    a = pd.read_csv(Path(small).parent / "lma_features.csv")
    b = pd.read_csv(Path(large).parent / "lma_features.csv")
    pd.testing.assert_frame_equal(a, b.iloc[:3])


def test_cli_synth_writes_a_checkable_corpus(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from affectlab.cli import main

    out = tmp_path / "lma"
    main(["synth", "lma", "--out", str(out), "--subjects", "2", "--items", "3", "--seed", "1"])
    assert "card:" in capsys.readouterr().out
    main(["datasets", "check", str(out / "dataset.yaml")])
    assert "recordings: 6" in capsys.readouterr().out


def test_cli_synth_help_and_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from affectlab.cli import main

    main(["synth", "--help"])
    assert "talking-face" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exit_:
        main(["synth", "faces", "--out", str(tmp_path / "f"), "--size", "50"])
    assert exit_.value.code == 2 and "size" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_:
        main(["synth", "speech-au", "--out", str(tmp_path / "s"), "--size", "64"])
    assert exit_.value.code == 2 and "--size" in capsys.readouterr().err


def test_cli_kind_choices_match_the_registry() -> None:
    from affectlab.cli.synth import KIND_NAMES

    assert set(KIND_NAMES) == set(KINDS)


def test_remote_output_is_refused_before_anything_is_written() -> None:
    with pytest.raises(ConfigError, match="local directory"):
        generate("lma", "s3://bucket/corpus", subjects=1, items=1, seed=0)
