"""The training loop shared by every runner (Ray Train worker, in-process, Tune trial) and task.

:func:`fit` trains a task's modules. The task (:mod:`affectlab.training.tasks`) decides what one
step does; the loop owns the rest:

* **budget**: ``training.max_epochs`` passes over the training data, or ``training.max_iterations``
  steps with an evaluation every ``training.eval_every`` steps (the data is cycled). Either way the
  run is a sequence of *rounds* (an epoch, or an evaluation period), numbered from 1 in the
  ``epoch`` column of the history; early stopping counts rounds;
* **evaluation** of the validation batches after every round, early stopping
  (:class:`~affectlab.training.early_stopping.EarlyStopping`, mode from the task: higher or lower
  is better for ``training.monitor``) and the best round's weights (kept for the last
  ``last_top_results`` rounds);
* **checkpoints** handed to a reporter every round: every module, optimizer and AMP scaler, the
  stopper, the history, the data position and the RNG state;
* **AMP** on CUDA (``torch.autocast`` + one ``GradScaler`` per optimizer) and **gradient
  clipping**, through the task's :class:`~affectlab.training.tasks.StepContext`;
* **DDP**: the caller wraps each trainable module; here only the round's losses, the stop decision
  and the batch-norm buffers (rank 0's) are synchronised.

The loop knows nothing about Ray: the reporter decides where metrics and checkpoints go
(``ray.train.report``, ``ray.tune.report`` or memory) and where a resumed run's state comes from.

Checkpoint state (a ``dict`` of tensors and plain values, loadable with
``torch.load(weights_only=True)``): ``epoch`` (the round), ``iteration`` (steps so far),
``data_epoch`` / ``data_consumed`` (where the next batch comes from: pass and batches already
taken from it), ``modules``, ``optimizers``, ``scalers`` (one entry per name), ``stopper``,
``history``, ``recent`` (module weights of the last ``last_top_results`` rounds, so the best round
in that window can be restored after a worker failure) and ``rng`` (the CPU torch RNG state, so a
resumed run draws the same dropout masks as an uninterrupted one).
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from affectlab.training.config import TrainingSettings
from affectlab.training.early_stopping import EarlyStopping
from affectlab.training.tasks import StepContext, Task, unwrap

__all__ = ["BatchStream", "DistInfo", "LoopOutput", "check_replicas", "fit", "parameter_digest", "saved_weights", "unwrap"]

Batches = Iterable[dict[str, Any]]
ModuleStates = dict[str, dict[str, torch.Tensor]]


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
    """What a finished loop returns: the per-round metrics and the best round's module weights."""

    history: list[dict[str, float]]
    best_epoch: int
    best_states: ModuleStates
    stop_reason: str
    resumed_from: int | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def saved_weights(states: ModuleStates) -> dict[str, Any]:
    """What ``best_model.pt`` holds: the state dict itself for a single ``model`` (loadable with
    ``model.load_state_dict``), else ``{module name: state dict}``."""
    return states["model"] if set(states) == {"model"} else states


def _cpu_states(modules: dict[str, nn.Module]) -> ModuleStates:
    return {name: {k: v.detach().to("cpu", copy=True) for k, v in unwrap(m).state_dict().items()}
            for name, m in modules.items()}


def _all_reduce(values: list[float], dist: DistInfo, op: str = "sum") -> list[float]:
    if not dist.distributed or not values:
        return values
    t = torch.tensor(values, dtype=torch.float64)
    torch.distributed.all_reduce(t, op=torch.distributed.ReduceOp.MAX if op == "max" else torch.distributed.ReduceOp.SUM)
    return t.tolist()


def _sync_buffers(modules: dict[str, nn.Module], dist: DistInfo) -> None:
    """Copy rank 0's buffers (batch-norm running statistics) to every rank before evaluating,
    so that all ranks score the same model and take the same early-stopping decision."""
    if dist.distributed:
        for module in modules.values():
            for buffer in unwrap(module).buffers():
                torch.distributed.broadcast(buffer, src=0)


class BatchStream:
    """Training batches across epochs, with a resumable position.

    ``train_batches(epoch)`` gives one pass (this rank's shard, shuffled per epoch). The stream
    remembers the pass it is in (``epoch``, 1-based) and how many batches it has taken from it
    (``consumed``), so a resumed run continues where the checkpoint left off.
    """

    def __init__(self, train_batches: Callable[[int], Batches], epoch: int = 1, consumed: int = 0) -> None:
        self.train_batches = train_batches
        self.epoch, self.consumed = epoch, consumed
        self._iter: Iterator[dict[str, Any]] | None = None

    def _open(self) -> Iterator[dict[str, Any]]:
        it = iter(self.train_batches(self.epoch))
        for _ in range(self.consumed):  # resumed inside a pass: skip what was trained on
            next(it, None)
        return it

    def _next_epoch(self) -> None:
        self.epoch, self.consumed, self._iter = self.epoch + 1, 0, None

    def one_epoch(self) -> Iterator[dict[str, Any]]:
        """The rest of the current pass; the stream then stands at the start of the next."""
        it = self._iter or self._open()
        for batch in it:
            self.consumed += 1
            yield batch
        self._next_epoch()

    def steps(self, count: int) -> Iterator[dict[str, Any]]:
        """The next ``count`` batches, starting new passes as needed.

        Raises:
            RuntimeError: A whole pass yielded no batch (empty training data).
        """
        taken, empty_run = 0, 0
        while taken < count:
            if self._iter is None:
                self._iter = self._open()
            batch = next(self._iter, None)
            if batch is None:
                self._next_epoch()
                empty_run += 1
                if empty_run > 1:
                    raise RuntimeError("the training data yielded no batch in a whole pass")
                continue
            empty_run = 0
            self.consumed += 1
            taken += 1
            yield batch


def parameter_digest(module: nn.Module) -> torch.Tensor:
    """Two float64 numbers that summarise a module's parameters: their sum and a position-weighted
    sum. Equal parameters give equal digests; different ones almost surely do not."""
    flat = torch.cat([p.detach().reshape(-1).to("cpu", torch.float64) for p in unwrap(module).parameters()]
                     or [torch.zeros(1, dtype=torch.float64)])
    weights = torch.arange(1, flat.numel() + 1, dtype=torch.float64) / flat.numel()
    return torch.stack([flat.sum(), (flat * weights).sum()])


def check_replicas(modules: dict[str, nn.Module], dist: DistInfo, iteration: int) -> None:
    """Raise when the ranks do not all hold the same parameters (``training.verify_replicas``).

    Raises:
        RuntimeError: Names the modules whose parameters differ between ranks, and the step.
    """
    if not dist.distributed:
        return
    names = sorted(modules)
    local = torch.stack([parameter_digest(modules[n]) for n in names])  # (M, 2)
    gathered = [torch.zeros_like(local) for _ in range(dist.world_size)]
    torch.distributed.all_gather(gathered, local)
    differ = [n for i, n in enumerate(names) if any(not torch.equal(g[i], gathered[0][i]) for g in gathered[1:])]
    if differ:
        raise RuntimeError(f"after step {iteration} the parameters of module(s) {differ} differ between "
                           f"the {dist.world_size} ranks: gradients are not synchronised (is every trainable "
                           "module DDP-wrapped, and does every rank take the same steps?)")


def _train_round(task: Task, ctx: StepContext, batches: Iterable[dict[str, Any]], dist: DistInfo,
                 verify: bool = False) -> dict[str, float]:
    """Train on ``batches``; returns ``train_<loss>``: each loss's weighted mean (all ranks)."""
    task.set_train_mode(ctx.modules)
    totals: dict[str, float] = {}
    weights: dict[str, float] = {}
    for batch in batches:
        out = task.train_step(ctx, task.to_device(batch, ctx.device))
        ctx.iteration += 1
        if verify:
            check_replicas(ctx.modules, dist, ctx.iteration)
        for name, value in out.losses.items():
            totals[name] = totals.get(name, 0.0) + value * out.weight
            weights[name] = weights.get(name, 0.0) + out.weight
    names = sorted(totals)  # identical on every rank: the step schedule depends on the iteration only
    reduced = _all_reduce([totals[n] for n in names] + [weights[n] for n in names], dist)
    k = len(names)
    return {f"train_{n}": reduced[i] / max(reduced[k + i], 1e-12) for i, n in enumerate(names)}


def plateau_schedulers(optimizers: dict[str, torch.optim.Optimizer], settings: TrainingSettings,
                       mode: str) -> dict[str, torch.optim.lr_scheduler.ReduceLROnPlateau]:
    """One reduce-on-plateau scheduler per optimizer, stepped with the monitored metric after every
    evaluation (``training.lr_plateau``; none when it is unset). Every rank sees the same
    validation metric, so the learning rates stay equal across ranks."""
    plateau = settings.lr_plateau
    if plateau is None:
        return {}
    return {name: torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode=mode, factor=plateau.factor,
                                                             patience=plateau.patience, min_lr=plateau.min_lr)
            for name, opt in optimizers.items()}


def fit(
    task: Task,
    modules: dict[str, nn.Module],
    train_batches: Callable[[int], Batches],
    val_batches: Callable[[], Batches],
    settings: TrainingSettings,
    reporter: Any,
    *,
    dist: DistInfo = DistInfo(),
) -> LoopOutput:
    """Train ``modules`` with ``task`` until the budget is spent or early stopping; report every round.

    Args:
        task: One step, evaluation and optimizers of the model family (:mod:`affectlab.training.tasks`).
        modules: The task's modules, on ``dist.device`` and, with several workers, each trainable
            one DDP-wrapped.
        train_batches: ``epoch -> iterable of batches`` (this rank's shard, shuffled per epoch).
        val_batches: ``() -> iterable of batches`` (the whole validation set on every rank).
        settings: Learning rate, budget, early stopping, AMP, clipping.
        reporter: Receives ``report(metrics, state)`` each round; ``restore()`` gives the state
            of a run to resume (or None).
        dist: Rank, world size and device.

    Returns:
        History, best round (1-based, per the early-stopping rule) and its module weights.
    """
    plain = {name: unwrap(m) for name, m in modules.items()}
    optimizers = task.configure_optimizers(plain, settings.lr)
    ctx = StepContext(modules, optimizers, device=dist.device, amp=settings.amp, grad_clip=settings.grad_clip)
    mode = "max" if task.is_higher_better(settings.monitor) else "min"
    rounds = settings.max_evaluations
    stopper = EarlyStopping(settings.patience, settings.prev_rounds, settings.last_top_results, mode, max_epochs=rounds)
    schedulers = plateau_schedulers(optimizers, settings, mode)
    history: list[dict[str, float]] = []
    recent: dict[int, ModuleStates] = {}
    state = reporter.restore()
    start, resumed, stream = 0, None, BatchStream(train_batches)
    if state:
        start = resumed = _restore(state, plain, ctx, stopper, history, recent)
        for name, scheduler in schedulers.items():
            scheduler.load_state_dict(state.get("schedulers", {}).get(name) or scheduler.state_dict())
        stream = BatchStream(train_batches, int(state["data_epoch"]), int(state["data_consumed"]))
    interval = settings.evaluation_interval
    stop = stopper.stop_reason is not None
    t0 = time.perf_counter()
    for rnd in range(start + 1, rounds + 1):
        if stop:
            break
        started = time.perf_counter()
        if interval is None:
            batches = stream.one_epoch()
        else:
            batches = stream.steps(min(interval, settings.max_iterations - ctx.iteration))
        ctx.epoch = stream.epoch
        train = _train_round(task, ctx, batches, dist, settings.verify_replicas)
        _sync_buffers(modules, dist)
        metrics = {"epoch": rnd, "iteration": ctx.iteration, **train,
                   **task.evaluate(plain, val_batches(), dist.device, prefix="val_")}
        metrics["epoch_s"] = time.perf_counter() - started  # training + validation of this round
        metrics["elapsed_s"] = time.perf_counter() - t0  # since fit() started (includes reports)
        for name, scheduler in schedulers.items():
            scheduler.step(metrics[settings.monitor])
            metrics[f"lr_{name}"] = float(scheduler.get_last_lr()[0])
        stop = bool(_all_reduce([float(stopper.update(metrics[settings.monitor]))], dist, op="max")[0])
        recent[rnd] = _cpu_states(plain)
        for old in [r for r in recent if r <= rnd - settings.last_top_results]:
            del recent[old]
        metrics["best_epoch"] = stopper.best_epoch or rnd
        history.append(metrics)
        state = {"epoch": rnd, "iteration": ctx.iteration, "data_epoch": stream.epoch,
                 "data_consumed": stream.consumed, "modules": recent[rnd],
                 "optimizers": {n: o.state_dict() for n, o in optimizers.items()},
                 "scalers": {n: s.state_dict() for n, s in ctx.scalers.items()},
                 "schedulers": {n: s.state_dict() for n, s in schedulers.items()},
                 "stopper": stopper.state_dict(), "history": history, "recent": recent, "rng": torch.get_rng_state()}
        reporter.report(dict(metrics), state)
    best = stopper.best_epoch or (history[-1]["epoch"] if history else 0)
    return LoopOutput(history, int(best), recent.get(best, _cpu_states(plain)), stopper.stop_reason or "", resumed)


def _restore(state: dict[str, Any], modules: dict[str, nn.Module], ctx: StepContext, stopper: EarlyStopping,
             history: list, recent: dict) -> int:
    """Load a checkpoint state into the loop's objects; returns the last round done."""
    for name, module in modules.items():
        module.load_state_dict(state["modules"][name])
    for name, opt in ctx.optimizers.items():
        opt.load_state_dict(state["optimizers"][name])
    for name, scaler in ctx.scalers.items():
        if state.get("scalers", {}).get(name):
            scaler.load_state_dict(state["scalers"][name])
    stopper.load_state_dict(state["stopper"])
    history.extend(copy.deepcopy(state["history"]))
    recent.update({int(k): v for k, v in state["recent"].items()})
    ctx.iteration = int(state["iteration"])
    if state.get("rng") is not None:
        torch.set_rng_state(state["rng"])  # dropout continues as if never interrupted (rank 0's stream)
    return int(state["epoch"])
