"""CLI basics: every verb has --help; info hides secrets; config check."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from affectlab.cli import VERBS, cli, main


@pytest.mark.parametrize("verb", sorted(VERBS))
def test_every_verb_has_help(verb: str) -> None:
    result = CliRunner().invoke(cli, [verb, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage:" in result.output


def test_info_shows_versions_without_secrets(monkeypatch) -> None:
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "do-not-print-me")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIADONOTPRINT")
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    result = CliRunner().invoke(cli, ["info"])
    assert result.exit_code == 0, result.output
    assert "ray " in result.output and "embedded local cluster" in result.output
    assert "do-not-print-me" not in result.output and "AKIADONOTPRINT" not in result.output


def test_config_check_reports_card_errors(tmp_path, capsys) -> None:
    card = tmp_path / "card.yaml"
    card.write_text("name: x\nadapter: csv\nroot: .\nfram_labels: {rate_hz: 25}\n")
    with pytest.raises(SystemExit) as info:
        main(["config", "check", str(card)])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert "fram_labels: unknown key (did you mean 'frame_labels'?)" in err


def test_config_check_unknown_kind(tmp_path, capsys) -> None:
    path = tmp_path / "what.yaml"
    path.write_text("foo: 1\n")
    with pytest.raises(SystemExit):
        main(["config", "check", str(path)])
    assert "cannot tell what kind of config" in capsys.readouterr().err


@pytest.mark.parametrize("path", ["search_spaces/au_003.yaml", "search_spaces/f0_to_au.yaml"])
def test_config_check_validates_shipped_sweep_files(path: str, capsys) -> None:
    from pathlib import Path

    repo = Path(__file__).resolve().parents[2]
    main(["config", "check", str(repo / path)])
    assert "ok, sweep file" in capsys.readouterr().out


def test_config_check_names_bad_sweep_key(tmp_path, capsys) -> None:
    from pathlib import Path

    repo = Path(__file__).resolve().parents[2]
    text = (repo / "search_spaces/au_003.yaml").read_text().replace("training.lr:", "training.lrr:", 1)
    path = tmp_path / "sweep.yaml"
    path.write_text(text)
    with pytest.raises(SystemExit) as info:
        main(["config", "check", str(path)])
    assert info.value.code == 2
    assert "training.lrr" in capsys.readouterr().err
