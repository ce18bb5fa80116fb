"""``train(config, out=..., reporter=...)``: the one training entry point.

Used by ``affectlab train``, by cross-validation (:mod:`affectlab.training.cv`) and by sweep
trials (:mod:`affectlab.tuning`). It prepares the data (:func:`affectlab.training.data.prepare`),
runs the per-epoch loop (:func:`affectlab.training.loop.fit`) with the configured runner,
restores the best epoch's weights (early-stopping rule of seed 003), evaluates the test
subjects (if any) and writes the outputs.

Runners (``scaling.runner``):

* ``ray_train``: a Ray Train V2 ``TorchTrainer`` with ``scaling.num_workers`` workers (DDP),
  checkpoints and metrics per epoch through ``ray.train.report``, ``FailureConfig`` restarts.
  Needs a running Ray (the CLI starts one). Inside a Tune trial, metrics reach Tune through
  Ray's ``TuneReportCallback`` (the V2 Train-in-Tune pattern).
* ``in_process``: the same loop in the calling process, no worker start-up (CV grids, sweeps).

Reporter contract (stable; sweeps rely on it)::

    reporter(metrics: dict[str, float | int], checkpoint_dir: str | None) -> None

called once per epoch, in epoch order. ``metrics`` always holds ``epoch`` (1-based),
``train_loss``, ``val_loss``, ``val_uar``, ``val_accuracy``, ``best_epoch``, ``epoch_s`` (seconds
of training + validation), ``elapsed_s`` (seconds since the loop started) and, per task,
``val_f1`` (``au``) or ``val_mae`` / ``val_ccc`` (``f0_to_au``). ``checkpoint_dir`` is a
temporary directory holding ``checkpoint.pt`` that lives only during the call (copy it, e.g.
``ray.tune.report(metrics, checkpoint=ray.tune.Checkpoint.from_directory(checkpoint_dir))``);
a reporter with ``wants_checkpoints = False`` gets ``None``. To resume a trial pass such a
directory back as ``resume_from``. With the ``ray_train`` runner outside Tune, the reporter is
called after the run, with ``checkpoint_dir=None``.

Outputs under ``out`` (a path or ``s3://`` URI): ``config.yaml``, ``history.parquet`` (one row per
epoch), ``result.json`` (:meth:`TrainResult.summary`), ``best_model.pt`` (the state dict; ``{module: state dict}``
for tasks with several modules) and, for
``ray_train``, ``ray/<name>/`` (Ray Train run: checkpoints, metrics). With ``tracking``, the
finished training is also logged to MLflow (:mod:`affectlab.tracking`).
"""

from __future__ import annotations

import io
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import yaml

from affectlab import storage
from affectlab.tracking import Tracking, log_train, open_tracker
from affectlab.training.config import ExperimentConfig
from affectlab.training.data import Corpus, Prepared, batches, prepare
from affectlab.training.loop import saved_weights
from affectlab.training.runners import (Reporter, build_modules, run_in_process, run_ray_train, task_for,
                                       torch_threads)
from affectlab.training.splits import Split

__all__ = ["TrainResult", "epoch_progress", "evaluate_windows", "train"]


def epoch_progress(echo: Callable[[str], None], prefix: str = "") -> Callable[[dict[str, Any], str | None], None]:
    """A reporter (contract above) printing one progress line per epoch through ``echo``:
    ``[prefix: ]epoch N: train_...=... val_...=...``; it asks for no checkpoints."""
    lead = f"{prefix}: " if prefix else ""

    def report(metrics: dict[str, Any], checkpoint_dir: str | None) -> None:
        shown = " ".join(f"{k}={v:.4f}" for k, v in metrics.items()
                         if k.startswith(("train_", "val_")) and isinstance(v, int | float))
        echo(f"{lead}epoch {metrics['epoch']}: {shown}")

    report.wants_checkpoints = False  # type: ignore[attr-defined]
    return report


@dataclass
class TrainResult:
    """The outcome of one training.

    ``val`` holds the metrics of the best epoch (``val_*``), ``test`` the test metrics of the
    best epoch's model (``test_*``; empty without test subjects) and ``baseline`` those of a
    constant prediction of the most frequent training class (``baseline_*``).
    """

    config: ExperimentConfig
    out: str
    history: list[dict[str, float]]
    best_epoch: int
    val: dict[str, float]
    test: dict[str, float]
    baseline: dict[str, float]
    split: Split
    stop_reason: str
    runner: str
    wall_s: float
    resumed_from: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        """A JSON-ready summary (what ``result.json`` holds)."""
        return {
            "name": self.config.name,
            "runner": self.runner,
            "target": {"task": self.config.data.task, "au": self.config.data.target.au, "kind": self.config.data.target.kind},
            "model": self.config.model.name,
            "feature_set": self.config.data.feature_set,
            "split": {"train": list(self.split.train), "val": list(self.split.val), "test": list(self.split.test),
                      "val_samples": list(self.split.val_samples)},
            "epochs": len(self.history),
            "best_epoch": self.best_epoch,
            "stop_reason": self.stop_reason,
            "resumed_from": self.resumed_from,
            "val": self.val,
            "test": self.test,
            "baseline": self.baseline,
            "wall_s": round(self.wall_s, 3),
            **self.extra,
        }


def evaluate_windows(config: ExperimentConfig, prepared: Prepared, states: dict[str, dict[str, torch.Tensor]],
                     windows: Any, *, prefix: str) -> dict[str, float]:
    """Metrics of the task's modules with weights ``states`` (by module name) on ``windows`` (CPU, eval mode)."""
    task = task_for(config, prepared.class_counts, prepared.info.get("vocab"))
    modules = build_modules(config, task, prepared.model_kwargs)
    for name, module in modules.items():
        module.load_state_dict(states[name])
    return task.evaluate(modules, batches(windows, config.training.batch_size), "cpu", prefix=prefix)


def _baseline(config: ExperimentConfig, prepared: Prepared) -> dict[str, float]:
    """Scores of predicting the most frequent training class at every test step.

    For ``f0_to_au`` also ``baseline_median_mae``: the MAE of the *median* training token at every
    step, the constant with the lowest expected absolute error (the mode need not be it).
    """
    if prepared.test is None:
        return {}
    true = prepared.test.y[prepared.test.mask]
    true = true[true >= 0]
    const = np.full_like(true, int(np.argmax(prepared.class_counts)))
    task = task_for(config, prepared.class_counts, prepared.info.get("vocab"))
    if hasattr(task, "scores"):
        counts = np.asarray(prepared.class_counts, dtype=np.float64)
        median = int(np.searchsorted(np.cumsum(counts) / max(counts.sum(), 1.0), 0.5))
        median_mae = task.scores(np.full_like(true, median), true, prefix="m_")["m_mae"]
        return {**task.scores(const, true, prefix="baseline_"), "baseline_median_mae": median_mae}
    from affectlab.training.metrics import ConfusionAccumulator

    acc = ConfusionAccumulator(2)
    acc.update(const, true)
    scores = acc.compute()
    return {"baseline_uar": scores["uar"], "baseline_accuracy": scores["accuracy"], "baseline_f1": scores["f1"]}


def _own_training(task: str) -> Callable[..., TrainResult] | None:
    """The training function of a task with its own data path (emotion, vae_lma, gan_*, vsr*), else None."""
    if task == "emotion":
        from affectlab.training.emotion_run import train_emotion

        return train_emotion
    if task == "vae_lma":
        from affectlab.training.vae_run import train_vae

        return train_vae
    if task in ("gan_au", "gan_va", "gan_au_va"):
        from affectlab.training.gan_run import train_gan

        return train_gan
    if task in ("vsr_lm", "vsr_visual", "vsr"):
        from affectlab.training.vsr_run import train_vsr

        return train_vsr
    return None


def train(
    config: ExperimentConfig,
    *,
    out: str,
    reporter: Reporter | None = None,
    corpus: Corpus | None = None,
    resume_from: str | None = None,
    write: bool = True,
    tracking: Tracking | None = None,
) -> TrainResult:
    """Train one configuration (see the module docstring for runners and the reporter contract).

    Args:
        config: The validated experiment (``base`` section).
        out: Output directory (path or ``s3://`` URI).
        reporter: ``reporter(metrics, checkpoint_dir)`` called every epoch.
        corpus: Already loaded data (CV and sweeps load it once); default: read ``config.data``.
        resume_from: In-process runner: a checkpoint directory to resume from.
        write: Write the outputs under ``out``.
        tracking: Log the training to MLflow when it ends (:func:`affectlab.tracking.resolve_tracking`
            decides; None: no tracking). The store is opened before training starts, so a bad URI
            fails fast. CV and sweeps pass None and track the whole grid / sweep themselves.

    Returns:
        The :class:`TrainResult`.

    Raises:
        DatasetError: Data problems (missing columns, too few subjects...).
        SubjectLeakageError: A subject would be in two of train / validation / test.
        ConfigError: A checkpoint to resume belongs to a different config, or the tracking
            store cannot be used.
    """
    tracker = open_tracker(tracking) if tracking is not None else None
    own = _own_training(config.data.task)
    if own is not None:  # a task that reads its own data and writes its own predictions
        result = own(config, out=out, reporter=reporter, resume_from=resume_from, write=write)
        if tracker is not None:
            log_train(tracker, result)
        return result
    started = time.perf_counter()
    prepared = prepare(config, corpus)
    if config.scaling.runner == "in_process":
        output = run_in_process(config, prepared, reporter=reporter, resume_from=resume_from)
    else:
        output, _ = run_ray_train(config, prepared, out=out, reporter=reporter)
    best_row = next((r for r in output.history if r["epoch"] == output.best_epoch), output.history[-1])
    val = {k: float(v) for k, v in best_row.items() if k.startswith("val_")}
    test = {}
    if prepared.test is not None:
        with torch_threads(config.scaling.torch_threads):
            test = evaluate_windows(config, prepared, output.best_states, prepared.test, prefix="test_")
    result = TrainResult(
        config=config, out=out, history=output.history, best_epoch=output.best_epoch, val=val, test=test,
        baseline=_baseline(config, prepared), split=prepared.split, stop_reason=output.stop_reason,
        runner=config.scaling.runner, wall_s=time.perf_counter() - started, resumed_from=output.resumed_from,
        extra={"train_windows": len(prepared.train), "val_windows": len(prepared.val),
               "test_windows": 0 if prepared.test is None else len(prepared.test)},
    )
    if write:
        write_outputs(result, saved_weights(output.best_states))
    if tracker is not None:
        log_train(tracker, result)
    return result


def write_outputs(result: TrainResult, best_state: dict[str, Any]) -> None:
    """Write ``config.yaml``, ``history.parquet``, ``result.json`` and ``best_model.pt`` under ``result.out``
    (``best_state``: :func:`affectlab.training.loop.saved_weights` of the best round)."""
    import pyarrow as pa

    out = result.out
    storage.write_text(storage.join(out, "config.yaml"), yaml.safe_dump({"base": result.config.model_dump(mode="json")}, sort_keys=False))
    storage.write_parquet(pa.Table.from_pylist(result.history), storage.join(out, "history.parquet"))
    storage.write_text(storage.join(out, "result.json"), json.dumps(result.summary(), indent=2, default=_json_default))
    buf = io.BytesIO()
    torch.save(best_state, buf)
    storage.write_bytes(storage.join(out, "best_model.pt"), buf.getvalue())


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
