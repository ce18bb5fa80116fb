"""The generic loop under real Ray Train DDP workers: a two-optimizer task with a known answer,
replicas checked equal after every step, and a negative control that breaks the check.

A Ray Train worker SIGKILLed mid-run and resumed from its last checkpoint is tested on the
two-network GAN (``test_gan_train.py``, the same iteration-checkpoint path with 2 workers), and this
game losing a whole node on a 3-node cluster (``test_cluster_failures.py``); the copy that killed a
worker of this game was dropped to keep the suite under its time budget.

Ray Train start-up costs ~20 s per run on the 2-core machine, so these are marked slow.
"""

from __future__ import annotations

import os
import sys

import numpy as np
import pytest

from affectlab.training.config import ExperimentConfig
from affectlab.training.loop import DistInfo, fit
from affectlab.training.runners import build_modules, run_ray_train_datasets
from affectlab.training.tasks import build_task
from game_data import INFO, game_config, game_datasets

pytestmark = pytest.mark.slow

def test_game_under_two_ddp_workers_reaches_equilibrium_with_equal_replicas(ray_local, tmp_path) -> None:
    datasets, data = game_datasets()
    output, result = run_ray_train_datasets(game_config(), datasets, INFO, out=str(tmp_path))
    assert [row["iteration"] for row in output.history] == [100, 200, 300, 400, 500, 600]
    assert output.history[-1]["val_distance"] < 0.25 < output.history[0]["val_distance"]
    states = output.best_states
    target = data[:256].mean(axis=0) / 2
    for name in ("x", "y"):
        assert np.abs(states[name]["value"].numpy() - target).max() < 0.2, (name, states[name], target)
    # every step passed the replica check (verify_replicas raises otherwise); checkpoints hold both players
    checkpoints = sorted(d for d in os.listdir(tmp_path / "ray" / "game") if d.startswith("epoch="))
    assert checkpoints == ["epoch=0005", "epoch=0006"]


def unsynced_loop(loop_config: dict) -> str:
    """Negative control: the same game on 2 workers but without DDP wrappers (no gradient sync)."""
    import ray.train

    config = ExperimentConfig.model_validate(loop_config["config"])
    ctx = ray.train.get_context()
    task = build_task(config, INFO)
    modules = build_modules(config, task, INFO.model_kwargs)  # not prepare_model(): no all-reduce
    shard = ray.train.get_dataset_shard("train")

    class Quiet:
        def restore(self):
            return None

        def report(self, metrics, state):
            pass

    try:
        fit(task, modules, lambda e: shard.iter_batches(batch_size=8, batch_format="numpy"),
            lambda: [{"x": np.zeros((1, 2), np.float32)}], config.training, Quiet(),
            dist=DistInfo(ctx.get_world_rank(), ctx.get_world_size(), "cpu"))
    except RuntimeError as exc:
        return str(exc)
    return "no mismatch detected"


def test_negative_control_without_gradient_sync_fails_the_replica_check(ray_local, tmp_path) -> None:
    import ray.cloudpickle
    import ray.train
    from ray.train.torch import TorchTrainer

    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # ship this test's loop to the workers
    datasets, _ = game_datasets(256)
    config = game_config(max_iterations=20, eval_every=20)
    trainer = TorchTrainer(
        unsynced_loop, train_loop_config={"config": config.model_dump(mode="json")},
        scaling_config=ray.train.ScalingConfig(num_workers=2, resources_per_worker={"CPU": 1}),
        run_config=ray.train.RunConfig(name="unsynced", storage_path=str(tmp_path)),
        datasets={"train": datasets["train"]},
    )
    message = trainer.fit().return_value
    # step 1 moves y, whose gradient (y - x) holds no data; step 2 moves x, whose gradient does
    assert "after step 2" in message and "['x']" in message and "differ" in message, message
