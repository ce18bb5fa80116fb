"""Sweep state: recorded spec, the Optuna study as the resume ledger, ASHA seeding, the ledger."""

from __future__ import annotations

import json
from types import SimpleNamespace

import optuna
import pytest
from optuna.trial import TrialState

from affectlab.errors import ConfigError, StorageError
from affectlab.tuning import state as st
from affectlab.tuning.callbacks import ResumableASHA, SweepLedger, format_params


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
    study2, _ = st.open_study(paths, direction="maximize")  # a new driver opens the same journal
    history = st.prepare_history(study2, paths, "val_uar")
    assert (history.finished, history.requeued, history.total_trials) == (2, 1, 4)
    states = [t.state for t in study2.get_trials()]
    assert states[3] == TrialState.FAIL and states[4] == TrialState.WAITING
    # the next proposal is the interrupted trial's configuration
    assert study2.ask(dist).params == running.params


def test_curves_come_from_finished_trials_of_the_ledger(tmp_path) -> None:
    ledger = tmp_path / "ledger.jsonl"
    events = [
        {"event": "start", "trial_id": "a"}, {"event": "result", "trial_id": "a", "iteration": 1, "metrics": {"m": 0.5}},
        {"event": "result", "trial_id": "a", "iteration": 2, "metrics": {"m": 0.7}}, {"event": "stopped", "trial_id": "a"},
        {"event": "start", "trial_id": "b"}, {"event": "result", "trial_id": "b", "iteration": 1, "metrics": {"m": 0.9}},
    ]
    ledger.write_text("\n".join(json.dumps(e) for e in events) + "\n{\"torn")
    assert st._curves_from_ledger(st.read_ledger(str(ledger)), "m") == {"a": {1: 0.5, 2: 0.7}}


def test_asha_seeded_with_earlier_curves_stops_a_worse_trial_at_once() -> None:
    fresh = ResumableASHA(metric="m", mode="max", max_t=8, grace_period=1, reduction_factor=2)
    seeded = ResumableASHA(metric="m", mode="max", max_t=8, grace_period=1, reduction_factor=2)
    seeded.seed({"old1": {1: 0.8, 2: 0.85}, "old2": {1: 0.9}})
    trial = SimpleNamespace(trial_id="new")
    for scheduler in (fresh, seeded):
        scheduler.on_trial_add(None, trial)
    result = {"training_iteration": 1, "m": 0.3}
    assert fresh.on_trial_result(None, trial, result) == "CONTINUE"
    assert seeded.on_trial_result(None, trial, result) == "STOP"
    assert seeded.stopped == {"new"}


def test_ledger_writes_events_and_prints_readable_progress(tmp_path) -> None:
    lines: list[str] = []
    scheduler = ResumableASHA(metric="val_uar", mode="max", max_t=4, grace_period=1)
    ledger = SweepLedger(str(tmp_path / "l.jsonl"), part="part-001", metric="val_uar", mode="max", total=2,
                         scheduler=scheduler, echo=lines.append)
    trial = SimpleNamespace(trial_id="t1", config={"training.lr": 0.00123}, last_result={}, status="RUNNING")
    ledger.on_trial_start(0, [trial], trial)
    result = {"training_iteration": 1, "val_uar": 0.6, "epoch": 1, "time_this_iter_s": 0.1, "done": False}
    ledger.on_trial_result(0, [trial], trial, result)
    trial.last_result = result
    scheduler.stopped.add("t1")
    ledger.on_trial_complete(0, [trial], trial)
    events = st.read_ledger(str(tmp_path / "l.jsonl"))
    assert [e["event"] for e in events] == ["start", "result", "stopped"]
    assert events[1]["metrics"] == {"val_uar": 0.6, "epoch": 1}
    assert lines[0] == "[sweep] trial 1/2 started: training.lr=0.00123"
    assert "stopped early by ASHA after 1 epoch(s): val_uar=0.6000" in lines[-1]


def test_format_params_is_sorted_and_compact() -> None:
    assert format_params({"b": 0.000123456, "a": "x"}) == "a=x b=0.000123"
