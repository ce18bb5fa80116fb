"""Hostile or broken YAML is a ConfigError naming the file (never a traceback, a hang or a silent
choice): duplicate keys, alias bombs, recursion, deep nesting, binary files, devices, huge files,
non-finite floats."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from pydantic import Field

from affectlab.config import MAX_CONFIG_BYTES, StrictModel, load_yaml, parse_yaml, validate
from affectlab.errors import ConfigError


class Rate(StrictModel):
    hz: float = Field(default=25.0, gt=0)
    gain: float = 1.0  # unbounded: only finiteness is checked


def test_a_key_given_twice_names_the_key_and_both_lines() -> None:
    with pytest.raises(ConfigError, match=r"(?s)cfg\.yaml: not valid YAML.*duplicate key 'lr' \(first given on line 2\)"
                       r".*in cfg\.yaml, line 3"):
        parse_yaml("training:\n  lr: 0.1\n  lr: 0.2\n", source="cfg.yaml")


def test_merge_keys_may_still_be_overridden() -> None:
    data = parse_yaml("defaults: &d {lr: 0.1, epochs: 3}\ntraining:\n  <<: *d\n  lr: 0.2\n")
    assert data["training"] == {"lr": 0.2, "epochs": 3}


def test_alias_bomb_recursion_and_depth_are_refused() -> None:
    bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [" + ", ".join(["*" + chr(97 + i)] * 10) + "]\n" for i in range(8))
    with pytest.raises(ConfigError, match=r"bomb\.yaml: .*expands to more than 100000 values"):
        parse_yaml(bomb, source="bomb.yaml")
    with pytest.raises(ConfigError, match=r"r\.yaml: name\.0: a YAML alias refers to itself"):
        parse_yaml("name: &r [*r]\n", source="r.yaml")
    with pytest.raises(ConfigError, match=r"deep\.yaml: .*nested more than 32 levels"):
        parse_yaml("a: " + "[" * 40 + "]" * 40 + "\n", source="deep.yaml")
    with pytest.raises(ConfigError, match=r"deeper\.yaml: nested too deeply to read"):
        parse_yaml("a: " + "[" * 5000 + "]" * 5000 + "\n", source="deeper.yaml")
    shared = parse_yaml("a: &a {x: 1}\nb: *a\nc: *a\n")  # ordinary aliases still work
    assert shared["b"] == shared["c"] == {"x": 1}


def test_files_that_are_not_yaml_text_are_named(tmp_path: Path) -> None:
    binary = tmp_path / "bin.yaml"
    binary.write_bytes(b"\x00\xff\xfe\x89PNG")
    with pytest.raises(ConfigError, match=r"bin\.yaml: not UTF-8 text"):
        load_yaml(str(binary))
    with pytest.raises(ConfigError, match=f"{tmp_path}: is a directory"):
        load_yaml(str(tmp_path))
    big = tmp_path / "big.yaml"
    big.write_text("a: " + "x" * MAX_CONFIG_BYTES + "\n")
    with pytest.raises(ConfigError, match=r"big\.yaml: \d+ bytes; a config file holds at most"):
        load_yaml(str(big))
    if os.path.exists("/dev/zero"):  # would be read forever
        with pytest.raises(ConfigError, match="/dev/zero: not a regular file"):
            load_yaml("/dev/zero")


@pytest.mark.parametrize("text", [".nan", ".inf", "-.inf"])
def test_non_finite_floats_are_rejected_in_every_config_model(text: str) -> None:
    for key in ("hz", "gain"):
        with pytest.raises(ConfigError, match=rf"{key}: Input should be a finite number"):
            validate(Rate, parse_yaml(f"{key}: {text}\n"), source="rate.yaml")
