"""Hostile cards and manifests: adapter options that leave the root are refused with the card,
manifest cells that escape it, hold NUL bytes or URIs, misspelt columns, non-finite numbers and
unreadable manifests are DatasetErrors naming the file, row and column."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from affectlab.data.cards import build_manifest, load_card
from affectlab.data.manifest import resolve_under_root
from affectlab.errors import ConfigError, DatasetError

HEADER = "sample_id,subject,audio,video,labels,emotion,valence\n"


def _card(tmp_path: Path, adapter: str = "csv", **options: object) -> str:
    path = tmp_path / "card.yaml"
    path.write_text(yaml.safe_dump({"name": "c", "adapter": adapter, "root": "corpus", "options": options}))
    (tmp_path / "corpus").mkdir(exist_ok=True)
    return str(path)


@pytest.mark.parametrize(("adapter", "key", "value", "words"), [
    ("csv", "manifest", "../../etc/passwd", "leaves the dataset root"),
    ("csv", "manifest", "/etc/passwd", "is absolute"),
    ("csv", "manifest", "s3://other/manifest.csv", "is absolute"),
    ("lma", "file", "a/../../secret.csv", "leaves the dataset root"),
    ("affwild2", "video_dir", "~/videos", "is absolute"),
    ("affwild2", "au_set", "..", "leaves the dataset root"),
])
def test_options_naming_paths_must_stay_under_the_root(tmp_path: Path, adapter: str, key: str, value: str,
                                                       words: str) -> None:
    with pytest.raises(ConfigError, match=rf"card\.yaml: .*\n  - options\.{key}: .*{words}"):
        load_card(_card(tmp_path, adapter, **{key: value}), check_root=False)


def _manifest(tmp_path: Path, body: str | bytes, header: str = HEADER) -> str:
    card = _card(tmp_path)
    (tmp_path / "corpus" / "audio").mkdir(exist_ok=True)
    (tmp_path / "corpus" / "audio" / "a.wav").write_bytes(b"RIFF")
    target = tmp_path / "corpus" / "manifest.csv"
    if isinstance(body, bytes):
        target.write_bytes(body)
    else:
        target.write_text(header + body)
    return card


@pytest.mark.parametrize(("body", "words"), [
    ("a,s1,audio/a.wav,,,,nan\n", r"row 2 \(sample_id 'a'\): column 'valence' is not a finite number: 'nan'"),
    ("a,s1,audio/a.wav,,,,-inf\n", r"row 2 \(sample_id 'a'\): column 'valence' is not a finite number"),
    ("a,s1,s3://bucket/a.wav,,,,\n", r"column 'audio': path 's3://bucket/a.wav' is a URI but the dataset root"),
    ("a,s1,audio/a\x00.wav,,,,\n", r"column 'audio': path .* holds a NUL byte"),
    ("a,s1," + "d/" * 2100 + "a.wav,,,,\n", r"column 'audio': path .* longer than 4096 characters"),
    (b"", r"manifest\.csv: empty manifest \(no header line\)"),
    (b"\x89PNG\r\n\x1a\n\xff\xfe\x00garbage", r"manifest\.csv: not a readable UTF-8 CSV manifest"),
])
def test_bad_manifest_cells_and_files_name_the_place(tmp_path: Path, body: str | bytes, words: str) -> None:
    loaded = load_card(_manifest(tmp_path, body))
    with pytest.raises(DatasetError, match=words) as info:
        build_manifest(loaded)
    assert str(info.value).startswith(loaded.source)  # which card, when several are checked


def test_a_misspelt_column_is_an_error_and_other_extra_columns_are_ignored(tmp_path: Path) -> None:
    header = "sample_id,subject,audio,video,labels,emotoin\n"
    with pytest.raises(DatasetError, match=r"unknown column\(s\) 'emotoin' \(did you mean 'emotion'\?\)"):
        build_manifest(load_card(_manifest(tmp_path, "a,s1,audio/a.wav,,,happy\n", header)))
    header = "sample_id,subject,audio,video,labels,gender,notes\n"
    table = build_manifest(load_card(_manifest(tmp_path, "a,s1,audio/a.wav,,,f,ok\n", header)))
    assert table.column("sample_id").to_pylist() == ["a"]


def test_symbolic_link_out_of_the_root_escapes_but_one_inside_is_followed(tmp_path: Path) -> None:
    root = tmp_path / "root"
    (root / "audio").mkdir(parents=True)
    (root / "audio" / "a.wav").write_bytes(b"RIFF")
    (tmp_path / "secret.wav").write_bytes(b"RIFF")
    (root / "audio" / "out.wav").symlink_to(tmp_path / "secret.wav")
    (root / "audio" / "in.wav").symlink_to("a.wav")
    with pytest.raises(DatasetError, match=r"row 9: path 'audio/out\.wav' escapes the dataset root"):
        resolve_under_root(str(root), "audio/out.wav", where="row 9")
    assert resolve_under_root(str(root), "audio/in.wav", where="row 9") == str((root / "audio" / "a.wav").resolve())
