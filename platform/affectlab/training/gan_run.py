"""Training of ``data.task: gan_au | gan_va | gan_au_va`` (seed 002's categorical GAN).

:func:`train_gan` is what :func:`affectlab.training.run.train` runs for these tasks: it loads the
frames (:mod:`affectlab.training.gan_data`), trains with the configured runner and writes the
usual run outputs (``config.yaml``, ``history.parquet``, ``result.json``, ``best_model.pt`` =
``{"generator", "discriminator"}`` state dicts of the best evaluation) and, unless
``data.gan.save_checkpoints`` is false, both networks at every checkpoint in
``<out>/checkpoints/iteration=<N>.pt`` (what ``affectlab evaluate RUN --checkpoints all`` scores,
:mod:`affectlab.training.gan_evaluate`).

Iterations: the seed counts iterations, not epochs. Set ``training.max_iterations`` (the budget;
the seed: 1 000 000) and ``training.eval_every`` (K, the checkpoint period; the seed: 1000): the
shared loop then cycles the training frames (a new shuffled pass each time the previous one is
used up; one "data epoch" = ``floor(train frames / batch_size)`` iterations, the partial last batch
dropped), evaluates on the held-out part and checkpoints every K iterations (one history row per
checkpoint, with its ``iteration``). The iteration counter that drives the D/G schedule and the
reconstruction annealing is the loop's global step, so it continues across passes and resumes.
Without ``max_iterations`` the loop is epoch based (``training.max_epochs`` passes), which is only
meant for quick checks. The best checkpoint is chosen by ``training.monitor`` (e.g.
``val_au_mean_f1`` or ``val_ccc_mean``); ``history.parquet`` keeps every checkpoint's metrics for
the best-iteration tables.
"""

from __future__ import annotations

import time
from typing import Any

from affectlab.training.config import ExperimentConfig
from affectlab.training.gan_data import GanData, load_gan_data
from affectlab.training.loop import saved_weights
from affectlab.training.runners import (Reporter, batch_seed, build_modules, run_in_process_batches,
                                       run_ray_train_datasets, torch_threads)
from affectlab.training.splits import Split
from affectlab.training.tasks import DataInfo, build_task
from affectlab.training.tasks.gan import GanTask

__all__ = ["CHECKPOINTS", "checkpoints_dir", "train_gan"]

CHECKPOINTS = "checkpoints"


def checkpoints_dir(out: str) -> str:
    """Where a GAN run writes its per-checkpoint weights: ``<out>/checkpoints``."""
    from affectlab import storage

    return storage.join(out, CHECKPOINTS)


def _gan_task(config: ExperimentConfig, info: DataInfo) -> GanTask:
    task = build_task(config, info)
    if not isinstance(task, GanTask):
        raise TypeError(f"data.task {config.data.task!r} built a {type(task).__name__}, not a GanTask")
    return task


def _evaluate(config: ExperimentConfig, data: GanData, info: DataInfo, states: dict[str, Any]) -> dict[str, float]:
    task = _gan_task(config, info)
    modules = build_modules(config, task, info.model_kwargs)
    for name, module in modules.items():
        module.load_state_dict(states[name])
    with torch_threads(config.scaling.torch_threads):
        return task.evaluate(modules, data.eval_batches("val"), "cpu", prefix="val_")


def train_gan(config: ExperimentConfig, *, out: str, reporter: Reporter | None = None,
              resume_from: str | None = None, write: bool = True) -> Any:
    """Train a categorical GAN task (module docstring); returns a
    :class:`~affectlab.training.run.TrainResult` whose ``val`` holds the best checkpoint's metrics
    on the held-out identities (the seed's test part) and whose ``extra`` the frame counts, split
    distance and the best checkpoint's ``best_iteration``."""
    from affectlab.training.run import TrainResult, write_outputs

    started = time.perf_counter()
    data = load_gan_data(config)
    info = DataInfo(model_kwargs=data.model_kwargs, extra=data.extra)
    t = config.training
    weights_dir = checkpoints_dir(out) if config.data.gan.save_checkpoints and write else None
    if config.scaling.runner == "in_process":
        output = run_in_process_batches(
            config, info, lambda epoch: data.train_batches(t.batch_size, batch_seed(t.seed, epoch, 0)),
            lambda: data.eval_batches("val"), reporter=reporter, resume_from=resume_from, weights_dir=weights_dir)
    else:
        output, _ = run_ray_train_datasets(config, data.ray_datasets(), info, out=out, reporter=reporter,
                                           in_memory=True, weights_dir=weights_dir)
    best_row = next((r for r in output.history if r["epoch"] == output.best_epoch), output.history[-1])
    val = _evaluate(config, data, info, output.best_states)
    subjects = data.summary()["subjects"]
    result = TrainResult(
        config=config, out=out, history=output.history, best_epoch=output.best_epoch, val=val, test={},
        baseline={}, split=Split(tuple(subjects["train"]), tuple(subjects["val"]), ()),
        stop_reason=output.stop_reason, runner=config.scaling.runner, wall_s=time.perf_counter() - started,
        resumed_from=output.resumed_from,
        extra={"best_iteration": int(best_row.get("iteration", 0)), **data.summary()},
    )
    if write:
        write_outputs(result, saved_weights(output.best_states))
    return result
