"""Training of the lip reading stages, ``data.task: vsr_lm | vsr_visual | vsr`` (seed 001).

:func:`train_vsr` is what :func:`affectlab.training.run.train` runs for these tasks: it reads the
transcribed clips and the speaker split (:mod:`affectlab.training.vsr_data`), resolves the runs
the stage starts from (:func:`~affectlab.training.vsr_pieces.resolve_pieces`), trains with the
configured runner (Ray Train streaming the mouth ROIs from Parquet to every worker, or
in-process), restores the best round, scores the test speakers with the task's metrics and
writes the usual run outputs (``config.yaml``, ``history.parquet``, ``result.json`` with
``pieces``, ``split`` and clip counts, ``best_model.pt``: the next stage's ``data.vsr.init``).

Chaining the three stages (``search_spaces/vsr_lm.yaml``, ``vsr_visual.yaml``, ``vsr_integrate.yaml``)::

    affectlab train search_spaces/vsr_lm.yaml --out runs/vsr/lm --set data.features=PREP
    affectlab train search_spaces/vsr_visual.yaml --out runs/vsr/visual --set data.features=PREP \\
        --set data.vsr.init=runs/vsr/lm
    affectlab train search_spaces/vsr_integrate.yaml --out runs/vsr/lipreader --set data.features=PREP \\
        --set data.vsr.init=runs/vsr/visual
    affectlab evaluate runs/vsr/lipreader        # or affectlab.training.vsr_evaluate.evaluate_vsr

Stage 3 finds the LM through the stage-2 run (``result.json`` ``pieces.lm``); ``data.vsr.lm``
overrides it.
"""

from __future__ import annotations

import time
from typing import Any

from affectlab.training.config import ExperimentConfig
from affectlab.training.loop import saved_weights
from affectlab.training.runners import (Reporter, batch_seed, build_modules, run_in_process_batches,
                                       run_ray_train_datasets, shard_batches, torch_threads)
from affectlab.training.tasks import DataInfo, build_task
from affectlab.training.tasks.vsr import VsrTask
from affectlab.training.vsr_data import VsrData, load_vsr_data
from affectlab.training.vsr_pieces import resolve_pieces

__all__ = ["data_info", "score_part", "train_vsr", "vsr_task"]


def data_info(config: ExperimentConfig) -> DataInfo:
    """What the stage's task needs besides the config: the URIs of the runs it starts from."""
    return DataInfo(extra={"pieces": resolve_pieces(config)})


def vsr_task(config: ExperimentConfig, info: DataInfo) -> VsrTask:
    """The stage's task.

    Raises:
        TypeError: ``data.task`` built something else (a task registered over it at run time).
    """
    task = build_task(config, info)
    if not isinstance(task, VsrTask):
        raise TypeError(f"data.task {config.data.task!r} built a {type(task).__name__}, not a VsrTask")
    return task


def score_part(config: ExperimentConfig, data: VsrData, info: DataInfo, states: dict[str, Any], part: str,
               prefix: str) -> dict[str, float]:
    """The task's metrics of the weights ``states`` on ``part`` (CPU, eval mode); {} without that part."""
    if part not in data.datasets:
        return {}
    task = vsr_task(config, info)
    modules = build_modules(config, task, info.model_kwargs)
    for name, module in modules.items():
        module.load_state_dict(states[name])
    with torch_threads(config.scaling.torch_threads):
        return task.evaluate(modules, shard_batches(data.datasets[part], config.training.batch_size), "cpu",
                             prefix=prefix)


def train_vsr(config: ExperimentConfig, *, out: str, reporter: Reporter | None = None,
              resume_from: str | None = None, write: bool = True) -> Any:
    """Train one lip reading stage (module docstring); returns a
    :class:`~affectlab.training.run.TrainResult` whose ``test`` holds the test speakers' metrics
    of the best round and whose ``extra`` the pieces, clip counts and dropped clips."""
    from affectlab.training.run import TrainResult, write_outputs

    started = time.perf_counter()
    in_process = config.scaling.runner == "in_process"
    info = data_info(config)  # the earlier stages' runs are checked before any data is read
    data = load_vsr_data(config, in_process=in_process)
    t = config.training
    if in_process:
        output = run_in_process_batches(
            config, info, lambda epoch: shard_batches(data.datasets["train"], t.batch_size,
                                                      seed=batch_seed(t.seed, epoch, 0)),
            lambda: shard_batches(data.datasets["val"], t.batch_size), reporter=reporter, resume_from=resume_from)
    else:
        output, _ = run_ray_train_datasets(config, {"train": data.datasets["train"], "val": data.datasets["val"]},
                                           info, out=out, reporter=reporter, in_memory=config.data.task == "vsr_lm",
                                           stream=not config.data.vsr.cache)
    best_row = next((r for r in output.history if r["epoch"] == output.best_epoch), output.history[-1])
    result = TrainResult(
        config=config, out=out, history=output.history, best_epoch=output.best_epoch,
        val={k: float(v) for k, v in best_row.items() if k.startswith("val_")},
        test=score_part(config, data, info, output.best_states, "test", "test_"), baseline={}, split=data.split,
        stop_reason=output.stop_reason, runner=config.scaling.runner, wall_s=time.perf_counter() - started,
        resumed_from=output.resumed_from, extra={"pieces": info.extra["pieces"], **data.summary()},
    )
    if write:
        write_outputs(result, saved_weights(output.best_states))
    return result
