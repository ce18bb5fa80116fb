"""A real Ray Tune grid search (``tune.search: grid``) with a stand-in training: each point once,
a failed point re-run by ``--resume``, nothing re-run once every point finished."""

from __future__ import annotations

import functools
import json
import sys
from pathlib import Path
from typing import Any

import pytest

from affectlab.tuning import parse_sweep
from affectlab.tuning.sweep import run_sweep

pytestmark = pytest.mark.slow

BASE: dict[str, Any] = {
    "data": {"features": "/nonexistent/preprocessed"},
    "model": {"name": "stacked_intraatt", "kwargs": {"hidden": 8}},
    "training": {"max_epochs": 6},
    "scaling": {"runner": "in_process"},
}


def sweep_data(space: dict[str, Any]) -> dict[str, Any]:
    return {"base": BASE, "space": space, "tune": {"metric": "val_uar", "mode": "max", "search": "grid"}}


def key(params: dict[str, Any]) -> str:
    return json.dumps(params, sort_keys=True)


# -- a real Ray Tune grid search (stand-in training: no data, a second or so per trial) -----
def fake_train(config: Any, *, out: str, reporter: Any, fail_marker: str | None = None) -> None:
    """Reports 3 epochs whose val_uar depends on the configuration; fails once if asked to."""
    import os

    flag = config.training.class_weights
    if fail_marker and not flag and config.training.lr == 0.01 and not os.path.exists(fail_marker):
        Path(fail_marker).write_text("failed once")
        raise RuntimeError("a training error")
    value = (0.6 if flag else 0.5) + config.training.lr
    for epoch in range(1, 4):
        reporter({"epoch": epoch, "val_uar": value * epoch / 3, "best_epoch": epoch})


@pytest.mark.timeout(300)
def test_a_grid_sweep_on_ray_runs_each_point_once_and_resume_reruns_only_the_failed_one(
        ray_local: None, tmp_path: Path) -> None:
    import ray

    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # ship fake_train to the trials
    sweep = parse_sweep(sweep_data({"training.class_weights": {"grid": [True, False]},
                                    "training.lr": {"grid": [0.001, 0.01]}}))
    out = tmp_path / "sweep"
    train = functools.partial(fake_train, fail_marker=str(tmp_path / "failed"))
    lines: list[str] = []
    summary = run_sweep(sweep, out=str(out), train_fn=train, echo=lines.append)
    assert (summary.requested, summary.finished, summary.ran_now) == (4, 3, 4)  # one training error
    assert "Optuna grid search (2 x 2 = 4 points, order seed 0) + no early stopping (6 epochs); 4 trials" in lines[0]

    resumed = run_sweep(sweep, out=str(out), resume=True, train_fn=train, echo=lines.append)
    assert (resumed.finished, resumed.ran_now) == (4, 1)
    assert resumed.best_params == {"training.class_weights": True, "training.lr": 0.01}
    assert resumed.best_value == pytest.approx(0.61)
    starts = [json.loads(line) for line in (out / "ledger.jsonl").read_text().splitlines()]
    starts = [e for e in starts if e["event"] == "start"]
    assert [e["part"] for e in starts] == ["part-001"] * 4 + ["part-002"]
    assert starts[-1]["params"] == {"training.class_weights": False, "training.lr": 0.01}  # only the failed one
    assert len({key(e["params"]) for e in starts[:4]}) == 4

    again = run_sweep(sweep, out=str(out), resume=True, train_fn=train, echo=None)
    assert (again.finished, again.ran_now) == (4, 0)  # nothing left: nothing runs
