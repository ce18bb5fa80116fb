"""GPU paths (skipped without CUDA): in-process with AMP, and one Ray Train worker with use_gpu."""

from __future__ import annotations

import os

import pytest
import torch

from affectlab.training.config import load_experiment
from affectlab.training.run import train
from speech_au_data import speech_au_preprocessed

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")]
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(__file__)))


@pytest.mark.parametrize("runner", ["in_process", "ray_train"])
def test_training_on_gpu_with_amp(runner: str, tmp_path_factory, ray_local, tmp_path) -> None:
    pre = speech_au_preprocessed(tmp_path_factory)
    config = load_experiment(os.path.join(ROOT, "search_spaces", "au_003.yaml"), [
        f"data.features={pre}", f"scaling.runner={runner}", "scaling.use_gpu=true", "training.amp=true",
        "training.max_epochs=2", "training.prev_rounds=2", "data.test_subjects=[s01]",
    ]).base
    result = train(config, out=str(tmp_path))
    assert len(result.history) == 2 and 0.0 <= result.test["test_uar"] <= 1.0


def test_lip_reading_stage_3_on_gpu_with_amp(ray_local, tmp_path_factory, tmp_path) -> None:
    """Seed 001's three stages on one Ray Train GPU worker with AMP, stage 3 for a few steps."""
    import math

    import pandas as pd

    from affectlab.data.synth import generate
    from affectlab.preprocess import preprocess
    from affectlab.training.vsr_pipeline import load_pipeline, run_vsr_pipeline

    root = tmp_path_factory.mktemp("vsr-gpu")
    card = generate("visemes", str(root / "corpus"), subjects=4, items=2, seed=3, size=128)
    prep = str(root / "prep")
    preprocess(card, prep, audio="", video="landmarks,mouth", progress=False)
    pipeline = load_pipeline(os.path.join(ROOT, "search_spaces", "vsr.yaml"), [
        f"data.features={prep}", "scaling.runner=ray_train", "scaling.use_gpu=true", "training.amp=true",
        "training.batch_size=4", "lm:training.max_epochs=2", "visual:training.max_epochs=1",
        "lipreader:training.max_iterations=4", "lipreader:training.eval_every=2",
        "lipreader:data.vsr.decoding.beam_width=2"])
    result = run_vsr_pipeline(pipeline, str(tmp_path), report=False, echo=print)
    history = pd.read_parquet(os.path.join(result.runs["lipreader"], "history.parquet"))
    assert history["iteration"].tolist() == [2, 4] and all(math.isfinite(v) for v in history["train_loss"])
    assert set(result.summary) == {"greedy", "beam", "beam_lm"}
