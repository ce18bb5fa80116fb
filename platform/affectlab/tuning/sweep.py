"""Run a sweep: Ray Tune runs the trials, an Optuna study (TPE, seeded, persisted) proposes and
its ASHA pruner stops.

Each trial trains one configuration with the same code as ``affectlab train``: in the trial's
own process for single-worker configs (no worker start-up: right for small models), or by
starting a ``TorchTrainer`` from the trial function for multi-worker / GPU configs (Ray Train
V2's Train-in-Tune pattern, metrics forwarded per epoch). Trials report every epoch; the
driver turns each report into the trial's objective (the metric of the weights the training
keeps, :mod:`affectlab.tuning.searcher`) and Optuna's ``SuccessiveHalvingPruner`` (asynchronous
successive halving, ASHA) stops the losers at its rungs; concurrency follows the cluster's CPUs;
``resume=True`` continues a sweep whose driver was interrupted (see :mod:`affectlab.tuning.state`).

A grid search (``tune.search: grid``) replaces TPE with Optuna's ``GridSampler``
(:class:`~affectlab.tuning.searcher.SweepGridSampler`): the sweep has one trial per combination
of the space (:attr:`~affectlab.tuning.space.Sweep.grid`), each searched key a categorical over
its grid values; a resume runs the combinations that have not finished (failed ones again) and
none that has. Without an explicit ``tune.asha`` nothing is stopped early.

The best trial is the best of the trials that ran their whole epoch budget (Optuna's COMPLETE
state; a pruned trial's value is the objective after fewer epochs than its configuration says);
``<out>/best_config.yaml`` is exactly the configuration it trained
(:func:`~affectlab.tuning.trainable.trial_run_config`, ``training.max_epochs`` included), and
``summary.json`` records its objective, the epoch whose weights it kept and its Tune trial id.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

from affectlab import storage
from affectlab.errors import ConfigError
from affectlab.runtime import quiet_tune_output
from affectlab.tracking import Tracking, track_sweep
from affectlab.tuning import state as st
from affectlab.tuning.space import Sweep, grid_size
from affectlab.tuning.trainable import (
    TrainFn,
    TuneReporter,
    make_trainable,
    max_concurrent,
    objective_key,
    runner,
    shared_corpus,
    trial_resources,
    trial_run_config,
)

__all__ = ["SweepSummary", "TrainFn", "TuneReporter", "make_trainable", "objective_key", "open_sweep_study", "pruner",
           "run_sweep", "sampler", "shared_corpus", "study_driver", "trial_resources", "trial_run_config"]


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
    best_value: float | None  # the best trial's objective: its metric at the epoch whose weights it kept
    best_params: dict[str, Any]
    best_trial_id: str | None  # Tune trial id: its outputs are in <out>/trials/<id>
    best_epoch: int | None = None  # the epoch whose weights the best trial kept


def _spec(sweep: Sweep, samples: int) -> dict[str, Any]:
    return {
        "source": sweep.source,
        "fingerprint": sweep.fingerprint(),
        "num_samples": samples,
        "base": sweep.base.model_dump(mode="json"),
        "space": {k: v.model_dump(mode="json", by_alias=True, exclude_none=True) for k, v in sweep.space.items()},
        "tune": sweep.tune.model_dump(mode="json"),
    }


def pruner(sweep: Sweep) -> Any:
    """The study's pruner: Optuna's ``SuccessiveHalvingPruner`` (ASHA) from ``tune.asha``, whose
    rungs are at ``grace_period * reduction_factor**k`` epochs; ``NopPruner`` without ``asha``."""
    import optuna

    asha = sweep.tune.asha
    if asha is None:
        return optuna.pruners.NopPruner()
    return optuna.pruners.SuccessiveHalvingPruner(
        min_resource=min(asha.grace_period, sweep.max_t), reduction_factor=asha.reduction_factor,
        min_early_stopping_rate=0,
    )


def sampler(sweep: Sweep, history_trials: int = 0) -> Any:
    """This run's Optuna sampler: seeded TPE, or the grid sampler of a grid search."""
    import optuna

    from affectlab.tuning.searcher import SweepGridSampler

    if sweep.tune.search == "grid":  # the same seed in every run: the grid's order must not change
        return SweepGridSampler(sweep.grid, seed=sweep.tune.seed)
    # A resumed run must not replay the seeded random start-up proposals of the first run:
    # offset the seed by the number of trials already in the study (still deterministic).
    return optuna.samplers.TPESampler(
        seed=sweep.tune.seed + history_trials,
        n_startup_trials=sweep.tune.startup_trials,
        constant_liar=True,
    )


def study_driver(sweep: Sweep, journal: Any, study_name: str, history_trials: int) -> Any:
    """The study driver of this run: the study loaded with this run's sampler and the pruner."""
    import optuna
    from optuna.distributions import CategoricalDistribution

    from affectlab.tuning.searcher import StudyDriver

    study = optuna.load_study(study_name=study_name, storage=journal, sampler=sampler(sweep, history_trials),
                              pruner=pruner(sweep))
    if sweep.tune.search == "grid":  # exactly the grid's values (a stepped range: its points)
        space = {k: CategoricalDistribution(values) for k, values in sweep.grid.items()}
    else:
        space = {k: v.to_optuna() for k, v in sweep.space.items()}
    return StudyDriver(study, space, metric=objective_key(sweep), mode=sweep.tune.mode, max_t=sweep.max_t)


def open_sweep_study(sweep: Sweep, paths: st.SweepPaths) -> tuple[Any, Any, st.StudyHistory]:
    """Open (or create) the sweep's study and settle what earlier runs left.

    Interrupted trials are failed and queued again (:func:`~affectlab.tuning.state.prepare_history`);
    in a grid search, so are combinations whose trials failed (:func:`~affectlab.tuning.state.requeue_failed`).

    Returns:
        ``(study, journal storage, history)``.
    """
    study, journal = st.open_study(paths, direction="maximize" if sweep.tune.mode == "max" else "minimize",
                                   pruner=pruner(sweep))
    history = st.prepare_history(study)
    if sweep.tune.search == "grid":
        history.retried = st.requeue_failed(study)
    return study, journal, history


def _total(sweep: Sweep, samples: int | None, recorded: dict[str, Any] | None) -> int:
    """Trials the sweep has in all: ``samples``, else as recorded (resume), else ``tune.num_samples``;
    a grid search has exactly one per combination."""
    if sweep.tune.search == "grid":
        size = grid_size(sweep.grid)
        if samples is not None and samples != size:
            raise ConfigError(f"{sweep.source}: --samples {samples}, but the grid search has {size} points and runs "
                              f"each once; leave --samples out")
        return size
    return samples or (recorded or {}).get("num_samples") or sweep.tune.num_samples


def run_sweep(
    sweep: Sweep,
    *,
    out: str,
    samples: int | None = None,
    resume: bool = False,
    train_fn: TrainFn | None = None,
    echo: Callable[[str], None] | None = print,
    verbose: bool = False,
    tracking: Tracking | None = None,
) -> SweepSummary:
    """Run (or resume) a sweep on the Ray this process is connected to.

    Args:
        sweep: The validated sweep (see :func:`affectlab.tuning.space.load_sweep`).
        out: Output directory or ``s3://`` URI.
        samples: Number of trials in all (default: ``tune.num_samples``; on resume: as recorded);
            a grid search: the number of combinations (the default; any other is an error).
        resume: Continue the sweep in ``out``: finished trials are kept, interrupted ones rerun.
        train_fn: Training function (default: the one behind ``affectlab train``).
        echo: Progress output (None for silence).
        verbose: Print every epoch's metrics.
        tracking: Log the sweep to MLflow: a parent run with every trial nested under it, logged
            live by Ray's ``MLflowLoggerCallback`` (:func:`affectlab.tracking.track_sweep`); None: off.

    Returns:
        A :class:`SweepSummary`; also written to ``<out>/summary.json``.

    Raises:
        StorageError: ``out`` already holds a sweep (without ``resume``) or none (with it).
        ConfigError: On resume, the sweep file differs from the recorded one; a tracking store
            that cannot be used; ``samples`` other than a grid search's number of combinations.
    """
    from affectlab.tuning.callbacks import SweepLedger

    out = storage.absolute(out)  # trials run in other processes
    paths = st.SweepPaths.for_output(out)
    recorded = _read_spec(paths) if resume else None
    total = _total(sweep, samples, recorded)
    st.write_spec(paths, _spec(sweep, total), resume=resume)
    with track_sweep(tracking, sweep.base, out=paths.out, resume=resume) as tracking_callbacks:
        if resume:
            paths.pull()
        else:
            paths.reset_local()
        study, journal, history = open_sweep_study(sweep, paths)
        remaining = total - history.finished
        _say(echo, _opening(sweep, paths.out, total, history, remaining))
        if remaining <= 0:
            return _finish(sweep, paths, study, total, ran=0, epochs=0, echo=echo)

        driver = study_driver(sweep, journal, study.study_name, history.total_trials)
        ledger = SweepLedger(
            paths.ledger, part=st.next_part(paths), metric=objective_key(sweep), mode=sweep.tune.mode, total=total,
            driver=driver, first_number=_trials_started(paths) + 1, best=history.best_value, echo=echo,
            on_finish=paths.push, verbose=verbose,
        )
        tuner = _tuner(sweep, paths, train_fn=train_fn, driver=driver, ledger=ledger, remaining=remaining,
                       callbacks=tracking_callbacks)
        with quiet_tune_output():
            tuner.fit()
        return _finish(sweep, paths, driver.study, total, ran=len(ledger.numbers), epochs=ledger.epochs, echo=echo)


def _tuner(sweep: Sweep, paths: st.SweepPaths, *, train_fn: TrainFn | None, driver: Any, ledger: Any,
           remaining: int, callbacks: Sequence[Any] = ()) -> Any:
    """The Tuner of one run of the sweep (Tune experiment ``<out>/tune/<part>``)."""
    from ray import tune

    from affectlab.tuning.searcher import StudyScheduler, StudySearcher

    trainable = make_trainable(sweep, out=paths.out, train_fn=train_fn)
    corpus = shared_corpus(sweep) if train_fn is None else None
    if corpus is not None:  # read once here, shared with the trials through the object store
        trainable = tune.with_parameters(trainable, corpus=corpus)
    return tune.Tuner(
        tune.with_resources(trainable, trial_resources(sweep)),
        tune_config=tune.TuneConfig(  # metric, mode and stopping live in the study driver
            search_alg=StudySearcher(driver),
            scheduler=StudyScheduler(driver),
            num_samples=remaining,
            max_concurrent_trials=max_concurrent(sweep, remaining),
            # in-process trials: one trial process trains many configs (start-up paid once)
            reuse_actors=runner(sweep) == "in_process",
        ),
        run_config=tune.RunConfig(
            name=ledger.part,
            storage_path=paths.tune_dir,
            callbacks=[ledger, *callbacks],
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
    search = f"Optuna TPE (seed {sweep.tune.seed})"
    if sweep.tune.search == "grid":
        shape = " x ".join(str(len(v)) for v in sweep.grid.values())
        search = f"Optuna grid search ({shape} = {grid_size(sweep.grid)} points, order seed {sweep.tune.seed})"
    lines = [
        f"[sweep] {sweep.source} -> {out}",
        f"[sweep] {sweep.tune.mode} {sweep.tune.metric} over {dims}",
        f"[sweep] {search} + {stop}; {total} trials",
    ]
    if history.finished or history.requeued or history.retried:
        retried = f", {history.retried} failed combination(s) queued again" if history.retried else ""
        lines.append(
            f"[sweep] resuming: {history.finished} trial(s) already finished, "
            f"{history.requeued} interrupted trial(s) re-queued{retried}, {max(remaining, 0)} to run"
        )
    return "\n".join(lines)


def _say(echo: Callable[[str], None] | None, text: str) -> None:
    if echo is not None:
        echo(text)


def _finish(sweep: Sweep, paths: st.SweepPaths, study: Any, total: int, *, ran: int, epochs: int,
            echo: Callable[[str], None] | None) -> SweepSummary:
    from optuna.trial import TrialState

    from affectlab.tuning.searcher import KEPT_EPOCH_ATTR, TUNE_ID_ATTR, is_duplicate

    done = [t for t in study.get_trials(deepcopy=False)
            if t.state in (TrialState.COMPLETE, TrialState.PRUNED) and not is_duplicate(t)]
    best = st.best_trial(study)
    summary = SweepSummary(
        out=paths.out, metric=objective_key(sweep), mode=sweep.tune.mode, requested=total,
        finished=len(done), ran_now=ran, epochs_now=epochs,
        best_value=float(best.value) if best else None, best_params=dict(best.params) if best else {},
        best_trial_id=best.user_attrs.get(TUNE_ID_ATTR) if best else None,
        best_epoch=best.user_attrs.get(KEPT_EPOCH_ATTR) if best else None,
    )
    storage.write_text(storage.join(paths.out, "summary.json"), json.dumps(asdict(summary), indent=2))
    if best is not None:
        _write_best_config(sweep, paths, best, summary)
    paths.push()
    if best is not None:
        _say(echo, f"[sweep] done: {len(done)}/{total} trials; best {objective_key(sweep)}={best.value:.4f} "
                   f"(weights of epoch {summary.best_epoch}) with {best.params}; "
                   f"config: {storage.join(paths.out, 'best_config.yaml')}")
    elif done:
        _say(echo, f"[sweep] done: {len(done)}/{total} trials; none ran its whole epoch budget (all stopped "
                   f"early or failed), so there is no best configuration")
    return summary


def _write_best_config(sweep: Sweep, paths: st.SweepPaths, best: Any, summary: SweepSummary) -> None:
    """``best_config.yaml``: exactly the configuration the best trial trained, epoch budget included."""
    import yaml

    config = trial_run_config(sweep, best.params)
    text = (
        f"# best configuration of the sweep in {paths.out}: trial {summary.best_trial_id}, "
        f"{sweep.tune.metric}={best.value:.6g} ({sweep.tune.mode}) with the weights of epoch {summary.best_epoch}\n"
        f"# exactly what that trial trained, training.max_epochs (its epoch budget) included; retrain with\n"
        f"#   affectlab train best_config.yaml --out DIR\n"
        + yaml.safe_dump({"base": config.model_dump(mode="json")}, sort_keys=False)
    )
    storage.write_text(storage.join(paths.out, "best_config.yaml"), text)
