"""The tiny two-player "game" training shared by the DDP and cluster-failure tests: two players
pull towards the data mean ``MU`` (task ``game``, model ``quadratic_game``), cheap enough for many
Ray Train rounds on 1-CPU workers."""

from __future__ import annotations

from typing import Any

import numpy as np

from affectlab.training.config import ExperimentConfig
from affectlab.training.tasks import DataInfo

MU = np.array([2.0, -4.0])
INFO = DataInfo(model_kwargs={"input_dim": 2})


def game_config(*, max_failures: int = 2, **training: Any) -> ExperimentConfig:
    """2 Ray Train workers of 1 CPU each, replicas verified every step; ``training`` overrides."""
    return ExperimentConfig.model_validate({
        "name": "game",
        "data": {"features": "/unused", "task": "game"},
        "model": {"name": "quadratic_game"},
        "training": {"lr": 0.02, "batch_size": 16, "max_iterations": 600, "eval_every": 100,
                     "patience": 100, "prev_rounds": 100, "last_top_results": 1,
                     "monitor": "val_distance", "verify_replicas": True, **training},
        "scaling": {"num_workers": 2, "cpus_per_worker": 1},
        "failure": {"max_failures": max_failures},
        "checkpoint": {"num_to_keep": 2},
    })


def game_datasets(rows: int = 2048) -> tuple[dict[str, Any], np.ndarray]:
    """Ray Datasets ``train`` (2 blocks) and ``val`` (its first 256 rows) of draws around ``MU``, and the data."""
    import ray.data

    data = (MU + np.random.default_rng(0).normal(size=(rows, 2))).astype(np.float32)
    items = [{"x": row} for row in data]
    return {"train": ray.data.from_items(items, override_num_blocks=2),
            "val": ray.data.from_items(items[:256], override_num_blocks=1)}, data
