"""``affectlab datasets check``: exit codes and messages that name the row or key at fault.

Exit codes: 0 valid and complete, 1 referenced files missing, 2 invalid card or manifest.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from affectlab.cli import main
from affectlab.data.adapters import ADAPTERS

HEADER = "sample_id,subject,audio,video,labels\n"


def run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    try:
        main(args)
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    root = tmp_path / "corpus"
    (root / "audio").mkdir(parents=True)
    for name in ("a", "b", "c"):
        (root / "audio" / f"{name}.wav").write_bytes(b"RIFF")
    (root / "manifest.csv").write_text(HEADER + "a,s1,audio/a.wav,,\nb,s1,audio/b.wav,,\nc,s2,audio/c.wav,,\n")
    return root


def card(tmp_path: Path, **fields: object) -> str:
    data = {"name": "toy", "adapter": "csv", "root": "corpus", **fields}
    path = tmp_path / "toy.yaml"
    path.write_text(yaml.safe_dump(data))
    return str(path)


def test_valid_card_exits_0(corpus: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(["datasets", "check", card(tmp_path)], capsys)
    assert code == 0, err
    assert "recordings: 3   subjects: 2" in out and "audio_path        3 referenced" in out
    assert out.rstrip().endswith("ok") and not err


def test_named_splits_are_listed_and_one_naming_an_absent_subject_exits_2(
        corpus: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = {"mine": {"train": ["s1"], "val": ["s2"]}}
    code, out, err = run(["datasets", "check", card(tmp_path, splits=good)], capsys)
    assert code == 0, err
    assert "split mine         1 train / 1 val / 0 test subjects" in out
    bad = {"mine": {"train": ["s1"], "val": ["s2"], "test": ["s9", "s8"]}}
    code, _, err = run(["datasets", "check", card(tmp_path, splits=bad)], capsys)
    assert code == 2 and "splits.mine.test names subject(s) without recordings: s9, s8" in err


def test_unknown_key_named_with_suggestion(corpus: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(["datasets", "check", card(tmp_path, frame_label={"rate_hz": 25})], capsys)
    assert code == 2
    assert "frame_label: unknown key (did you mean 'frame_labels'?)" in err


def test_all_config_errors_reported_together(corpus: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = card(tmp_path, rooot="x", options={"manifset": "m.csv", "sep": ";"})
    code, _, err = run(["datasets", "check", path], capsys)
    assert code == 2
    assert "3 problem(s)" in err
    for key in ("rooot", "options.manifset", "options.sep"):
        assert f"{key}: unknown key" in err


def test_set_override_errors_are_named(corpus: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(["datasets", "check", card(tmp_path), "--set", "frame_labels.rate_hz=-3"], capsys)
    assert code == 2 and "frame_labels.rate_hz" in err and "-3" in err


def test_missing_root(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(["datasets", "check", card(tmp_path, root="no/such/dir")], capsys)
    assert code == 2
    assert "no/such/dir" in err and "does not exist (key 'root')" in err


def test_missing_card_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(["datasets", "check", str(tmp_path / "nope.yaml")], capsys)
    assert code == 2 and "nope.yaml: file not found" in err


def test_unknown_adapter_lists_known(corpus: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(["datasets", "check", card(tmp_path, adapter="affwild")], capsys)
    assert code == 2
    assert "unknown adapter 'affwild'" in err and "Did you mean 'affwild2'?" in err
    assert "known: " + ", ".join(sorted(ADAPTERS)) in err


@pytest.mark.parametrize("path", ["../x.wav", "audio/../../x.wav", "/etc/passwd"])
def test_path_escaping_root_names_row(
    corpus: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], path: str
) -> None:
    (tmp_path / "x.wav").write_bytes(b"RIFF")
    (corpus / "manifest.csv").write_text(HEADER + f"a,s1,audio/a.wav,,\nevil,s1,{path},,\n")
    code, _, err = run(["datasets", "check", card(tmp_path)], capsys)
    assert code == 2
    assert "row 3 (sample_id 'evil'), column 'audio'" in err
    assert f"path {path!r} escapes the dataset root" in err


def test_duplicate_sample_id_names_rows(corpus: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (corpus / "manifest.csv").write_text(HEADER + "a,s1,audio/a.wav,,\nb,s1,audio/b.wav,,\na,s2,audio/c.wav,,\n")
    code, _, err = run(["datasets", "check", card(tmp_path)], capsys)
    assert code == 2
    assert "duplicate sample_id 'a'" in err and "row 2 (sample_id 'a')" in err and "row 4 (sample_id 'a')" in err


def test_missing_media_listed_per_row(corpus: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (corpus / "audio" / "b.wav").unlink()
    (corpus / "audio" / "c.wav").unlink()
    code, out, err = run(["datasets", "check", card(tmp_path)], capsys)
    assert code == 1
    assert "recordings: 3" in out
    assert "MISSING: 2 referenced file(s)" in err
    assert "sample_id 'b', audio_path:" in err and "sample_id 'c', audio_path:" in err
    assert "sample_id 'a'" not in err
    code, _, err = run(["datasets", "check", card(tmp_path), "--show-missing", "1"], capsys)
    assert code == 1 and "sample_id 'b'" in err and "sample_id 'c'" not in err


def test_config_check_accepts_card_without_root(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(["config", "check", card(tmp_path, root="/data/absent")], capsys)
    assert code == 0, err
    assert "dataset card (adapter 'csv', root /data/absent)" in out


def test_a_manifest_without_recordings_exits_1(corpus: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (corpus / "manifest.csv").write_text(HEADER)
    code, _, err = run(["datasets", "check", card(tmp_path)], capsys)
    assert code == 1 and "lists no recording" in err and "toy.yaml" in err
