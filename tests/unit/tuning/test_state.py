"""Sweep state: recorded spec, the Optuna study as the resume ledger (pruner rungs included), the ledger."""

from __future__ import annotations

from types import SimpleNamespace

import optuna
import pytest
from optuna.trial import TrialState

from affectlab.errors import ConfigError, StorageError
from affectlab.tuning import state as st
from affectlab.tuning.callbacks import SweepLedger, format_params
from affectlab.tuning.searcher import TUNE_ID_ATTR, StudyDriver


def spec(fingerprint: str = "abc", samples: int = 4) -> dict:
    return {"source": "s.yaml", "fingerprint": fingerprint, "num_samples": samples,
            "base": {"x": 1}, "space": {"lr": {"loguniform": [0.1, 1.0]}}, "tune": {"seed": 0}}


def test_spec_is_recorded_then_checked_on_resume(tmp_path) -> None:
    paths = st.SweepPaths.for_output(str(tmp_path / "sweep"))
    st.write_spec(paths, spec(), resume=False)
    with pytest.raises(StorageError, match="already holds a sweep; pass --resume"):
        st.write_spec(paths, spec(), resume=False)
    resumed = st.write_spec(paths, spec(samples=9), resume=True)
    assert resumed["num_samples"] == 9 and len(resumed["resumed_at"]) == 1
    changed = spec(fingerprint="other")
    changed["space"] = {"lr": {"loguniform": [0.2, 1.0]}}
    with pytest.raises(ConfigError, match=r"changed: space"):
        st.write_spec(paths, changed, resume=True)


def test_resume_needs_an_existing_sweep(tmp_path) -> None:
    with pytest.raises(StorageError, match="no sweep to resume"):
        st.write_spec(st.SweepPaths.for_output(str(tmp_path)), spec(), resume=True)


def test_s3_outputs_keep_the_journal_in_a_local_cache(monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    paths = st.SweepPaths.for_output("s3://bucket/sweeps/a")
    assert paths.remote and paths.journal.startswith(str(tmp_path))
    assert paths.local_dir != st.SweepPaths.for_output("s3://bucket/sweeps/b").local_dir


def test_interrupted_trials_are_requeued_and_finished_ones_counted(tmp_path) -> None:
    paths = st.SweepPaths.for_output(str(tmp_path))
    study, _ = st.open_study(paths, direction="maximize")
    dist = {"lr": optuna.distributions.FloatDistribution(0.1, 1.0)}
    done = study.ask(dist)
    study.tell(done, 0.5)
    pruned = study.ask(dist)
    study.tell(pruned, state=TrialState.PRUNED)
    failed = study.ask(dist)
    study.tell(failed, state=TrialState.FAIL)
    running = study.ask(dist)  # the driver died while this one ran
    running.set_user_attr(TUNE_ID_ATTR, "t3")  # (as the driver marks a trial it hands to Tune)
    in_ask = study.ask({"lr": dist["lr"]})  # ... and while asking this one: never handed to Tune
    study2, _ = st.open_study(paths, direction="maximize")  # a new driver opens the same journal
    history = st.prepare_history(study2)
    assert (history.finished, history.requeued, history.total_trials, history.best_value) == (2, 1, 5, 0.5)
    states = [t.state for t in study2.get_trials()]
    assert states[3] == TrialState.FAIL and states[4] == TrialState.FAIL and states[5] == TrialState.WAITING
    assert in_ask.params  # it had a parameter, yet is not queued again: only trials Tune ran are
    # the next proposal is the interrupted trial's configuration
    assert study2.ask(dist).params == running.params


def test_best_trial_is_the_best_that_ran_its_budget(tmp_path) -> None:
    paths = st.SweepPaths.for_output(str(tmp_path))
    study, _ = st.open_study(paths, direction="minimize")
    dist = {"lr": optuna.distributions.FloatDistribution(0.1, 1.0)}
    assert st.best_trial(study) is None
    for value, state in ((0.4, TrialState.COMPLETE), (0.1, TrialState.PRUNED), (0.3, TrialState.COMPLETE),
                         (0.3, TrialState.COMPLETE)):
        trial = study.ask(dist)
        trial.report(value, step=1)
        study.tell(trial, value if state == TrialState.COMPLETE else None, state=state)
    duplicate = study.ask(dist)
    duplicate.set_user_attr("duplicate_of", 2)
    study.tell(duplicate, 0.0)
    best = st.best_trial(study)
    assert (best.number, best.value) == (2, 0.3)  # not the pruned 0.1, not the duplicate; ties: earliest


def test_asha_rungs_survive_a_resume_because_they_live_in_the_journal(tmp_path) -> None:
    paths = st.SweepPaths.for_output(str(tmp_path))
    pruner = optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=2)
    dist = {"lr": optuna.distributions.FloatDistribution(0.1, 1.0)}
    first, _ = st.open_study(paths, direction="maximize", pruner=pruner)
    driver = StudyDriver(first, dist, metric="m", mode="max", max_t=8)
    for tid, value in (("a", 0.8), ("b", 0.9)):
        driver.ask(tid)
        driver.observe(tid, {"epoch": 1, "m": value, "best_epoch": 1})
        driver.observe(tid, {"epoch": 2, "m": value, "best_epoch": 2})
        driver.tell(tid)
    # a new driver process opens the same journal: a worse trial is stopped at the first rung
    # at once, and a fresh study (no history) would have let it through
    for fresh in (False, True):
        where = st.SweepPaths.for_output(str(tmp_path / "fresh")) if fresh else paths
        resumed, _ = st.open_study(where, direction="maximize", pruner=pruner)
        driver = StudyDriver(resumed, dist, metric="m", mode="max", max_t=8)
        driver.ask("new")
        assert driver.observe("new", {"epoch": 1, "m": 0.3, "best_epoch": 1}) is (not fresh)


def test_ledger_writes_events_and_prints_readable_progress(tmp_path) -> None:
    lines: list[str] = []
    paths = st.SweepPaths.for_output(str(tmp_path / "sweep"))
    study, _ = st.open_study(paths, direction="maximize")
    driver = StudyDriver(study, {"training.lr": optuna.distributions.FloatDistribution(1e-4, 1e-2, log=True)},
                         metric="val_uar", mode="max", max_t=4)
    ledger = SweepLedger(str(tmp_path / "l.jsonl"), part="part-001", metric="val_uar", mode="max", total=2,
                         driver=driver, best=0.55, echo=lines.append)
    params = driver.ask("t1")
    trial = SimpleNamespace(trial_id="t1", config=params, last_result={}, status="RUNNING")
    ledger.on_trial_start(0, [trial], trial)
    for epoch, (value, kept) in enumerate([(0.6, 1), (0.5, 1)], start=1):
        result = {"training_iteration": epoch, "epoch": epoch, "val_uar": value, "best_epoch": kept,
                  "time_this_iter_s": 0.1, "done": False}
        driver.observe("t1", result)
        ledger.on_trial_result(0, [trial], trial, result)
    driver.pruned.add("t1")  # as if the pruner had stopped it
    driver.tell("t1")
    ledger.on_trial_complete(0, [trial], trial)
    events = st.read_ledger(str(tmp_path / "l.jsonl"))
    assert [e["event"] for e in events] == ["start", "result", "result", "stopped"]
    assert events[1]["metrics"] == {"val_uar": 0.6, "epoch": 1, "best_epoch": 1}
    assert (events[2]["iteration"], events[2]["objective"], events[2]["kept_epoch"]) == (2, 0.6, 1)
    assert (events[3]["objective"], events[3]["kept_epoch"]) == (0.6, 1)
    assert lines[0] == f"[sweep] trial 1/2 started: training.lr={params['training.lr']:.3g}"
    assert lines[-1] == ("[sweep] trial 1/2 stopped early by ASHA after 2 epoch(s): val_uar=0.6000 "
                         "(weights of epoch 1) (best so far 0.5500, an earlier run)")  # pruned: not a best


def test_format_params_is_sorted_and_compact() -> None:
    assert format_params({"b": 0.000123456, "a": "x"}) == "a=x b=0.000123"
