"""Dataset cards (validation, root resolution), the manifest helpers and the csv adapter."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from affectlab import storage
from affectlab.data.adapters import ADAPTERS
from affectlab.data.cards import build_manifest, load_card
from affectlab.data.check import check_manifest
from affectlab.data.manifest import MANIFEST_SCHEMA, manifest_from_rows, resolve_under_root
from affectlab.errors import ConfigError, DatasetError

REPO = Path(__file__).resolve().parents[3]


def write_card(path: Path, **card: object) -> str:
    path.write_text(yaml.safe_dump(card))
    return str(path)


def make_csv_corpus(root: Path, lines: list[str] | None = None) -> Path:
    """A csv corpus: 3 recordings, 2 subjects, one with a frame-label file."""
    (root / "audio").mkdir(parents=True)
    (root / "labels").mkdir()
    for name in ("a1", "a2", "b1"):
        (root / "audio" / f"{name}.wav").write_bytes(b"RIFF")
    (root / "labels" / "a1.csv").write_text("frame,AU01,AU12\n0,0,1\n1,2,3\n")
    lines = lines or [
        "a1,spk_a,audio/a1.wav,,labels/a1.csv,happy,0.5",
        "a2,spk_a,audio/a2.wav,,,sad,-0.25",
        "b1,spk_b,audio/b1.wav,,,,",
    ]
    header = "sample_id,subject,audio,video,labels,emotion,valence\n"
    (root / "manifest.csv").write_text(header + "\n".join(lines) + "\n")
    return root


@pytest.fixture
def csv_card(tmp_path: Path) -> str:
    make_csv_corpus(tmp_path / "corpus")
    return write_card(tmp_path / "card.yaml", name="toy", adapter="csv", root="corpus", frame_labels={"rate_hz": 25})


def test_csv_card_builds_manifest_with_resolved_paths(csv_card: str, tmp_path: Path) -> None:
    loaded = load_card(csv_card)
    assert loaded.root == str(tmp_path / "corpus")  # relative root resolved against the card
    table = build_manifest(loaded)
    assert table.schema == MANIFEST_SCHEMA
    rows = {r["sample_id"]: r for r in table.to_pylist()}
    assert sorted(rows) == ["a1", "a2", "b1"]
    assert rows["a1"]["audio_path"] == os.path.realpath(tmp_path / "corpus" / "audio" / "a1.wav")
    assert rows["a1"]["labels_format"] == "csv" and rows["a1"]["labels_rate_hz"] == 25.0
    assert rows["a2"]["labels_path"] is None and rows["a2"]["valence"] == -0.25
    assert rows["b1"]["emotion"] is None and rows["b1"]["dataset"] == "toy"
    report = check_manifest(table)
    assert report.ok and report.n_subjects == 2 and report.label_coverage["emotion"] == 2


def test_override_changes_root(csv_card: str, tmp_path: Path) -> None:
    other = make_csv_corpus(tmp_path / "elsewhere")
    assert load_card(csv_card, [f"root={other}"]).root == str(other)


def test_unknown_keys_suggest_close_names_and_are_reported_together(tmp_path: Path) -> None:
    card = write_card(
        tmp_path / "c.yaml", name="x", adapter="csv", root=".", descripton="typo", options={"manifst": "m.csv"}
    )
    with pytest.raises(ConfigError) as info:
        load_card(card)
    text = str(info.value)
    assert "2 problem(s)" in text
    assert "descripton: unknown key (did you mean 'description'?)" in text
    assert "options.manifst: unknown key (did you mean 'options.manifest'?)" in text


def test_unknown_adapter_lists_known_ones(tmp_path: Path) -> None:
    card = write_card(tmp_path / "c.yaml", name="x", adapter="ravdes", root=".")
    with pytest.raises(ConfigError) as info:
        load_card(card)
    text = str(info.value)
    assert "unknown adapter 'ravdes'" in text and "Did you mean 'ravdess'?" in text
    for name in ADAPTERS:
        assert name in text


def test_bad_values_and_missing_keys_named(tmp_path: Path) -> None:
    card = write_card(tmp_path / "c.yaml", name="bad name!", adapter="csv", frame_labels={"rate_hz": -1})
    with pytest.raises(ConfigError) as info:
        load_card(card)
    text = str(info.value)
    assert "name:" in text and "root: required key is missing" in text and "frame_labels.rate_hz" in text


def test_non_mapping_options_reported_once(tmp_path: Path) -> None:
    card = write_card(tmp_path / "c.yaml", name="x", adapter="csv", root=".", options=3)
    with pytest.raises(ConfigError, match="1 problem"):
        load_card(card)


def test_empty_options_mean_defaults(tmp_path: Path) -> None:
    card = write_card(tmp_path / "c.yaml", name="x", adapter="csv", root=".", options=None)
    assert load_card(card).options.manifest == "manifest.csv"


def test_missing_root_is_dataset_error_naming_key(tmp_path: Path) -> None:
    card = write_card(tmp_path / "c.yaml", name="x", adapter="csv", root="nowhere")
    with pytest.raises(DatasetError, match=r"root .*nowhere.* does not exist \(key 'root'\)"):
        load_card(card)
    assert load_card(card, check_root=False).root == str(tmp_path / "nowhere")


@pytest.mark.parametrize("rel", ["../x.wav", "audio/../../x.wav", "/etc/passwd", "."])
def test_resolve_under_root_rejects_escapes_locally(tmp_path: Path, rel: str) -> None:
    with pytest.raises(DatasetError, match="row 7"):
        resolve_under_root(str(tmp_path), rel, where="row 7")


@pytest.mark.parametrize("rel", ["../x.wav", "a/../../x.wav", "/etc/passwd", ".", "s3://other/x.wav"])
def test_resolve_under_root_rejects_escapes_on_s3(rel: str) -> None:
    with pytest.raises(DatasetError, match="row 7"):
        resolve_under_root("s3://bucket/corpus", rel, where="row 7")


def test_resolve_under_root_accepts_inside_paths(tmp_path: Path) -> None:
    assert resolve_under_root(str(tmp_path), "a/./b/../c.wav", where="r") == os.path.realpath(tmp_path / "a" / "c.wav")
    assert resolve_under_root("s3://b/root/", "x/../y.wav", where="r") == "s3://b/root/y.wav"
    assert resolve_under_root("s3://b/root", "s3://b/root/z.wav", where="r") == "s3://b/root/z.wav"


def test_manifest_from_rows_names_duplicate_locations_and_bad_columns() -> None:
    rows = [{"sample_id": "a", "dataset": "d", "subject": "s"}] * 2
    with pytest.raises(DatasetError, match="duplicate sample_id 'a' at file one; file two"):
        manifest_from_rows(rows, source="src", locations=["file one", "file two"])
    with pytest.raises(DatasetError, match="src row 2: missing subject"):
        manifest_from_rows([rows[0], {"sample_id": "b", "dataset": "d"}], source="src")
    with pytest.raises(DatasetError, match="unknown manifest columns"):
        manifest_from_rows([{"sample_id": "a", "subject": "s", "speaker": "x"}], source="src")


def test_csv_adapter_errors_name_row_and_column(tmp_path: Path) -> None:
    make_csv_corpus(tmp_path / "c", ["a1,s,audio/a1.wav,,,,not-a-number"])
    card = write_card(tmp_path / "c.yaml", name="x", adapter="csv", root="c")
    with pytest.raises(DatasetError, match=r"row 2 \(sample_id 'a1'\): column 'valence' is not a number"):
        build_manifest(load_card(card))
    (tmp_path / "c" / "manifest.csv").write_text("sample_id,subject\na,b\n")
    with pytest.raises(DatasetError, match=r"missing column\(s\) \['audio', 'video', 'labels'\]"):
        build_manifest(load_card(card))


def test_csv_labels_need_frame_rate(tmp_path: Path) -> None:
    make_csv_corpus(tmp_path / "c")
    card = write_card(tmp_path / "c.yaml", name="x", adapter="csv", root="c")
    with pytest.raises(DatasetError, match=r"frame_labels\.rate_hz"):
        build_manifest(load_card(card))


def test_missing_files_are_reported_per_row(csv_card: str, tmp_path: Path) -> None:
    (tmp_path / "corpus" / "audio" / "a2.wav").unlink()
    (tmp_path / "corpus" / "labels" / "a1.csv").unlink()
    report = check_manifest(build_manifest(load_card(csv_card)))
    assert not report.ok
    assert sorted((sid, col) for sid, col, _ in report.missing) == [("a1", "labels_path"), ("a2", "audio_path")]


@pytest.mark.parametrize("card", sorted((REPO / "datasets").glob("*.yaml")), ids=lambda p: p.name)
def test_example_cards_validate(card: Path) -> None:
    loaded = load_card(str(card), check_root=False)
    assert loaded.adapter.name in ADAPTERS and loaded.card.name


def test_example_cards_exist() -> None:
    names = {p.name for p in (REPO / "datasets").glob("*.yaml")}
    assert {"ravdess.yaml", "lrs3.yaml", "affwild2.yaml"} <= names


def test_csv_corpus_on_s3(s3_bucket: str, tmp_path: Path) -> None:
    root = f"{s3_bucket}/corpus"
    storage.write_bytes(f"{root}/audio/a1.wav", b"RIFF")
    storage.write_bytes(f"{root}/audio/b1.wav", b"RIFF")
    storage.write_text(f"{root}/labels/a1.csv", "frame,AU1\n0,1.5\n")
    storage.write_text(
        f"{root}/manifest.csv",
        "sample_id,subject,audio,video,labels\na1,s1,audio/a1.wav,,labels/a1.csv\nb1,s2,audio/b1.wav,,\n"
        "c1,s2,audio/c1.wav,,\n",
    )
    card = write_card(tmp_path / "s3.yaml", name="s3toy", adapter="csv", root=root, frame_labels={"rate_hz": 30})
    table = build_manifest(load_card(card))
    rows = {r["sample_id"]: r for r in table.to_pylist()}
    assert rows["a1"]["audio_path"] == f"{root}/audio/a1.wav"
    assert rows["a1"]["labels_path"] == f"{root}/labels/a1.csv"
    report = check_manifest(table)
    assert report.missing == [("c1", "audio_path", f"{root}/audio/c1.wav")]
    with pytest.raises(DatasetError, match="does not exist"):
        load_card(card, [f"root={s3_bucket}/nothing-here"])
