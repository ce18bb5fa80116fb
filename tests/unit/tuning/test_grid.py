"""Grid searches (``tune.search: grid``): the space expanded to its points, non-discrete entries
rejected with what to write instead, Optuna's GridSampler taking every combination exactly once,
and a resume that runs the unfinished combinations (failed ones again) and no finished one."""

from __future__ import annotations

import copy
import functools
import hashlib
import itertools
import json
import sys
from pathlib import Path
from typing import Any

import optuna
import pytest
from optuna.trial import TrialState

from affectlab.errors import ConfigError
from affectlab.tuning import parse_sweep
from affectlab.tuning import state as st
from affectlab.tuning.searcher import SweepGridSampler, is_duplicate
from affectlab.tuning.space import Dimension, grid_size
from affectlab.tuning.sweep import _opening, open_sweep_study, run_sweep, sampler, study_driver

BASE: dict[str, Any] = {
    "data": {"features": "/nonexistent/preprocessed"},
    "model": {"name": "stacked_intraatt", "kwargs": {"hidden": 8}},
    "training": {"max_epochs": 6},
    "scaling": {"runner": "in_process"},
}

# a boolean ablation (like issue 13's data.emotion.mean_face: {grid: [true, false]}; a key of the base at
# HEAD here) crossed with a float and a string grid: 2 x 3 x 2 = 12 points
SPACE: dict[str, Any] = {
    "training.class_weights": {"grid": [True, False]},
    "training.lr": {"grid": [0.001, 0.003, 0.01]},
    "model.kwargs.window_mode": {"grid": ["pa", "bi"]},
}


def sweep_data(space: dict[str, Any] | None = None, tune: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"base": copy.deepcopy(BASE), "space": copy.deepcopy(space if space is not None else SPACE),
            "tune": {"search": "grid", **(tune or {})}}


def problems(data: dict[str, Any]) -> str:
    with pytest.raises(ConfigError) as info:
        parse_sweep(data, source="s.yaml")
    return str(info.value)


def key(params: dict[str, Any]) -> str:
    return json.dumps(params, sort_keys=True)


def every_combination(grid: dict[str, list[Any]]) -> set[str]:
    return {key(dict(zip(grid, combo, strict=True))) for combo in itertools.product(*grid.values())}


# -- the space ------------------------------------------------------------------------------
def test_every_discrete_kind_expands_to_its_grid_points() -> None:
    sweep = parse_sweep(sweep_data({
        "training.class_weights": {"grid": [True, False]},                 # booleans
        "training.lr": {"grid": [0.001, 0.01]},                             # floats
        "model.kwargs.window_mode": {"choice": ["pa", "bi"]},              # a choice: its values
        "model.kwargs.window": {"int": [5, 15], "step": 5},                 # 5, 10, 15
    }))
    assert sweep.grid == {
        "training.class_weights": [True, False],
        "training.lr": [0.001, 0.01],
        "model.kwargs.window_mode": ["pa", "bi"],
        "model.kwargs.window": [5, 10, 15],
    }
    assert all(type(v) is bool for v in sweep.grid["training.class_weights"])
    assert grid_size(sweep.grid) == sweep.tune.num_samples == 2 * 2 * 2 * 3
    assert sweep.space["training.class_weights"].describe() == "grid{True, False}"
    points = lambda raw: Dimension.model_validate(raw).grid_points()  # noqa: E731
    assert points({"uniform": [0.0, 0.3], "step": 0.1}) == [0.0, 0.1, 0.2, 0.3]  # not 0.30000000000000004
    assert points({"uniform": [1.0, 2.2], "step": 0.5}) == [1.0, 1.5, 2.0]        # high off the step
    assert points({"int": [8, 30], "step": 8}) == [8, 16, 24]
    assert points({"grid": ["a", 1, 2.5, False]}) == ["a", 1, 2.5, False]          # types kept
    assert points({"choice": [True]}) == [True]


def test_a_grid_search_defaults_to_one_trial_per_point_and_no_early_stopping() -> None:
    sweep = parse_sweep(sweep_data())
    assert (sweep.tune.search, sweep.tune.num_samples, sweep.tune.asha) == ("grid", 12, None)
    assert sweep.max_t == 6  # every point trains its whole budget (its own early stopping only)
    assert parse_sweep(sweep_data(tune={"num_samples": 12})).tune.num_samples == 12  # the same number is fine
    # ASHA only when asked for, in the file or with --set
    explicit = parse_sweep(sweep_data(tune={"asha": {"grace_period": 2, "max_t": 4}}))
    assert explicit.tune.asha is not None and explicit.tune.asha.grace_period == 2 and explicit.max_t == 4
    overridden = parse_sweep(sweep_data(), overrides=["tune.asha.grace_period=3"])
    assert overridden.tune.asha is not None and overridden.tune.asha.grace_period == 3
    # a TPE sweep is unchanged: its defaults, its ASHA, its sampler
    tpe = parse_sweep({**sweep_data({"training.lr": {"choice": [0.001, 0.01]}}), "tune": {}})
    assert (tpe.tune.search, tpe.tune.num_samples, tpe.tune.asha is not None) == ("tpe", 16, True)
    assert isinstance(sampler(tpe), optuna.samplers.TPESampler)
    assert isinstance(sampler(parse_sweep(sweep_data())), SweepGridSampler)


def test_a_tpe_sweeps_fingerprint_is_what_it_was_before_grid_searches() -> None:
    # sweeps started before `search` existed must still resume: the default is left out of the hash
    tpe = parse_sweep({**sweep_data({"training.lr": {"loguniform": [1e-4, 1e-2]}}), "tune": {}})
    old_blob = {
        "base": tpe.base.model_dump(mode="json"),
        "space": {k: v.model_dump(mode="json", by_alias=True, exclude_none=True) for k, v in tpe.space.items()},
        "tune": tpe.tune.model_dump(mode="json", exclude={"num_samples", "max_concurrent", "search"}),
    }
    assert tpe.fingerprint() == hashlib.sha256(json.dumps(old_blob, sort_keys=True).encode()).hexdigest()[:16]
    explicit = parse_sweep({**sweep_data({"training.lr": {"loguniform": [1e-4, 1e-2]}}), "tune": {"search": "tpe"}})
    assert explicit.fingerprint() == tpe.fingerprint()
    as_grid = parse_sweep(sweep_data({"training.lr": {"choice": [1e-4, 1e-2]}}))
    as_tpe = parse_sweep({**sweep_data({"training.lr": {"choice": [1e-4, 1e-2]}}), "tune": {"asha": None}})
    assert as_grid.fingerprint() != as_tpe.fingerprint()  # the same space searched differently


# -- what is rejected -----------------------------------------------------------------------
@pytest.mark.parametrize(("entry", "needles"), [
    ({"loguniform": [3e-4, 1e-2]}, ["loguniform [0.0003, 0.01] has no grid points",
                                    "{grid: [0.0003, 0.001, 0.01]}"]),
    ({"uniform": [0.0, 0.5]}, ["uniform [0, 0.5] needs a step", "{uniform: [0, 0.5], step:", "{grid: [0, 0.5]}"]),
    ({"int": [5, 25]}, ["int [5, 25] needs a step", "{int: [5, 25], step: 1} tries all 21 integers"]),
    ({"int": [1, 64], "log": True}, ["with log: true has no grid points", "{grid: [1, 2, 4, 8, 16, 32, 64]}"]),
])
def test_an_entry_without_grid_points_is_an_error_naming_the_key_and_the_fix(entry: dict, needles: list[str]) -> None:
    text = problems(sweep_data({"model.kwargs.window": entry}))
    assert "space.model.kwargs.window: " in text
    for needle in needles:
        assert needle in text, f"{needle!r} missing from:\n{text}"


def test_all_grid_problems_are_reported_at_once() -> None:
    text = problems(sweep_data({
        "training.lr": {"loguniform": [1e-4, 1e-2]},
        "model.kwargs.dropout": {"uniform": [0.0, 0.5]},
        "training.batch_size": {"grid": [8, 0, 16]},               # a middle point the base rejects
        "training.lrr": {"grid": [0.1]},                           # not a key of base
    }))
    for needle in (
        "space.training.lr: loguniform [0.0001, 0.01] has no grid points",
        "space.model.kwargs.dropout: uniform [0, 0.5] needs a step",
        "space.training.batch_size: value 0",
        "space.training.lrr: not a key of the base config",
    ):
        assert needle in text, f"{needle!r} missing from:\n{text}"
    assert "4 problem(s)" in text


def test_every_grid_point_is_checked_against_the_base_not_only_the_ends() -> None:
    text = problems(sweep_data({"model.kwargs.window_mode": {"grid": ["pa", "zz", "bi"]}}))
    assert "space.model.kwargs.window_mode: value 'zz'" in text


def test_grid_entries_need_a_grid_search_and_grid_searches_need_their_number_of_samples() -> None:
    tpe = problems({**sweep_data({"training.class_weights": {"grid": [True, False]}}), "tune": {}})
    assert "space.training.class_weights: grid: [...] lists the values of a grid search: add `search: grid`" in tpe
    assert "or write choice: [...] for TPE" in tpe
    count = problems(sweep_data(tune={"num_samples": 16}))
    assert ("tune.num_samples: 16, but the grid has 12 points (2 x 3 x 2) and a grid search runs each once: "
            "leave num_samples out (it defaults to 12) or set it to 12") in count
    typo = problems(sweep_data(tune={"search": "grids"}))
    assert "tune.search: Input should be 'tpe' or 'grid'" in typo and "lists the values" not in typo


@pytest.mark.parametrize("raw, message", [
    ({"grid": [1, 1]}, "grid: values must be distinct"),
    ({"grid": []}, "at least 1"),
    ({"grid": [1], "choice": [2]}, "exactly one"),
    ({"grid": [1], "step": 1}, "step applies to uniform and int only"),
])
def test_bad_grid_entries(raw: dict[str, Any], message: str) -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError, match=message):
        Dimension.model_validate(raw)


def test_samples_other_than_the_grid_size_are_refused_before_anything_runs(tmp_path: Path) -> None:
    sweep = parse_sweep(sweep_data())
    with pytest.raises(ConfigError, match="--samples 5, but the grid search has 12 points"):
        run_sweep(sweep, out=str(tmp_path / "sweep"), samples=5, echo=None)
    assert not (tmp_path / "sweep").exists()


def test_the_opening_line_says_grid_search() -> None:
    sweep = parse_sweep(sweep_data())
    text = _opening(sweep, "out", 12, st.StudyHistory(), 12)
    assert "[sweep] Optuna grid search (2 x 3 x 2 = 12 points, order seed 0) + no early stopping (6 epochs); " \
           "12 trials" in text
    assert "training.class_weights ~ grid{True, False}" in text


# -- the sampler and resume (the study driver, without Ray) ---------------------------------
def finish(driver: Any, trial_id: str, value: float) -> None:
    driver.observe(trial_id, {"epoch": 1, "val_uar": value, "best_epoch": 1})
    driver.tell(trial_id)


def test_every_combination_is_asked_exactly_once_even_when_all_run_at_once(tmp_path: Path) -> None:
    sweep = parse_sweep(sweep_data())
    paths = st.SweepPaths.for_output(str(tmp_path))
    study, journal, history = open_sweep_study(sweep, paths)
    driver = study_driver(sweep, journal, study.study_name, history.total_trials)
    asked = [driver.ask(f"t{i}") for i in range(sweep.tune.num_samples)]  # all running at once
    assert len({key(p) for p in asked}) == 12 and {key(p) for p in asked} == every_combination(sweep.grid)
    assert {type(p["training.class_weights"]) for p in asked} == {bool}
    for i in range(12):
        finish(driver, f"t{i}", 0.5 + i / 100)  # telling the last one does not raise (no Study.stop)
    trials = driver.study.get_trials()
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 12 and driver.duplicates == 0
    assert driver.study.sampler.is_exhausted(driver.study)


def test_one_at_a_time_in_the_seeded_order(tmp_path: Path) -> None:
    sweep = parse_sweep(sweep_data({"training.class_weights": {"grid": [True, False]},
                                    "model.kwargs.window": {"int": [5, 15], "step": 5}}))
    orders = []
    for run in ("a", "b"):
        paths = st.SweepPaths.for_output(str(tmp_path / run))
        study, journal, history = open_sweep_study(sweep, paths)
        driver = study_driver(sweep, journal, study.study_name, history.total_trials)
        order = []
        for i in range(6):
            order.append(key(driver.ask(f"t{i}")))
            finish(driver, f"t{i}", 0.5)
        assert set(order) == every_combination(sweep.grid)
        orders.append(order)
    assert orders[0] == orders[1]  # tune.seed fixes the order


def test_resume_runs_the_unfinished_combinations_failed_ones_again_and_no_finished_one(tmp_path: Path) -> None:
    sweep = parse_sweep(sweep_data())  # 12 points
    paths = st.SweepPaths.for_output(str(tmp_path))
    study, journal, history = open_sweep_study(sweep, paths)
    driver = study_driver(sweep, journal, study.study_name, history.total_trials)
    first = [driver.ask(f"t{i}") for i in range(5)]  # the driver is killed with 5 started:
    finish(driver, "t0", 0.6)
    finish(driver, "t1", 0.7)
    driver.tell("t2", error=True)                    # a training error
    driver.observe("t3", {"epoch": 1, "val_uar": 0.4, "best_epoch": 1})  # t3, t4 interrupted
    finished = {key(first[0]), key(first[1])}

    # the next run: the interrupted ones and the failed one are queued, the rest comes from the grid
    study, journal, history = open_sweep_study(sweep, paths)
    assert (history.finished, history.requeued, history.retried) == (2, 2, 1)
    assert _opening(sweep, "out", 12, history, 10).endswith(
        "resuming: 2 trial(s) already finished, 2 interrupted trial(s) re-queued, "
        "1 failed combination(s) queued again, 10 to run")
    # opening the study again (a resume killed before it asked anything) queues nothing twice
    study, journal, history = open_sweep_study(sweep, paths)
    assert (history.requeued, history.retried) == (0, 0)
    assert len(study.get_trials(states=(TrialState.WAITING,))) == 3
    driver = study_driver(sweep, journal, study.study_name, history.total_trials)
    second = [driver.ask(f"r{i}") for i in range(12 - history.finished)]
    assert {key(p) for p in second[:3]} == {key(p) for p in first[2:5]}  # queued ones first
    assert len({key(p) for p in second}) == 10 and not {key(p) for p in second} & finished
    assert {key(p) for p in second} | finished == every_combination(sweep.grid)
    for i in range(10):
        finish(driver, f"r{i}", 0.5)
    done = [t for t in driver.study.get_trials() if t.state == TrialState.COMPLETE and not is_duplicate(t)]
    assert len(done) == 12 and {key(t.params) for t in done} == every_combination(sweep.grid)

    # and once every combination has finished, a resume has nothing to run
    study, _, history = open_sweep_study(sweep, paths)
    assert (history.finished, history.requeued, history.retried) == (12, 0, 0)
