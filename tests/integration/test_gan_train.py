"""``data.task: gan_au_va`` end to end: a tiny synthetic ``faces`` corpus, Ray Data preprocessing
(landmarks + RGB 28x28 face crops), a few dozen alternating D/G iterations in-process, and the
stored outputs (history per checkpoint, result.json, best_model.pt with both networks)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import pytest
import torch

from affectlab.data.synth import generate
from affectlab.preprocess import preprocess
from affectlab.training.config import ExperimentConfig
from affectlab.training.run import train

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def prepared(ray_local: None, tmp_path_factory: pytest.TempPathFactory) -> str:
    root = tmp_path_factory.mktemp("gan")
    card = generate("faces", str(root / "corpus"), subjects=4, items=2, seed=3, size=64, frames=16)
    out = str(root / "prep")
    preprocess(card, out, video="landmarks,face", face_sizes=[28], grayscale=False, progress=False)
    return out


def test_gan_au_va_trains_and_stores_finite_metrics(prepared: str, tmp_path: Path) -> None:
    config = ExperimentConfig.model_validate({
        "name": "gan", "data": {"features": prepared, "task": "gan_au_va",
                                "gan": {"n_draws": 5, "loss_weights": "ponderated"}},
        "model": {"name": "categorical_gan"},
        "training": {"monitor": "val_au_mean_f1", "update_rate": 2, "batch_size": 16, "max_iterations": 24,
                     "eval_every": 8, "patience": 100},
        "scaling": {"runner": "in_process", "torch_threads": 2}})
    out = tmp_path / "run"
    result = train(config, out=str(out))

    assert [row["iteration"] for row in result.history] == [8, 16, 24]
    for row in result.history:
        assert {"train_d_loss", "train_g_loss", "val_au_mean_f1", "val_ccc_valence", "val_real_pct"} <= set(row)
        assert all(math.isfinite(v) for v in row.values() if isinstance(v, float))
    names = [f"val_au_{m}_{au}" for au in config.data.gan.aus for m in ("f1", "precision", "recall", "accuracy")]
    expected = {*names, "val_au_mean_f1", "val_au_mean_accuracy", "val_au_score", "val_real_pct", "val_ccc_valence",
                "val_ccc_arousal", "val_mse_valence", "val_mse_arousal", "val_loss"}
    assert expected <= set(result.val)
    assert all(math.isfinite(v) for v in result.val.values())
    assert 0.0 <= result.val["val_real_pct"] <= 1.0

    stored = json.loads((out / "result.json").read_text())
    assert stored["val"]["val_au_mean_f1"] == pytest.approx(result.val["val_au_mean_f1"])
    assert set(stored["subjects"]["train"]).isdisjoint(stored["subjects"]["val"])
    assert stored["colour"] is True and stored["frames"]["train"] > 0 and stored["frames"]["val"] > 0
    assert len(pd.read_parquet(out / "history.parquet")) == 3
    weights = torch.load(out / "best_model.pt", weights_only=True)
    assert set(weights) == {"generator", "discriminator"}


def test_gan_au_two_ray_train_workers_keep_equal_parameters(prepared: str, tmp_path: Path) -> None:
    """Ray Train DDP with 2 workers: ``training.verify_replicas`` all-gathers a digest of every
    module's parameters after each step and stops with an error on any difference, so a finished
    run means both networks stayed equal across ranks through D steps and G steps (update_rate 2:
    D at 0, 3, 6; G otherwise), without DDP unused-parameter errors."""
    config = ExperimentConfig.model_validate({
        "name": "gan2", "data": {"features": prepared, "task": "gan_au", "gan": {"n_draws": 5}},
        "model": {"name": "categorical_gan"},
        "training": {"monitor": "val_au_mean_f1", "update_rate": 2, "batch_size": 16, "max_iterations": 9,
                     "eval_every": 3, "patience": 100, "verify_replicas": True},
        "scaling": {"runner": "ray_train", "num_workers": 2, "torch_threads": 1, "cpus_per_worker": 1},
        "failure": {"max_failures": 0}})
    result = train(config, out=str(tmp_path / "run"))
    assert [row["iteration"] for row in result.history] == [3, 6, 9]
    assert all(math.isfinite(row["train_d_loss"]) and math.isfinite(row["train_g_loss"]) for row in result.history)
    assert math.isfinite(result.val["val_au_mean_f1"])
