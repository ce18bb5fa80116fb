"""What one sweep trial runs: the trial function, its reporter, resources and objective.

A trial builds its configuration (the base config with the trial's parameters) and calls the
same ``train(config, *, out, reporter)`` as ``affectlab train``. Single-worker configs train in
the trial's own process (``scaling.runner=in_process``: no worker start-up, right for small
models); multi-worker or GPU configs start a ``TorchTrainer`` from the trial function, whose
per-epoch reports reach Tune through Ray's ``TuneReportCallback`` (Ray Train V2's Train-in-Tune
pattern).

A trial's configuration is :func:`trial_run_config`: the base config with the trial's parameters,
the runner chosen for the sweep and ``training.max_epochs`` set to the sweep's epoch budget
``max_t`` (``tune.asha.max_t``, at most the base's ``training.max_epochs``). That budget is what
the trial is *given*: it trains until its own early stopping or ``max_t`` ends it, unless the
pruner (ASHA) stops it at a rung first, a decision taken outside the trial and not part of its
configuration. Trials that survive every rung end by themselves and write their outputs; only
trials cut at a rung are stopped by Tune. ``best_config.yaml`` is :func:`trial_run_config` of
the best trial, so ``affectlab train best_config.yaml`` runs exactly what that trial ran. For a ``TorchTrainer`` trial
that stop kills the Train controller, and Ray Train's detached ``PlacementGroupCleaner`` frees its
workers' placement group. (Seen with Ray 2.60: on a host running several Ray clusters at once
the cleaner's state-API lookup fails with "Found multiple active Ray instances", the group stays
reserved and the next TorchTrainer trial waits for its CPUs; one cluster per host is fine.)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
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
    "trial_run_config",
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


def trial_run_config(sweep: Sweep, params: Mapping[str, Any]) -> Any:
    """The exact configuration a trial with ``params`` trains (and ``best_config.yaml`` holds).

    The base config with ``scaling.runner`` set to the sweep's runner (:func:`runner`),
    ``training.max_epochs`` set to the trial's epoch budget (``sweep.max_t``) and then the
    trial's own parameters (a searched ``training.max_epochs`` wins).

    Raises:
        ConfigError: The values make an invalid config (the message names the keys).
    """
    return trial_config(sweep.base, {"scaling.runner": runner(sweep), "training.max_epochs": sweep.max_t, **params})


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

    def trial(params: dict, corpus: Any = None) -> None:
        from ray import tune

        fn = train_fn or _default_train_fn()
        config = trial_run_config(sweep, params)
        trial_out = storage.join(out, "trials", tune.get_context().get_trial_id())
        extra = {"corpus": corpus} if corpus is not None else {}
        fn(config, out=trial_out, reporter=TuneReporter(), **extra)

    return trial


def objective_key(sweep: Sweep) -> str:
    """The result key the sweep's objective is computed from: ``tune.metric``.

    The objective itself is not a reported key: the driver computes it from every epoch's
    result as the metric of the epoch whose weights the training keeps (``best_epoch``), the
    same rule for in-process and TorchTrainer trials (:func:`affectlab.tuning.searcher.kept_value`).
    """
    return sweep.tune.metric


class TuneReporter:
    """The training reporter of an in-process trial: each epoch's metrics go to ``tune.report``
    unchanged (a TorchTrainer trial's epochs reach Tune the same way, through Ray's
    ``TuneReportCallback``).

    ``wants_checkpoints`` is False: the pruner needs no checkpoints (nothing is paused or
    cloned) and each trial's kept weights are written to its own output directory by the
    training code.
    """

    wants_checkpoints = False

    def __call__(self, metrics: dict[str, Any], checkpoint_dir: str | None = None) -> None:
        from ray import tune

        checkpoint = tune.Checkpoint.from_directory(checkpoint_dir) if checkpoint_dir else None
        tune.report(dict(metrics), checkpoint=checkpoint)


def shared_corpus(sweep: Sweep) -> Any:
    """The corpus every trial trains on, loaded once in the driver, or None when the space
    changes the data (``data.*`` keys) or the training code has no corpus loader."""
    if any(key.startswith("data.") for key in sweep.space) or sweep.base.data.task in ("emotion", "vae_lma", "gan_au",
                                                                                     "gan_va", "gan_au_va"):
        return None  # emotion, VAE and GAN trainings read their own data (training.emotion_data, vae_data, gan_data)
    try:
        from affectlab.training.corpus import load_corpus
    except ImportError:  # pragma: no cover - the training package is part of affectlab
        return None
    return load_corpus(sweep.base.data)


def _default_train_fn() -> TrainFn:
    from affectlab.training.run import train

    return train
