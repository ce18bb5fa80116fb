"""``affectlab evaluate RUN --checkpoints all``: score every saved checkpoint of a GAN run (seed 002's procedure).

The seed evaluates every checkpoint (weights saved every 1000 iterations) on the testing set and
reports, per metric, the **best value over the checkpoints and the iteration where it was
reached** (SEED-NOTES C.4). A GAN run writes both networks at every checkpoint to
``<run>/checkpoints/iteration=<N>.pt`` (``data.gan.save_checkpoints``);
:func:`evaluate_checkpoints` scores them **in parallel as Ray tasks**, one per checkpoint:

* the driver reads the run's ``config.yaml``, loads the frames and re-draws the run's split (the
  split is a deterministic function of the data and ``data.split_seed``; the identities are checked
  against the run's ``result.json``), and puts the chosen part in the object store once;
* each task loads one checkpoint's discriminator and computes every metric of
  :meth:`~affectlab.training.tasks.gan.GanTask.scores` on the real images of that part;
* the rows (one per checkpoint: ``iteration`` + metrics, no prefix) go to
  ``<run>/evaluation/<split>.parquet`` and :func:`best_over_checkpoints` gives the table cells.

Parts: ``test`` is the held-out identities (the seed's testing set; during training the loop
scores it as ``val_*`` at every checkpoint), ``train`` the training identities.
"""

from __future__ import annotations

import io
import json
import re
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import pandas as pd

from affectlab import storage
from affectlab.errors import ConfigError, DatasetError

__all__ = ["EVALUATION_DIR", "LOWER_IS_BETTER", "PARTS", "best_over_checkpoints", "evaluate_checkpoints",
           "list_checkpoints", "load_evaluation", "run_config", "select_checkpoints"]

EVALUATION_DIR = "evaluation"
PARTS = {"test": "val", "train": "train"}
"""``--split`` name -> part of :class:`~affectlab.training.gan_data.GanData` (``val`` holds the held-out identities)."""
LOWER_IS_BETTER = ("loss", "mse_valence", "mse_arousal")
_NAME = re.compile(r"iteration=(\d+)\.pt$")


def list_checkpoints(run: str) -> list[tuple[int, str]]:
    """``(iteration, uri)`` of every ``<run>/checkpoints/iteration=<N>.pt``, by iteration.

    Raises:
        DatasetError: The run has no checkpoints directory or no checkpoint in it.
    """
    from affectlab.training.gan_run import checkpoints_dir

    directory = checkpoints_dir(run)
    found = []
    if storage.exists(directory):
        for uri in storage.list_files(directory, suffix=".pt"):
            match = _NAME.search(uri)
            if match:
                found.append((int(match.group(1)), uri))
    if not found:
        raise DatasetError(f"{run}: no checkpoints in {directory} (a GAN run writes them every training.eval_every "
                           f"iterations unless data.gan.save_checkpoints is false)")
    return sorted(found)


def select_checkpoints(available: list[tuple[int, str]], which: str, best_iteration: int | None = None,
                       ) -> list[tuple[int, str]]:
    """The checkpoints named by ``--checkpoints``: ``all``, ``last``, ``best`` (the run's best
    iteration) or a comma-separated list of iterations.

    Raises:
        ConfigError: An unknown word or an iteration without a checkpoint (the available ones listed).
    """
    by_iteration = dict(available)
    if which == "all":
        return list(available)
    if which == "last":
        return [available[-1]]
    if which == "best":
        if best_iteration is None or best_iteration not in by_iteration:
            raise ConfigError(f"--checkpoints best: the run's best iteration {best_iteration!r} has no checkpoint; "
                              f"available: {sorted(by_iteration)}")
        return [(best_iteration, by_iteration[best_iteration])]
    try:
        wanted = [int(part) for part in which.split(",") if part.strip()]
    except ValueError:
        raise ConfigError(f"--checkpoints {which!r}: use all, best, last or comma-separated iterations") from None
    missing = [i for i in wanted if i not in by_iteration]
    if missing or not wanted:
        raise ConfigError(f"--checkpoints {which!r}: no checkpoint at iteration(s) {missing}; available: "
                          f"{sorted(by_iteration)}")
    return [(i, by_iteration[i]) for i in wanted]


def _score_checkpoint(config_doc: dict[str, Any], model_kwargs: dict[str, Any], arrays: dict[str, np.ndarray],
                      iteration: int, uri: str, batch_size: int, threads: int) -> dict[str, float]:
    """One checkpoint's metrics on ``arrays`` (runs in a Ray task)."""
    import torch

    from affectlab.training.config import ExperimentConfig
    from affectlab.training.runners import build_modules, torch_threads
    from affectlab.training.tasks import DataInfo, build_task

    config = ExperimentConfig.model_validate(config_doc)
    info = DataInfo(model_kwargs=model_kwargs)
    task = build_task(config, info)
    modules = build_modules(config, task, model_kwargs)
    states = torch.load(io.BytesIO(storage.read_bytes(uri)), weights_only=True)
    modules["discriminator"].load_state_dict(states["discriminator"])
    n = len(arrays["image"])
    batches = ({k: v[s:s + batch_size] for k, v in arrays.items()} for s in range(0, n, batch_size))
    with torch_threads(threads):
        return {"iteration": float(iteration), **task.evaluate(modules, batches, "cpu", prefix="")}


def run_config(run: str) -> tuple[Any, dict[str, Any]]:
    """A GAN run's experiment config (``config.yaml``) and its ``result.json`` ({} when absent).

    Raises:
        DatasetError: No ``config.yaml``.
        ConfigError: The run is not a GAN task.
    """
    from affectlab.config import load_yaml
    from affectlab.training.config import parse_experiment
    from affectlab.training.tasks.gan import GAN_TASKS

    config_uri = storage.join(run, "config.yaml")
    if not storage.exists(config_uri):
        raise DatasetError(f"{run}: no config.yaml (not an `affectlab train` output)")
    config = parse_experiment(load_yaml(config_uri), source=config_uri).base
    if config.data.task not in GAN_TASKS:
        raise ConfigError(f"{run}: data.task is {config.data.task!r}; `affectlab evaluate --checkpoints` scores GAN "
                          f"runs ({', '.join(GAN_TASKS)})")
    result_uri = storage.join(run, "result.json")
    result = json.loads(storage.read_text(result_uri)) if storage.exists(result_uri) else {}
    return config, result


def evaluate_checkpoints(run: str, *, checkpoints: str = "all", split: str = "test", batch_size: int = 256,
                         progress: Callable[[str], None] | None = None) -> pd.DataFrame:
    """Score the chosen checkpoints of GAN run ``run`` on ``split`` in parallel Ray tasks (module docstring).

    Writes ``<run>/evaluation/<split>.parquet`` (merged with earlier rows of other checkpoints) and
    ``<run>/evaluation/<split>_best.json`` (:func:`best_over_checkpoints`); returns the rows of
    this call, sorted by iteration.

    Raises:
        ConfigError: Unknown ``split`` or ``checkpoints``; not a GAN run.
        DatasetError: No checkpoints, or the re-drawn split's identities differ from the run's.
    """
    import ray

    from affectlab.training.gan_data import load_gan_data

    if split not in PARTS:
        raise ConfigError(f"--split {split!r}: must be one of {', '.join(PARTS)}")
    config, result = run_config(run)
    chosen = select_checkpoints(list_checkpoints(run), checkpoints, result.get("best_iteration"))
    data = load_gan_data(config)
    stored = (result.get("subjects") or {}).get(PARTS[split])
    drawn = sorted({str(s) for s in data.parts[PARTS[split]]["subject"]})
    if stored is not None and sorted(stored) != drawn:
        raise DatasetError(f"{run}: the {split} identities re-drawn from data.features ({drawn}) differ from the "
                           f"run's ({sorted(stored)}); the preprocessed data changed since training")
    arrays_ref = ray.put({k: data.parts[PARTS[split]][k] for k in data.columns()})
    config_doc = config.model_dump(mode="json")
    remote = ray.remote(num_cpus=1)(_score_checkpoint)
    pending = {remote.remote(config_doc, data.model_kwargs, arrays_ref, it, uri, batch_size, 1): it
               for it, uri in chosen}
    rows = []
    while pending:
        done, _ = ray.wait(list(pending), num_returns=1)
        rows.append(ray.get(done[0]))
        iteration = pending.pop(done[0])
        if progress is not None:
            progress(f"evaluated iteration {iteration} ({len(rows)}/{len(chosen)})")
    frame = pd.DataFrame(rows).sort_values("iteration").reset_index(drop=True)
    frame["iteration"] = frame["iteration"].astype(np.int64)
    _write(run, split, frame)
    return frame


def _write(run: str, split: str, frame: pd.DataFrame) -> None:
    import pyarrow as pa

    uri = storage.join(run, EVALUATION_DIR, f"{split}.parquet")
    if storage.exists(uri):
        old = storage.read_parquet(uri).to_pandas()
        frame = pd.concat([old[~old["iteration"].isin(frame["iteration"])], frame]).sort_values("iteration")
    storage.write_parquet(pa.Table.from_pandas(frame.reset_index(drop=True), preserve_index=False), uri)
    storage.write_text(storage.join(run, EVALUATION_DIR, f"{split}_best.json"),
                       json.dumps(best_over_checkpoints(frame), indent=2))


def load_evaluation(run: str, split: str = "test") -> pd.DataFrame | None:
    """The rows written by :func:`evaluate_checkpoints` for ``split`` (None when never evaluated)."""
    uri = storage.join(run, EVALUATION_DIR, f"{split}.parquet")
    return storage.read_parquet(uri).to_pandas() if storage.exists(uri) else None


def best_over_checkpoints(frame: pd.DataFrame, metrics: Sequence[str] | None = None) -> dict[str, dict[str, float]]:
    """Per metric, the best value over the checkpoints and the (first) iteration reaching it:
    ``{metric: {"value", "iteration"}}``; minimum for :data:`LOWER_IS_BETTER` and ``mse_*``, maximum
    otherwise. Each metric is maximised separately, as in the seed's tables."""
    out = {}
    for name in metrics or [c for c in frame.columns if c != "iteration"]:
        if name not in frame or frame[name].isna().all():
            continue
        column = frame[name].astype(float)
        index = column.idxmin() if name in LOWER_IS_BETTER or name.startswith("mse_") else column.idxmax()
        out[name] = {"value": float(column[index]), "iteration": int(frame.loc[index, "iteration"])}
    return out
