"""The per-epoch training loop shared by every runner (Ray Train worker, in-process, Tune trial).

:func:`fit` trains one model: per epoch it runs the training batches, evaluates the validation
windows, updates :class:`~affectlab.training.early_stopping.EarlyStopping`, and hands the
epoch's metrics and checkpoint state to a :class:`~affectlab.training.reporters.Reporter`.
The loop knows nothing about Ray: the reporter decides where metrics and checkpoints go
(``ray.train.report``, ``ray.tune.report`` or memory) and where a resumed run's state comes
from. Distributed data parallelism is visible only through :class:`DistInfo` (the gradient
all-reduce is DDP's; here only the epoch loss and the stop decision are all-reduced).

Checkpoint state (one ``dict`` of tensors and plain values, loadable with
``torch.load(weights_only=True)``): ``epoch``, ``model``, ``optimizer``, ``scaler``, ``stopper``,
``history``, ``recent`` (the weights of the last ``last_top_results`` epochs, so the best
epoch in that window can be restored after a worker failure) and ``rng`` (the CPU torch RNG
state, so a resumed run draws the same dropout masks as an uninterrupted one).
"""

from __future__ import annotations

import copy
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from affectlab.training.config import TrainingSettings
from affectlab.training.early_stopping import EarlyStopping
from affectlab.training.tasks import Task

__all__ = ["DistInfo", "LoopOutput", "fit", "unwrap"]

Batches = Iterable[dict[str, Any]]


@dataclass(frozen=True)
class DistInfo:
    """Rank and world size (1 / 0 outside DDP) and the device to train on."""

    rank: int = 0
    world_size: int = 1
    device: str = "cpu"

    @property
    def distributed(self) -> bool:
        """True when a process group with more than one worker is in use."""
        return self.world_size > 1 and torch.distributed.is_available() and torch.distributed.is_initialized()


@dataclass
class LoopOutput:
    """What a finished loop returns: the per-epoch metrics and the best epoch's weights."""

    history: list[dict[str, float]]
    best_epoch: int
    best_state: dict[str, torch.Tensor]
    stop_reason: str
    resumed_from: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def unwrap(model: nn.Module) -> nn.Module:
    """The plain module inside a DistributedDataParallel wrapper (or the model itself)."""
    return model.module if hasattr(model, "module") else model


def _cpu_state(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu", copy=True) for k, v in unwrap(model).state_dict().items()}


def _all_reduce(values: list[float], dist: DistInfo, op: str = "sum") -> list[float]:
    if not dist.distributed:
        return values
    t = torch.tensor(values, dtype=torch.float64)
    torch.distributed.all_reduce(t, op=torch.distributed.ReduceOp.MAX if op == "max" else torch.distributed.ReduceOp.SUM)
    return t.tolist()


def _sync_buffers(model: nn.Module, dist: DistInfo) -> None:
    """Copy rank 0's buffers (batch-norm running statistics) to every rank before evaluating,
    so that all ranks score the same model and take the same early-stopping decision."""
    if dist.distributed:
        for buffer in unwrap(model).buffers():
            torch.distributed.broadcast(buffer, src=0)


def _train_epoch(model: nn.Module, task: Task, batches: Batches, opt: torch.optim.Optimizer,
                 scaler: torch.amp.GradScaler | None, settings: TrainingSettings, dist: DistInfo) -> float:
    """One pass over the training batches; returns the mean loss per valid step (all ranks)."""
    model.train()
    total, steps = 0.0, 0.0
    use_amp = scaler is not None
    for batch in batches:
        batch = task.to_device(batch, dist.device)
        opt.zero_grad(set_to_none=True)
        with torch.autocast(device_type="cuda", dtype=torch.float16, enabled=use_amp):
            loss = task.train_loss(model, batch)
            if settings.regularisation and hasattr(unwrap(model), "regularization_loss"):
                loss = loss + unwrap(model).regularization_loss()
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.unscale_(opt)
        else:
            loss.backward()
        if settings.grad_clip:
            nn.utils.clip_grad_norm_(model.parameters(), settings.grad_clip)
        if scaler is not None:
            scaler.step(opt)
            scaler.update()
        else:
            opt.step()
        valid = float(batch.get("target_mask", batch["mask"]).sum())
        total += float(loss.detach()) * valid
        steps += valid
    total, steps = _all_reduce([total, steps], dist)
    return total / max(steps, 1.0)


def fit(
    model: nn.Module,
    task: Task,
    train_batches: Callable[[int], Batches],
    val_batches: Callable[[], Batches],
    settings: TrainingSettings,
    reporter: Any,
    *,
    dist: DistInfo = DistInfo(),
    drill: Callable[[int], None] | None = None,
) -> LoopOutput:
    """Train ``model`` until early stopping; report every epoch.

    Args:
        model: The model (already on ``dist.device`` and, with several workers, DDP-wrapped).
        task: Loss and evaluation of the task (:mod:`affectlab.training.tasks`).
        train_batches: ``epoch -> iterable of batches`` (this rank's shard, shuffled per epoch).
        val_batches: ``() -> iterable of batches`` (the whole validation set on every rank).
        settings: Learning rate, early stopping, AMP...
        reporter: Receives ``report(metrics, state)`` each epoch; ``restore()`` gives the state
            of a run to resume (or None).
        dist: Rank, world size and device.
        drill: Called with the epoch number after each report (a failure drill hook).

    Returns:
        History, best epoch (1-based, per the early-stopping rule) and its weights.
    """
    opt = torch.optim.Adam(model.parameters(), lr=settings.lr)
    scaler = torch.amp.GradScaler("cuda") if settings.amp and dist.device.startswith("cuda") else None
    mode = "max" if settings.monitor.endswith(("uar", "ccc")) else "min"
    stopper = EarlyStopping(settings.patience, settings.prev_rounds, settings.last_top_results, mode,
                            max_epochs=settings.max_epochs)
    history: list[dict[str, float]] = []
    recent: dict[int, dict[str, torch.Tensor]] = {}
    start, resumed = _restore(reporter.restore(), model, opt, scaler, stopper, history, recent)
    stop = stopper.stop_reason is not None
    t0 = time.perf_counter()
    for epoch in range(start + 1, settings.max_epochs + 1):
        if stop:
            break
        started = time.perf_counter()
        train_loss = _train_epoch(model, task, train_batches(epoch), opt, scaler, settings, dist)
        _sync_buffers(model, dist)
        metrics = {"epoch": epoch, "train_loss": train_loss, **task.evaluate(unwrap(model), val_batches(), dist.device, prefix="val_")}
        metrics["epoch_s"] = time.perf_counter() - started  # training + validation of this epoch
        metrics["elapsed_s"] = time.perf_counter() - t0  # since fit() started (includes reports)
        stop = bool(_all_reduce([float(stopper.update(metrics[settings.monitor]))], dist, op="max")[0])
        recent[epoch] = _cpu_state(model)
        for old in [e for e in recent if e <= epoch - settings.last_top_results]:
            del recent[old]
        metrics["best_epoch"] = stopper.best_epoch or epoch
        history.append(metrics)
        state = {"epoch": epoch, "model": recent[epoch], "optimizer": opt.state_dict(),
                 "scaler": scaler.state_dict() if scaler else {}, "stopper": stopper.state_dict(),
                 "history": history, "recent": recent, "rng": torch.get_rng_state()}
        reporter.report(dict(metrics), state)
        if drill is not None:
            drill(epoch)
    best = stopper.best_epoch or (history[-1]["epoch"] if history else 0)
    return LoopOutput(history, int(best), recent.get(best, _cpu_state(model)), stopper.stop_reason or "", resumed)


def _restore(state: dict[str, Any] | None, model: nn.Module, opt: torch.optim.Optimizer,
             scaler: torch.amp.GradScaler | None, stopper: EarlyStopping, history: list, recent: dict) -> tuple[int, int | None]:
    """Load a checkpoint state into the loop's objects; returns (last epoch done, resumed-from)."""
    if not state:
        return 0, None
    unwrap(model).load_state_dict(state["model"])
    opt.load_state_dict(state["optimizer"])
    if scaler is not None and state.get("scaler"):
        scaler.load_state_dict(state["scaler"])
    stopper.load_state_dict(state["stopper"])
    history.extend(copy.deepcopy(state["history"]))
    recent.update({int(k): v for k, v in state["recent"].items()})
    if state.get("rng") is not None:
        torch.set_rng_state(state["rng"])  # dropout continues as if never interrupted (rank 0's stream)
    return int(state["epoch"]), int(state["epoch"])


def failure_drill(marker: str, at_epoch: int, rank: int) -> Callable[[int], None]:
    """A hook for :func:`fit` that kills this worker once, right after epoch ``at_epoch``.

    The first attempt writes ``marker`` (a path or URI) and exits the process; a restarted
    attempt finds the marker and carries on. Only rank 0 dies (its peers are torn down by Ray).
    """
    from affectlab import storage

    def drill(epoch: int) -> None:
        if epoch == at_epoch and rank == 0 and not storage.exists(marker):
            storage.write_text(marker, f"worker killed after epoch {epoch}\n")
            os._exit(17)

    return drill
