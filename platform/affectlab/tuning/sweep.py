"""Run a sweep: Ray Tune with Optuna's TPE (seeded, persisted) proposing and ASHA stopping.

Each trial trains one configuration with the same code as ``affectlab train``: in the trial's
own process for single-worker configs (no worker start-up: right for small models), or by
starting a ``TorchTrainer`` from the trial function for multi-worker / GPU configs (Ray Train
V2's Train-in-Tune pattern, metrics forwarded per epoch). Trials report every epoch; ASHA stops
the losers early; concurrency follows the cluster's CPUs; ``resume=True`` continues a sweep
whose driver was interrupted (see :mod:`affectlab.tuning.state`).
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from affectlab import storage
from affectlab.runtime import quiet_tune_output
from affectlab.tuning import state as st
from affectlab.tuning.space import Sweep, trial_config
from affectlab.tuning.trainable import (
    TrainFn,
    TuneReporter,
    make_trainable,
    max_concurrent,
    objective_key,
    runner,
    shared_corpus,
    trial_resources,
)

__all__ = ["SweepSummary", "TrainFn", "TuneReporter", "make_trainable", "objective_key", "run_sweep", "shared_corpus",
           "trial_resources"]


@dataclass(frozen=True)
class SweepSummary:
    """Outcome of a sweep (all runs of it so far)."""

    out: str
    metric: str
    mode: str
    requested: int
    finished: int
    ran_now: int
    epochs_now: int
    best_value: float | None
    best_params: dict[str, Any]
    best_trial_id: str | None


def _spec(sweep: Sweep, samples: int) -> dict[str, Any]:
    return {
        "source": sweep.source,
        "fingerprint": sweep.fingerprint(),
        "num_samples": samples,
        "base": sweep.base.model_dump(mode="json"),
        "space": {k: v.model_dump(mode="json", by_alias=True, exclude_none=True) for k, v in sweep.space.items()},
        "tune": sweep.tune.model_dump(mode="json"),
    }


def _searcher(sweep: Sweep, study: Any, journal: Any, history_trials: int) -> Any:
    import optuna

    from affectlab.tuning.searcher import DedupOptunaSearch

    # A resumed run must not replay the seeded random start-up proposals of the first run:
    # offset the seed by the number of trials already in the study (still deterministic).
    sampler = optuna.samplers.TPESampler(
        seed=sweep.tune.seed + history_trials,
        n_startup_trials=sweep.tune.startup_trials,
        constant_liar=True,
    )
    return DedupOptunaSearch(
        space={k: v.to_optuna() for k, v in sweep.space.items()},
        metric=objective_key(sweep),
        mode=sweep.tune.mode,
        sampler=sampler,
        study_name=study.study_name,
        storage=journal,
    )


def _scheduler(sweep: Sweep, curves: dict[str, dict[int, float]]) -> Any:
    from affectlab.tuning.callbacks import ResumableASHA

    asha = sweep.tune.asha
    if asha is None:
        return None
    max_t = sweep.max_t
    scheduler = ResumableASHA(
        time_attr="training_iteration",
        metric=objective_key(sweep),
        mode=sweep.tune.mode,
        max_t=max_t,
        grace_period=min(asha.grace_period, max_t),
        reduction_factor=asha.reduction_factor,
        stop_last_trials=False,  # trials end by themselves at max_t (their epoch budget)
    )
    scheduler.seed(curves)
    return scheduler


def run_sweep(
    sweep: Sweep,
    *,
    out: str,
    samples: int | None = None,
    resume: bool = False,
    train_fn: TrainFn | None = None,
    echo: Callable[[str], None] | None = print,
    verbose: bool = False,
) -> SweepSummary:
    """Run (or resume) a sweep on the Ray this process is connected to.

    Args:
        sweep: The validated sweep (see :func:`affectlab.tuning.space.load_sweep`).
        out: Output directory or ``s3://`` URI.
        samples: Number of trials in all (default: ``tune.num_samples``; on resume: as recorded).
        resume: Continue the sweep in ``out``: finished trials are kept, interrupted ones rerun.
        train_fn: Training function (default: the one behind ``affectlab train``).
        echo: Progress output (None for silence).
        verbose: Print every epoch's metrics.

    Returns:
        A :class:`SweepSummary`; also written to ``<out>/summary.json``.

    Raises:
        StorageError: ``out`` already holds a sweep (without ``resume``) or none (with it).
        ConfigError: On resume, the sweep file differs from the recorded one.
    """
    from affectlab.tuning.callbacks import SweepLedger

    out = out if storage.is_remote(out) else os.path.abspath(out)  # trials run in other processes
    paths = st.SweepPaths.for_output(out)
    recorded = _read_spec(paths) if resume else None
    total = samples or (recorded or {}).get("num_samples") or sweep.tune.num_samples
    st.write_spec(paths, _spec(sweep, total), resume=resume)
    if resume:
        paths.pull()
    else:
        paths.reset_local()
    study, journal = st.open_study(paths, direction="maximize" if sweep.tune.mode == "max" else "minimize")
    history = st.prepare_history(study, paths, objective_key(sweep))
    remaining = total - history.finished
    _say(echo, _opening(sweep, paths.out, total, history, remaining))
    if remaining <= 0:
        return _finish(sweep, paths, study, total, ran=0, epochs=0, echo=echo)

    scheduler = _scheduler(sweep, history.curves)
    ledger = SweepLedger(
        paths.ledger, part=st.next_part(paths), metric=objective_key(sweep), mode=sweep.tune.mode, total=total,
        first_number=_trials_started(paths) + 1, scheduler=scheduler, echo=echo, on_finish=paths.push,
        verbose=verbose,
    )
    ledger.seed_best(history.curves)
    tuner = _tuner(sweep, paths, train_fn=train_fn, scheduler=scheduler, ledger=ledger, remaining=remaining,
                   searcher=_searcher(sweep, study, journal, history.total_trials))
    with quiet_tune_output():
        tuner.fit()
    return _finish(sweep, paths, study, total, ran=len(ledger.numbers), epochs=ledger.epochs, echo=echo)


def _tuner(sweep: Sweep, paths: st.SweepPaths, *, train_fn: TrainFn | None, scheduler: Any, ledger: Any,
           remaining: int, searcher: Any) -> Any:
    """The Tuner of one run of the sweep (Tune experiment ``<out>/tune/<part>``)."""
    from ray import tune

    trainable = make_trainable(sweep, out=paths.out, train_fn=train_fn)
    corpus = shared_corpus(sweep) if train_fn is None else None
    if corpus is not None:  # read once here, shared with the trials through the object store
        trainable = tune.with_parameters(trainable, corpus=corpus)
    return tune.Tuner(
        tune.with_resources(trainable, trial_resources(sweep)),
        tune_config=tune.TuneConfig(  # metric and mode live in the searcher and the scheduler
            search_alg=searcher,
            scheduler=scheduler,
            num_samples=remaining,
            max_concurrent_trials=max_concurrent(sweep, remaining),
            # in-process trials: one trial process trains many configs (start-up paid once)
            reuse_actors=runner(sweep) == "in_process",
        ),
        run_config=tune.RunConfig(
            name=ledger.part,
            storage_path=paths.tune_dir,
            callbacks=[ledger],
            verbose=0,
            failure_config=tune.FailureConfig(max_failures=0),
            checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
        ),
    )




def _read_spec(paths: st.SweepPaths) -> dict[str, Any] | None:
    if not storage.exists(paths.spec_uri):
        return None
    return json.loads(storage.read_text(paths.spec_uri))


def _trials_started(paths: st.SweepPaths) -> int:
    return sum(1 for e in st.read_ledger(paths.ledger) if e.get("event") == "start")


def _opening(sweep: Sweep, out: str, total: int, history: st.StudyHistory, remaining: int) -> str:
    dims = ", ".join(f"{k} ~ {v.describe()}" for k, v in sweep.space.items())
    asha = sweep.tune.asha
    stop = (
        f"ASHA (grace {asha.grace_period}, factor {asha.reduction_factor:g}, max {sweep.max_t} epochs)"
        if asha else f"no early stopping ({sweep.max_t} epochs)"
    )
    lines = [
        f"[sweep] {sweep.source} -> {out}",
        f"[sweep] {sweep.tune.mode} {sweep.tune.metric} over {dims}",
        f"[sweep] Optuna TPE (seed {sweep.tune.seed}) + {stop}; {total} trials",
    ]
    if history.finished or history.requeued:
        lines.append(
            f"[sweep] resuming: {history.finished} trial(s) already finished, "
            f"{history.requeued} interrupted trial(s) re-queued, {max(remaining, 0)} to run"
        )
    return "\n".join(lines)


def _say(echo: Callable[[str], None] | None, text: str) -> None:
    if echo is not None:
        echo(text)


def _finish(sweep: Sweep, paths: st.SweepPaths, study: Any, total: int, *, ran: int, epochs: int,
            echo: Callable[[str], None] | None) -> SweepSummary:
    from optuna.trial import TrialState

    from affectlab.tuning.searcher import is_duplicate

    done = [t for t in study.get_trials(deepcopy=False)
            if t.state in (TrialState.COMPLETE, TrialState.PRUNED) and not is_duplicate(t)]
    scored = [t for t in done if t.value is not None and not math.isnan(t.value)]
    best = None
    if scored:
        best = max(scored, key=lambda t: t.value if sweep.tune.mode == "max" else -t.value)
    best_id = _tune_id_for(paths, best.params) if best else None
    summary = SweepSummary(
        out=paths.out, metric=objective_key(sweep), mode=sweep.tune.mode, requested=total,
        finished=len(done), ran_now=ran, epochs_now=epochs,
        best_value=best.value if best else None, best_params=dict(best.params) if best else {},
        best_trial_id=best_id,
    )
    storage.write_text(storage.join(paths.out, "summary.json"), json.dumps(asdict(summary), indent=2))
    if best is not None:
        _write_best_config(sweep, paths, best.params)
    paths.push()
    if best is not None:
        _say(echo, f"[sweep] done: {len(done)}/{total} trials; best {objective_key(sweep)}={best.value:.4f} "
                   f"with {best.params}; config: {storage.join(paths.out, 'best_config.yaml')}")
    return summary


def _tune_id_for(paths: st.SweepPaths, params: dict[str, Any]) -> str | None:
    """Tune trial id of the finished trial with these params (from the ledger)."""
    for event in reversed(st.read_ledger(paths.ledger)):
        if event.get("event") in ("complete", "stopped") and event.get("params") == params:
            return event["trial_id"]
    return None


def _write_best_config(sweep: Sweep, paths: st.SweepPaths, params: dict[str, Any]) -> None:
    import yaml

    config = trial_config(sweep.base, params)
    text = (
        f"# best configuration of the sweep in {paths.out} ({sweep.tune.metric}, {sweep.tune.mode})\n"
        + yaml.safe_dump({"base": config.model_dump(mode="json")}, sort_keys=False)
    )
    storage.write_text(storage.join(paths.out, "best_config.yaml"), text)
