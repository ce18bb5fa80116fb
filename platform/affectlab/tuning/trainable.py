"""What one sweep trial runs: the trial function, its reporter, resources and objective.

A trial builds its configuration (the base config with the trial's parameters) and calls the
same ``train(config, *, out, reporter)`` as ``affectlab train``. Single-worker configs train in
the trial's own process (``scaling.runner=in_process``: no worker start-up, right for small
models); multi-worker or GPU configs start a ``TorchTrainer`` from the trial function, whose
per-epoch reports reach Tune through Ray's ``TuneReportCallback`` (Ray Train V2's Train-in-Tune
pattern).

A trial's epoch budget is ASHA's ``max_t``: trials that survive every rung end by themselves and
write their outputs; only trials cut at a rung are stopped by Tune. For a ``TorchTrainer`` trial
that stop kills the Train controller, and Ray Train's detached ``PlacementGroupCleaner`` frees its
workers' placement group. (Seen with Ray 2.60: on a host running several Ray clusters at once
the cleaner's state-API lookup fails with "Found multiple active Ray instances", the group stays
reserved and the next TorchTrainer trial waits for its CPUs; one cluster per host is fine.)
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from affectlab import storage
from affectlab.tuning.space import Sweep, trial_config

__all__ = [
    "TrainFn",
    "TuneReporter",
    "make_trainable",
    "max_concurrent",
    "objective_key",
    "runner",
    "shared_corpus",
    "trial_resources",
]

TrainFn = Callable[..., Any]  # train(config, *, out, reporter[, corpus]) -> anything
DRIVER_CPU = 0.01  # a trial that only drives a TorchTrainer (Tune needs a non-empty request)


def runner(sweep: Sweep) -> str:
    """``in_process`` or ``ray_train``: how the sweep's trials train (``tune.trial_runner``)."""
    if sweep.tune.trial_runner != "auto":
        return sweep.tune.trial_runner
    scaling = sweep.base.scaling
    return "in_process" if scaling.num_workers == 1 else "ray_train"


def trial_resources(sweep: Sweep) -> dict[str, float]:
    """What one trial reserves: its workers' CPUs (in-process) or almost nothing (its
    TorchTrainer reserves the workers itself)."""
    scaling = sweep.base.scaling
    if runner(sweep) == "in_process":
        return {"cpu": float(scaling.cpus_per_worker), "gpu": 1.0 if scaling.use_gpu else 0.0}
    return {"cpu": DRIVER_CPU, "gpu": 0.0}


def max_concurrent(sweep: Sweep, remaining: int) -> int:
    """Trials at once: as many as the cluster's CPUs (and GPUs) fit, capped by the settings."""
    import ray

    resources = ray.cluster_resources()
    scaling = sweep.base.scaling
    per_trial = scaling.cpus_per_worker * (scaling.num_workers if runner(sweep) == "ray_train" else 1)
    per_trial += DRIVER_CPU if runner(sweep) == "ray_train" else 0.0
    fit = int(resources.get("CPU", 1) // per_trial) if per_trial > 0 else remaining
    if scaling.use_gpu:
        gpus_per_trial = scaling.num_workers if runner(sweep) == "ray_train" else 1
        fit = min(fit, int(resources.get("GPU", 0) // gpus_per_trial))
    limit = sweep.tune.max_concurrent or fit
    return max(1, min(fit, limit, remaining))


def make_trainable(sweep: Sweep, *, out: str, train_fn: TrainFn | None = None) -> Callable[..., None]:
    """The Tune function trainable: build the trial's config, train it, report every epoch.

    The trainable takes ``(params, corpus=None)``; pass a corpus loaded once by the driver with
    ``tune.with_parameters`` (see :func:`shared_corpus`) so trials do not each read the data.

    Args:
        sweep: The validated sweep.
        out: Sweep output URI; each trial writes under ``<out>/trials/<trial_id>``.
        train_fn: ``train(config, *, out, reporter[, corpus])``; default
            :func:`affectlab.training.run.train` (the code behind ``affectlab train``).
    """
    base = sweep.base
    trial_runner = runner(sweep)
    metric, mode, max_t = sweep.tune.metric, sweep.tune.mode, sweep.max_t

    def trial(params: dict, corpus: Any = None) -> None:
        from ray import tune

        fn = train_fn or _default_train_fn()
        # the trial's epoch budget is ASHA's max_t: a trial that survives every rung ends by
        # itself and writes its outputs (ASHA stops only the ones it cuts at a rung)
        config = trial_config(base, {"scaling.runner": trial_runner, "training.max_epochs": max_t, **params})
        trial_out = storage.join(out, "trials", tune.get_context().get_trial_id())
        extra = {"corpus": corpus} if corpus is not None else {}
        fn(config, out=trial_out, reporter=TuneReporter(metric, mode), **extra)

    return trial


def objective_key(sweep: Sweep) -> str:
    """The result key the searcher and ASHA optimise.

    In-process trials report ``<metric>_best``, the best value of the metric over the epochs so
    far: the training keeps the best epoch's weights, so that is what a configuration is worth,
    and it does not punish a configuration that peaks early and then overfits. Trials that run a
    TorchTrainer forward Ray Train's reports unchanged, so there the objective is the metric of
    the latest epoch.
    """
    return f"{sweep.tune.metric}_best" if runner(sweep) == "in_process" else sweep.tune.metric


class TuneReporter:
    """The training reporter of a trial: each epoch's metrics go to ``tune.report``, plus
    ``<metric>_best`` (see :func:`objective_key`).

    ``wants_checkpoints`` is False: ASHA needs no checkpoints (nothing is paused or cloned) and
    each trial's best weights are written to its own output directory by the training code.
    """

    wants_checkpoints = False

    def __init__(self, metric: str, mode: str) -> None:
        self.metric, self.mode = metric, mode
        self.best: float | None = None

    def __call__(self, metrics: dict[str, Any], checkpoint_dir: str | None = None) -> None:
        from ray import tune

        value = metrics.get(self.metric)
        if isinstance(value, (int, float)) and not math.isnan(value):
            better = self.best is None or (value > self.best if self.mode == "max" else value < self.best)
            self.best = float(value) if better else self.best
        report = dict(metrics)
        if self.best is not None:
            report[f"{self.metric}_best"] = self.best
        checkpoint = tune.Checkpoint.from_directory(checkpoint_dir) if checkpoint_dir else None
        tune.report(report, checkpoint=checkpoint)


def shared_corpus(sweep: Sweep) -> Any:
    """The corpus every trial trains on, loaded once in the driver, or None when the space
    changes the data (``data.*`` keys) or the training code has no corpus loader."""
    if any(key.startswith("data.") for key in sweep.space):
        return None
    try:
        from affectlab.training.corpus import load_corpus
    except ImportError:  # pragma: no cover - the training package is part of affectlab
        return None
    return load_corpus(sweep.base.data)


def _default_train_fn() -> TrainFn:
    from affectlab.training.run import train

    return train
