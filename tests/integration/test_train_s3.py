"""Training outputs on S3 (a real local S3 HTTP server): in-process runner, resume from a checkpoint."""

from __future__ import annotations

import json
import os

import pytest

from affectlab import storage
from affectlab.errors import ConfigError
from affectlab.training.config import load_experiment
from affectlab.training.run import train
from speech_au_data import speech_au_preprocessed

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(__file__)))


@pytest.mark.slow
def test_in_process_training_writes_to_s3_and_resumes(tmp_path_factory, ray_local, s3_bucket, tmp_path) -> None:
    pre = speech_au_preprocessed(tmp_path_factory)
    sets = [f"data.features={pre}", "scaling.runner=in_process", "model.name=stacked", "model.kwargs.hidden=8",
            "training.max_epochs=3", "training.prev_rounds=3", "data.test_subjects=[s02]"]
    config = load_experiment(os.path.join(ROOT, "search_spaces", "au_003.yaml"), sets).base
    saved: dict[int, str] = {}

    def keep(metrics: dict, checkpoint_dir: str | None) -> None:  # a reporter that keeps epoch 2's checkpoint
        if metrics["epoch"] == 2:
            target = tmp_path / "epoch2"
            target.mkdir()
            (target / "checkpoint.pt").write_bytes(open(os.path.join(checkpoint_dir, "checkpoint.pt"), "rb").read())
            saved[2] = str(target)

    out = f"{s3_bucket}/runs/au"
    full = train(config, out=out, reporter=keep)
    summary = json.loads(storage.read_text(f"{out}/result.json"))
    assert summary["epochs"] == 3 and storage.exists(f"{out}/history.parquet") and storage.exists(f"{out}/best_model.pt")
    resumed = train(config, out=f"{s3_bucket}/runs/au2", resume_from=saved[2], write=False)
    assert resumed.resumed_from == 2 and [r["epoch"] for r in resumed.history] == [1, 2, 3]
    strip = lambda rows: [{k: v for k, v in r.items() if not k.endswith("_s")} for r in rows]  # noqa: E731
    assert strip(resumed.history) == strip(full.history)  # resuming reproduces the uninterrupted run
    other = load_experiment(os.path.join(ROOT, "search_spaces", "au_003.yaml"), [*sets, "training.lr=0.01"]).base
    with pytest.raises(ConfigError, match="different config"):
        train(other, out=str(tmp_path / "x"), resume_from=saved[2], write=False)
