"""Config loading: YAML floats, overrides, all errors at once with key names and hints."""

from __future__ import annotations

from typing import Literal

import pytest
from pydantic import Field

from affectlab.config import StrictModel, apply_overrides, load_config, parse_override, parse_yaml, validate
from affectlab.errors import ConfigError


class Optim(StrictModel):
    lr: float = Field(default=1e-3, gt=0, le=1)
    name: Literal["adam", "sgd"] = "adam"


class Exp(StrictModel):
    epochs: int = Field(default=10, ge=1)
    optim: Optim = Optim()


def test_yaml_reads_exponent_floats_as_floats() -> None:
    data = parse_yaml("a: 1e-4\nb: 5E3\nc: .5\nd: 1.0e+2\ne: 12\nf: 1e4x\ng: '1e-4'\n")
    assert data == {"a": 1e-4, "b": 5e3, "c": 0.5, "d": 100.0, "e": 12, "f": "1e4x", "g": "1e-4"}
    assert isinstance(data["a"], float) and isinstance(data["e"], int)


def test_overrides_set_nested_keys_with_yaml_values() -> None:
    data = apply_overrides({"optim": {"lr": 0.1}}, ["optim.lr=1e-4", "epochs=3", "optim.name=sgd"])
    assert data == {"optim": {"lr": 1e-4, "name": "sgd"}, "epochs": 3}


@pytest.mark.parametrize("bad", ["noequals", "=3", "a..b=1"])
def test_malformed_override_is_named(bad: str) -> None:
    with pytest.raises(ConfigError, match="KEY.SUB=VALUE"):
        parse_override(bad)


def test_all_problems_reported_together_with_hints(tmp_path) -> None:
    path = tmp_path / "exp.yaml"
    path.write_text("epochs: 0\noptim:\n  lrr: 0.1\n  name: rmsprop\nextra_top: 1\n")
    with pytest.raises(ConfigError) as info:
        load_config(Exp, str(path))
    msg = str(info.value)
    assert "4 problem(s)" in msg
    assert "epochs" in msg and "greater than or equal to 1" in msg and "(got 0)" in msg
    assert "optim.lrr: unknown key (did you mean 'optim.lr'?)" in msg
    assert "optim.name" in msg and "'rmsprop'" in msg and "adam" in msg
    assert "extra_top: unknown key" in msg and "allowed here: epochs, optim" in msg
    assert str(path) in msg


def test_override_errors_are_validated_too(tmp_path) -> None:
    path = tmp_path / "exp.yaml"
    path.write_text("epochs: 2\n")
    assert load_config(Exp, str(path), ["optim.lr=0.5"]).optim.lr == 0.5
    with pytest.raises(ConfigError, match="optim.lr"):
        load_config(Exp, str(path), ["optim.lr=2"])


def test_configs_are_frozen() -> None:
    exp = validate(Exp, {})
    with pytest.raises(Exception):
        exp.epochs = 3  # type: ignore[misc]


def test_missing_file_and_non_mapping(tmp_path) -> None:
    with pytest.raises(ConfigError, match="file not found"):
        load_config(Exp, str(tmp_path / "nope.yaml"))
    path = tmp_path / "list.yaml"
    path.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="must be a mapping"):
        load_config(Exp, str(path))
    path.write_text("a: [1,\n")
    with pytest.raises(ConfigError, match="not valid YAML"):
        load_config(Exp, str(path))
