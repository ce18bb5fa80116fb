"""Sweep files: distributions, space keys checked against the base config, every problem at once."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from affectlab.errors import ConfigError
from affectlab.tuning import load_sweep, parse_sweep, trial_config
from affectlab.tuning.space import Dimension

BASE: dict[str, Any] = {
    "data": {"features": "/nonexistent/preprocessed"},
    "model": {"name": "stacked_intraatt", "kwargs": {"hidden": 8}},
    "training": {"max_epochs": 6},
    "scaling": {"runner": "in_process"},
}


def sweep_data(space: dict[str, Any] | None = None, tune: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "base": copy.deepcopy(BASE),
        "space": space if space is not None else {"training.lr": {"loguniform": [1e-4, 1e-2]}},
        "tune": tune or {},
    }


def problems(data: dict[str, Any]) -> str:
    with pytest.raises(ConfigError) as info:
        parse_sweep(data, source="s.yaml")
    return str(info.value)


def test_valid_sweep_parses_every_kind_of_dimension() -> None:
    sweep = parse_sweep(sweep_data({
        "training.lr": {"loguniform": [1e-4, 1e-2]},
        "model.kwargs.dropout": {"uniform": [0.0, 0.5], "step": 0.1},
        "model.kwargs.window": {"int": [5, 25], "step": 5},
        "model.name": {"choice": ["stacked_intraatt", "stacked2_intraatt"]},
    }, {"num_samples": 3, "asha": {"grace_period": 2, "max_t": 4}}))
    assert [d.kind for d in sweep.space.values()] == ["loguniform", "uniform", "int", "choice"]
    assert sweep.tune.num_samples == 3 and sweep.max_t == 4
    dists = {k: d.to_optuna() for k, d in sweep.space.items()}
    assert dists["training.lr"].log and dists["model.kwargs.window"].step == 5
    assert dists["model.name"].choices == ("stacked_intraatt", "stacked2_intraatt")


def test_max_t_defaults_to_and_is_capped_by_the_epoch_budget() -> None:
    assert parse_sweep(sweep_data()).max_t == 6
    assert parse_sweep(sweep_data(tune={"asha": {"max_t": 50}})).max_t == 6


def test_trial_config_applies_dotted_params_and_revalidates() -> None:
    sweep = parse_sweep(sweep_data())
    config = trial_config(sweep.base, {"training.lr": 0.003, "model.kwargs.window": 10})
    assert config.training.lr == 0.003 and config.model.kwargs == {"hidden": 8, "window": 10}
    assert sweep.base.training.lr != 0.003  # the base is left alone
    with pytest.raises(ConfigError, match="training.batch_size"):
        trial_config(sweep.base, {"training.batch_size": 0})


def test_all_problems_are_reported_at_once_naming_keys() -> None:
    text = problems(sweep_data(
        {
            "training.lrr": {"loguniform": [1e-4, 1e-2]},          # not a key of base
            "training.lr": {"loguniform": [0, 1]},                 # bad bounds
            "training.batch_size": {"choice": [0, 8]},             # 0 rejected by the base
            "training.max_epochs.x": {"int": [1, 2]},              # below a leaf
            "model.kwargs.window_mode": {"choice": ["pa", "zz"]},  # rejected by the model builder
            "training.seed": {"uniform": [1, 2], "log": True},     # log only for int
            "x": 3,
        },
        {"metrc": "val_uar", "mode": "maxx", "asha": {"grace_period": 5, "max_t": 2}},
    ))
    for needle in (
        "space.training.lrr: not a key of the base config ('lrr'",
        "space.training.lr: loguniform: bounds must be > 0",
        "space.training.batch_size: value 0",
        "space.training.max_epochs.x: not a key of the base config ('x'",
        "space.model.kwargs.window_mode: value 'zz'",
        "must be one of bi, pa",
        "space.training.seed: log applies to int only",
        "space.x: must be a mapping",
        "tune.metrc: unknown key (did you mean 'metric'?)",
        "tune.mode:",
        "tune.asha: grace_period (5) must not exceed max_t (2)",
    ):
        assert needle in text, f"{needle!r} missing from:\n{text}"
    assert "problem(s)" in text


def test_values_are_checked_together_with_the_searched_architecture() -> None:
    # `window` is only valid for the IntraAtt models: fine while model.name is searched among them ...
    ok = sweep_data({"model.name": {"choice": ["stacked_intraatt", "enc_interatt_dec_intraatt"]},
                     "model.kwargs.window": {"int": [5, 10]}})
    parse_sweep(ok)
    # ... but a choice that cannot take it is caught before anything runs, naming the combination
    bad = sweep_data({"model.name": {"choice": ["stacked_intraatt", "stacked"]}, "model.kwargs.window": {"int": [5, 10]}})
    text = problems(bad)
    assert "space.model.name: value 'stacked' (with model.kwargs.window=5)" in text


def test_a_sweep_needs_a_space_and_a_valid_base() -> None:
    data = sweep_data()
    data["space"] = None
    data["base"]["training"]["lr"] = -1
    text = problems(data)
    assert "space: required for a sweep" in text
    assert "base.training.lr: Input should be greater than 0" in text  # both at once


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"loguniform": [1e-2, 1e-4]}, "low must be below high"),
        ({"uniform": [0, 1], "choice": [1]}, "exactly one"),
        ({"choice": [1, 1]}, "distinct"),
        ({"int": [1, 9], "step": 0.5}, "whole number"),
        ({"choice": [1], "step": 1}, "step applies to uniform and int only"),
    ],
)
def test_bad_dimensions(raw: dict[str, Any], message: str) -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match=message):
        Dimension.model_validate(raw)


def test_shipped_search_spaces_are_valid() -> None:
    from pathlib import Path

    root = Path(__file__).resolve().parents[3] / "search_spaces"
    files = sorted(root.glob("*.yaml"))
    assert files
    for path in files:
        if path.name == "vsr.yaml":  # a pipeline file: its space sweeps stage 3
            from affectlab.training.vsr_pipeline import load_pipeline, stage_sweep

            sweep = stage_sweep(load_pipeline(str(path)), "runs/vsr/visual")
        else:
            sweep = load_sweep(str(path))
        assert sweep.space and sweep.tune.num_samples >= 1


def test_fingerprint_ignores_the_number_of_samples_only() -> None:
    a = parse_sweep(sweep_data(tune={"num_samples": 3}))
    b = parse_sweep(sweep_data(tune={"num_samples": 30}))
    c = parse_sweep(sweep_data(tune={"seed": 1}))
    assert a.fingerprint() == b.fingerprint() != c.fingerprint()


def test_overrides_reach_base_space_and_tune() -> None:
    sweep = parse_sweep(sweep_data(), overrides=[
        "training.lr=0.002",                                         # base (no prefix)
        "space.model.kwargs.window={int: [5, 10]}",                  # a dotted space key
        "space.training.lr={loguniform: [1e-3, 1e-1]}",
        "tune.asha.grace_period=2",
    ])
    assert sweep.base.training.lr == 0.002
    assert sweep.space["model.kwargs.window"].bounds == (5, 10)
    assert sweep.space["training.lr"].bounds == (1e-3, 1e-1)
    assert sweep.tune.asha is not None and sweep.tune.asha.grace_period == 2
