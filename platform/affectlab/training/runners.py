"""The two ways to run :func:`affectlab.training.loop.fit`: inside Ray Train workers or in-process.

* :func:`run_ray_train_datasets` builds a ``TorchTrainer`` (Ray Train V2) whose
  ``train_loop_per_worker`` (:func:`train_loop_per_worker`) streams its Ray Data shard
  (``get_dataset_shard("train")`` → ``iter_batches`` with a local shuffle buffer, the validation
  set whole on every worker; lazy datasets are materialised once before the workers start unless
  the task streams them, see :func:`cache_datasets`), builds the task's modules and
  wraps each trainable one with ``prepare_model`` (DDP when ``num_workers > 1``; gloo on CPU,
  NCCL on GPU; device from ``ray.train.torch.get_device()``), and reports metrics plus a checkpoint every round with
  ``ray.train.report``. With ``FailureConfig(max_failures)`` a failed worker group restarts and
  resumes from ``ray.train.get_checkpoint()``. Rank 0 returns the
  :class:`~affectlab.training.loop.LoopOutput` (``Result.return_value``).
  :func:`run_ray_train` does the same for prepared windows.
* :func:`run_in_process` runs the same loop in the calling process: no worker start-up (about
  20 s on a small machine), for CV grids, sweeps and tiny models.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import torch

from affectlab import storage
from affectlab.errors import ConfigError
from affectlab.training.config import ExperimentConfig
from affectlab.training.data import Prepared, batches
from affectlab.training.loop import DistInfo, LoopOutput, fit, saved_weights
from affectlab.training.tasks import DataInfo, Task, build_task

__all__ = ["CHECKPOINT_FILE", "InMemoryPart", "build", "build_modules", "cache_datasets", "data_info", "fingerprint", "load_checkpoint_state", "run_in_process",
           "WEIGHTS_PATTERN", "write_round_weights",
           "run_ray_train", "task_for", "train_loop_per_worker", "windows_datasets"]

CHECKPOINT_FILE = "checkpoint.pt"
Reporter = Callable[[dict[str, Any], str | None], None]


def fingerprint(config: ExperimentConfig) -> str:
    """Hash of everything that changes what is trained (not where or how it is scaled)."""
    spec = config.model_dump(mode="json", exclude={"scaling", "failure", "checkpoint", "name"})
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16]


def load_checkpoint_state(directory: str, expected: str | None = None) -> dict[str, Any]:
    """Load ``checkpoint.pt`` from a checkpoint directory (``weights_only=True``).

    Raises:
        ConfigError: The checkpoint belongs to a differently configured training.
    """
    state = torch.load(os.path.join(directory, CHECKPOINT_FILE), map_location="cpu", weights_only=True)
    if expected is not None and state.get("fingerprint") not in (None, expected):
        raise ConfigError(
            f"checkpoint in {directory} was written by a training with a different config "
            f"({state.get('fingerprint')} != {expected}); use a new --out to start afresh"
        )
    return state


def batch_seed(seed: int, epoch: int, rank: int) -> int:
    return (seed * 1_000_003 + epoch * 10_007 + rank) % (2**32)


def data_info(prepared: Prepared) -> DataInfo:
    """What the task needs from prepared windows: builder keywords, class counts, the vocabulary."""
    return DataInfo(model_kwargs=dict(prepared.model_kwargs), class_counts=np.asarray(prepared.class_counts),
                    extra={"vocab": prepared.info.get("vocab")})


def task_for(config: ExperimentConfig, class_counts: np.ndarray, vocab: dict[str, Any] | None) -> Task:
    """The task object (steps, loss, decoding, metrics) of ``config`` for data with these class counts."""
    return build_task(config, DataInfo(class_counts=np.asarray(class_counts), extra={"vocab": vocab}))


def build(config: ExperimentConfig, model_kwargs: dict[str, Any]) -> torch.nn.Module:
    """The configured model with the data's keywords, initialised from ``training.seed``."""
    from affectlab.models import build_model

    torch.manual_seed(config.training.seed)
    return build_model(config.model.name, **model_kwargs, **config.model.kwargs)


def build_modules(config: ExperimentConfig, task: Task, model_kwargs: dict[str, Any]) -> dict[str, torch.nn.Module]:
    """The task's modules with the data's keywords, initialised from ``training.seed``."""
    torch.manual_seed(config.training.seed)
    return task.build_modules(config.model.name, {**model_kwargs, **config.model.kwargs})


def _threads(config: ExperimentConfig) -> int:
    return config.scaling.torch_threads or max(1, int(config.scaling.cpus_per_worker))


# -- in-process -----------------------------------------------------------------------------


WEIGHTS_PATTERN = "iteration={iteration:09d}.pt"
"""File name of one round's module weights under a run's ``checkpoints/`` (see :func:`write_round_weights`)."""


def write_round_weights(weights_dir: str | None, state: dict[str, Any]) -> None:
    """Write the round's module weights (``{name: state_dict}``, CPU tensors) to
    ``<weights_dir>/iteration=<N>.pt`` (local path or ``s3://``); nothing when ``weights_dir`` is None.

    These files are what ``affectlab evaluate RUN --checkpoints all`` scores; the full resumable
    state (optimizers, history, RNG) stays in the runner's own checkpoints."""
    if weights_dir is None:
        return
    buffer = io.BytesIO()
    torch.save(saved_weights(state["modules"]), buffer)
    storage.write_bytes(storage.join(weights_dir, WEIGHTS_PATTERN.format(iteration=int(state["iteration"]))),
                        buffer.getvalue())


class _LocalReporter:
    """Adapts a ``reporter(metrics, checkpoint_dir)`` callable to the loop's report/restore."""

    def __init__(self, user: Reporter | None, resume: dict[str, Any] | None, fp: str,
                 weights_dir: str | None = None) -> None:
        self.user, self.resume, self.fp, self.weights_dir = user, resume, fp, weights_dir
        self.wants_checkpoints = bool(getattr(user, "wants_checkpoints", True))

    def restore(self) -> dict[str, Any] | None:
        return self.resume

    def report(self, metrics: dict[str, Any], state: dict[str, Any]) -> None:
        write_round_weights(self.weights_dir, state)
        if self.user is None:
            return
        if not self.wants_checkpoints:
            self.user(metrics, None)
            return
        with tempfile.TemporaryDirectory(prefix="affectlab-ckpt-") as tmp:
            torch.save({**state, "fingerprint": self.fp}, os.path.join(tmp, CHECKPOINT_FILE))
            self.user(metrics, tmp)


def run_in_process(config: ExperimentConfig, prepared: Prepared, *, reporter: Reporter | None = None,
                   resume_from: str | None = None, device: str | None = None) -> LoopOutput:
    """Run the loop in this process (single worker; CUDA when ``scaling.use_gpu`` and available).

    Args:
        config: The experiment.
        prepared: Windows and data-derived model keywords (:func:`affectlab.training.data.prepare`).
        reporter: ``reporter(metrics, checkpoint_dir)`` called every round (see :mod:`.run`).
        resume_from: A checkpoint directory (from an earlier report) to resume.
        device: Override the device (default: ``cuda`` if requested and available, else ``cpu``).
    """
    t = config.training
    return run_in_process_batches(
        config, data_info(prepared),
        lambda epoch: batches(prepared.train, t.batch_size, seed=batch_seed(t.seed, epoch, 0)),
        lambda: batches(prepared.val, t.batch_size),
        reporter=reporter, resume_from=resume_from, device=device,
    )


class InMemoryPart:
    """A part's examples as equally long numpy arrays (one per column), iterated like a Ray Dataset
    (``iter_batches``): the in-process runner's data (emotion parts, VAE rows)."""

    def __init__(self, arrays: dict[str, np.ndarray]) -> None:
        self.arrays = arrays

    def __len__(self) -> int:
        return len(next(iter(self.arrays.values())))

    def iter_batches(self, *, batch_size: int, batch_format: str = "numpy", local_shuffle_buffer_size: int | None = None,
                     local_shuffle_seed: int | None = None) -> Any:
        """Numpy batches; shuffled (whole part) when ``local_shuffle_seed`` is given."""
        order = np.arange(len(self))
        if local_shuffle_seed is not None:
            order = np.random.default_rng(local_shuffle_seed).permutation(len(self))
        for start in range(0, len(order), batch_size):
            idx = order[start:start + batch_size]
            yield {k: v[idx] for k, v in self.arrays.items()}


def run_in_process_batches(config: ExperimentConfig, info: DataInfo, train_batches: Callable[[int], Iterable[Any]],
                           val_batches: Callable[[], Iterable[Any]], *, reporter: Reporter | None = None,
                           resume_from: str | None = None, device: str | None = None,
                           weights_dir: str | None = None) -> LoopOutput:
    """:func:`run_in_process` for any batch source: ``train_batches(epoch)`` and ``val_batches()``
    give iterables of numpy batches (e.g. ``Dataset.iter_batches`` of streamed Ray Datasets).
    With ``weights_dir`` every round's module weights are also written there
    (:func:`write_round_weights`)."""
    device = device or ("cuda" if config.scaling.use_gpu and torch.cuda.is_available() else "cpu")
    fp = fingerprint(config)
    resume = load_checkpoint_state(resume_from, fp) if resume_from else None
    with torch_threads(_threads(config)):
        task = build_task(config, info)
        modules = {name: m.to(device) for name, m in build_modules(config, task, info.model_kwargs).items()}
        return fit(task, modules, train_batches, val_batches, config.training,
                   _LocalReporter(reporter, resume, fp, weights_dir), dist=DistInfo(0, 1, device))


@contextmanager
def torch_threads(n: int | None) -> Iterator[None]:
    """Use ``n`` torch intra-op threads inside the block (unchanged when None)."""
    previous = torch.get_num_threads()
    if n:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


# -- Ray Train ------------------------------------------------------------------------------


class _RayTrainReporter:
    """``ray.train.report`` every epoch; rank 0 attaches the checkpoint."""

    def __init__(self, rank: int, fp: str, weights_dir: str | None = None) -> None:
        self.rank, self.fp, self.weights_dir = rank, fp, weights_dir

    def restore(self) -> dict[str, Any] | None:
        import ray.train

        checkpoint = ray.train.get_checkpoint()
        if checkpoint is None:
            return None
        with checkpoint.as_directory() as directory:
            return load_checkpoint_state(directory, self.fp)

    def report(self, metrics: dict[str, Any], state: dict[str, Any]) -> None:
        import ray.train

        with tempfile.TemporaryDirectory(prefix="affectlab-ckpt-") as tmp:
            checkpoint = None
            if self.rank == 0:
                write_round_weights(self.weights_dir, state)
                torch.save({**state, "fingerprint": self.fp}, os.path.join(tmp, CHECKPOINT_FILE))
                checkpoint = ray.train.Checkpoint.from_directory(tmp)
            ray.train.report(metrics, checkpoint=checkpoint, checkpoint_dir_name=f"epoch={state['epoch']:04d}")


# local shuffle buffer of the streamed training shard, in batches
SHUFFLE_BATCHES = 8


def shard_batches(shard: Any, batch_size: int, *, seed: int | None = None) -> Iterable[dict[str, Any]]:
    """One streamed pass over a Ray Data shard: numpy batches, shuffled within a local buffer
    when ``seed`` is given (the shard is never read whole into the worker)."""
    if seed is None:
        return shard.iter_batches(batch_size=batch_size, batch_format="numpy")
    return shard.iter_batches(batch_size=batch_size, batch_format="numpy",
                              local_shuffle_buffer_size=batch_size * SHUFFLE_BATCHES, local_shuffle_seed=seed)


def _prepared_modules(config: ExperimentConfig, task: Task, model_kwargs: dict[str, Any],
                      device: torch.device) -> dict[str, torch.nn.Module]:
    """The task's modules on this worker's device; each one with trainable parameters wrapped by
    ``prepare_model`` (DDP when there are several workers), frozen ones only moved."""
    import ray.train.torch

    out = {}
    for name, module in build_modules(config, task, model_kwargs).items():
        trainable = any(p.requires_grad for p in module.parameters())
        out[name] = ray.train.torch.prepare_model(module) if trainable else module.to(device)
    return out


def _registry_entries(config: ExperimentConfig) -> dict[str, Any]:
    """The driver's registry entries of the config's task and model, shipped to the workers so a
    task or model registered at run time (a script, a notebook) trains there too."""
    from affectlab.models import MODELS
    from affectlab.training.tasks import TASKS

    return {"task": TASKS[config.data.task], "model": (config.model.name, MODELS[config.model.name])}


def _ensure_registered(entries: dict[str, Any]) -> None:
    """Register the shipped task and model in this worker unless its own import already did."""
    from affectlab.models import MODELS
    from affectlab.training.tasks import TASKS, register_task

    if entries["task"].name not in TASKS:
        register_task(entries["task"])
    name, builder = entries["model"]
    MODELS.setdefault(name, builder)


def train_loop_per_worker(loop_config: dict[str, Any]) -> LoopOutput:
    """Ray Train worker: streamed shard -> the task's modules (DDP) -> :func:`fit`, with
    ``ray.train.report`` every round."""
    import ray.train
    import ray.train.torch

    _ensure_registered(loop_config["registry"])
    config = ExperimentConfig.model_validate(loop_config["config"])
    ctx = ray.train.get_context()
    rank, world = ctx.get_world_rank(), ctx.get_world_size()
    device = ray.train.torch.get_device()
    torch.set_num_threads(_threads(config))
    info = DataInfo(model_kwargs=loop_config["model_kwargs"], class_counts=np.asarray(loop_config["class_counts"]),
                    extra=loop_config.get("extra") or {})
    task = build_task(config, info)
    modules = _prepared_modules(config, task, info.model_kwargs, device)
    train_shard, val_shard = ray.train.get_dataset_shard("train"), ray.train.get_dataset_shard("val")
    t = config.training
    per_worker = max(1, t.batch_size // world)
    return fit(
        task, modules,
        lambda epoch: shard_batches(train_shard, per_worker, seed=batch_seed(t.seed, epoch, rank)),
        lambda: shard_batches(val_shard, t.batch_size),
        t, _RayTrainReporter(rank, loop_config["fingerprint"], loop_config.get("weights_dir")),
        dist=DistInfo(rank, world, str(device)),
    )


def _in_tune_session() -> bool:
    try:
        from ray.tune.trainable.trainable_fn_utils import _in_tune_session as check
    except ImportError:  # pragma: no cover - older Ray
        return False
    return bool(check())


POLL_ENV = "RAY_TRAIN_HEALTH_CHECK_INTERVAL_S"


@contextmanager
def _controller_poll_interval(seconds: float) -> Iterator[None]:
    """Set the Train controller's poll interval (propagated to it from the driver's environment).

    Each worker's report queue holds one result, so a worker waits for the controller's next
    poll before it can report again: with Ray's default 2 s, short epochs take 2 s each.
    """
    if POLL_ENV in os.environ:
        yield
        return
    os.environ[POLL_ENV] = str(seconds)
    try:
        yield
    finally:
        os.environ.pop(POLL_ENV, None)


@contextmanager
def _quiet_datasets() -> Iterator[None]:
    """Datasets created inside the block show no progress bars (a dataset keeps the DataContext
    it was created with, workers included)."""
    import ray.data

    ctx = ray.data.DataContext.get_current()
    saved = ctx.enable_progress_bars, getattr(ctx, "print_on_execution_start", None)
    ctx.enable_progress_bars = False
    if saved[1] is not None:
        ctx.print_on_execution_start = False
    try:
        yield
    finally:
        ctx.enable_progress_bars = saved[0]
        if saved[1] is not None:
            ctx.print_on_execution_start = saved[1]


def windows_datasets(prepared: Prepared) -> dict[str, Any]:
    """Ray Datasets of the training and validation windows (``x``, ``y``, ``mask`` tensor columns)."""
    import ray.data

    with _quiet_datasets():
        return {"train": ray.data.from_arrow(prepared.train.to_arrow()), "val": ray.data.from_arrow(prepared.val.to_arrow())}


def _warn_if_no_cpu_left_for_data(reserved: float) -> None:
    """Streamed datasets are read by Ray Data tasks, which need CPUs the training workers do not
    hold: warn (it would wait forever) when the workers reserve every CPU of the cluster."""
    import sys

    import ray

    total = float(ray.cluster_resources().get("CPU", 0.0))
    if total and total - reserved < 0.5:
        print(f"affectlab: warning: the training workers reserve {reserved:g} of the cluster's {total:g} CPUs; "
              "Ray Data needs CPUs left over to read streamed data (lower scaling.cpus_per_worker or "
              "scaling.num_workers, or add nodes)", file=sys.stderr)


def cache_datasets(datasets: dict[str, Any]) -> dict[str, Any]:
    """Each lazy Ray Dataset materialised once in Ray's object store (``Dataset.materialize()``);
    datasets already materialised (``from_arrow``, ``from_items``, cached parts) pass through.

    Why: a lazy Dataset re-runs its whole plan on every iteration, and the workers iterate
    ``train`` (through its streaming split) and ``val`` once per epoch. For a Parquet read that is
    a fresh streaming executor, a ``ListFiles`` task, read and map tasks, each scheduled on the
    CPUs the training workers leave over: measured on the 2-core machine, 8-12 s of waiting for
    the first batch per dataset per epoch (16-25 s per epoch for 16 training and 8 validation
    tiny clips whose reading takes 0.1 s), against 0.05 s per pass over the materialised blocks.
    The blocks are the same ones the streamed pipeline yields, so the batches (and the seeded
    local shuffle) are unchanged; Ray spills them to disk when the object store is full. A task
    streams instead (``run_ray_train_datasets(stream=True)``) when its ``cache`` setting is off
    (``data.vsr.cache``, ``data.emotion.cache``), for data too large to hold there.
    """
    from ray.data.dataset import MaterializedDataset  # @PublicAPI, not re-exported by ray.data

    return {name: ds if isinstance(ds, MaterializedDataset) else ds.materialize() for name, ds in datasets.items()}


def run_ray_train(config: ExperimentConfig, prepared: Prepared, *, out: str,
                  reporter: Reporter | None = None) -> tuple[LoopOutput, Any]:
    """Train prepared windows with a ``TorchTrainer`` (see :func:`run_ray_train_datasets`)."""
    return run_ray_train_datasets(config, windows_datasets(prepared), data_info(prepared), out=out, reporter=reporter,
                                  in_memory=True)


def run_ray_train_datasets(config: ExperimentConfig, datasets: dict[str, Any], info: DataInfo, *, out: str,
                           reporter: Reporter | None = None, in_memory: bool = False, stream: bool = False,
                           weights_dir: str | None = None) -> tuple[LoopOutput, Any]:
    """Train with a ``TorchTrainer``; returns rank 0's loop output and the Ray Train ``Result``.

    ``datasets`` holds Ray Datasets ``train`` (split across the workers) and ``val`` (whole on
    every worker) whose batches the task's :meth:`~affectlab.training.tasks.Task.to_device`
    reads; they are never read whole by the driver or a worker. Lazy datasets are materialised once
    in Ray's object store before the workers start (:func:`cache_datasets`: an epoch then costs its
    compute, not a re-run of the read pipeline), unless ``stream`` (the task's ``cache: false``
    setting, for data too large to hold there): then they are read from their source every epoch,
    and unless ``in_memory`` (datasets built from driver memory, which need no read tasks) a
    warning says when the workers leave no CPU for Ray Data to read with.

    Run state lives under ``<out>/ray/<config.name>``: running again with the same ``out``
    resumes from the latest checkpoint (Ray Train V2 restores a run by storage path and name).
    Inside a Tune trial the per-round metrics are forwarded to Tune with Ray's
    ``TuneReportCallback``; otherwise ``reporter`` is called with each round's metrics after
    the run (checkpoints stay in the run directory). With ``weights_dir`` rank 0 also writes every
    round's module weights there (:func:`write_round_weights`).
    """
    import ray
    import ray.train
    from ray.train.torch import TorchTrainer

    s = config.scaling
    if not stream:
        datasets = cache_datasets(datasets)  # read once here, not once per epoch in the workers
    elif not in_memory:
        _warn_if_no_cpu_left_for_data(s.num_workers * s.cpus_per_worker)
    callbacks = []
    if reporter is not None and _in_tune_session():
        from ray.tune.integration.ray_train import TuneReportCallback

        callbacks.append(TuneReportCallback())
    storage_path = storage.absolute(storage.join(out, "ray"))
    trainer = TorchTrainer(
        train_loop_per_worker,
        train_loop_config={
            "config": config.model_dump(mode="json"),
            "model_kwargs": info.model_kwargs,
            "class_counts": np.asarray(info.class_counts).tolist(),
            "extra": info.extra,
            "fingerprint": fingerprint(config),
            "registry": _registry_entries(config),
            "weights_dir": storage.absolute(weights_dir) if weights_dir else None,
        },
        scaling_config=ray.train.ScalingConfig(
            num_workers=s.num_workers, use_gpu=s.use_gpu, resources_per_worker={"CPU": s.cpus_per_worker}
        ),
        run_config=ray.train.RunConfig(
            name=config.name,
            storage_path=storage_path,
            failure_config=ray.train.FailureConfig(max_failures=config.failure.max_failures),
            checkpoint_config=ray.train.CheckpointConfig(num_to_keep=config.checkpoint.num_to_keep),
            callbacks=callbacks or None,
        ),
        datasets=datasets,
        dataset_config=ray.train.DataConfig(datasets_to_split=["train"]),
    )
    with _controller_poll_interval(s.poll_interval_s):
        result = trainer.fit()
    output: LoopOutput = result.return_value
    if reporter is not None and not callbacks:
        for row in output.history:
            reporter(dict(row), None)
    return output, result
