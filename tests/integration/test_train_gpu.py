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
