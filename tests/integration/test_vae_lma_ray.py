"""``data.task: vae_lma`` trained by the Ray Train runner (real local Ray, one worker) on a small
synthetic ``lma`` corpus: the same outputs as in-process."""

from __future__ import annotations

from pathlib import Path

import pytest

from affectlab.data.synth import generate
from affectlab.training.config import load_experiment, with_updates
from affectlab.training.run import train

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]


def test_ray_train_runner_trains_the_vae(ray_local: None, tmp_path: Path) -> None:
    card = generate("lma", str(tmp_path / "corpus"), subjects=4, items=30, seed=0)
    base = load_experiment(str(ROOT / "search_spaces" / "vae_lma.yaml")).base
    config = with_updates(base, {"data.features": card, "model.kwargs.latent_dim": 2, "scaling.runner": "ray_train",
                                 "scaling.num_workers": 1, "scaling.cpus_per_worker": 1, "training.max_epochs": 3,
                                 "data.vae.xgb": {"n_estimators": 20, "max_depth": 2}})
    result = train(config, out=str(tmp_path / "ray"))
    assert result.runner == "ray_train" and len(result.history) == 3
    assert result.test["test_mae"] > 0 and (tmp_path / "ray" / "predictions" / "test.parquet").exists()
    assert (tmp_path / "ray" / "ray").is_dir()  # Ray Train's run state under <out>/ray
