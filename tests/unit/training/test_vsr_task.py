"""The three lip reading tasks on tiny models and synthetic batches: teacher forcing, input
normalisation, what each stage trains and freezes, the CTC options and the CER / WER metrics."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
import torch

from affectlab.models.vsr_vocab import EOS_ID, PAD_ID, SOS_ID, CharVocab
from affectlab.training.config import parse_experiment
from affectlab.training.tasks import DataInfo, StepContext, build_task
from affectlab.training.tasks.vsr import GREY_MEAN, GREY_STD, error_rates, teacher_forcing

VOCAB = CharVocab()
STAGES = {"vsr_lm": ("vsr_lm", "val_loss"), "vsr_visual": ("vsr_visual", "val_cer"),
          "vsr": ("vsr_lip_reader", "val_cer")}


def _task(task: str, *, kwargs: dict | None = None, **vsr: Any) -> Any:
    model, monitor = STAGES[task]
    if task != "vsr_lm":
        vsr.setdefault("init", "runs/previous")
    config = parse_experiment({"base": {
        "data": {"features": "prep", "feature_set": "mouth_roi", "task": task, "vsr": vsr},
        "model": {"name": model, "kwargs": {"size": "tiny", "input_size": 16, **(kwargs or {})}},
        "training": {"monitor": monitor, "lr": 1e-3}}}).base
    torch.manual_seed(0)
    out = build_task(config, DataInfo(extra={"pieces": {}}))  # no pieces: nothing is read from earlier runs
    return out, out.build_modules(model, dict(config.model.kwargs))


def _batch(texts: list[str], frames: list[int], size: int = 16, seed: int = 0) -> dict[str, Any]:
    rng = np.random.default_rng(seed)
    return {"sample_id": np.array([f"c{i}" for i in range(len(texts))]),
            "tokens": [np.array(VOCAB.encode(t)) for t in texts],
            "video": [rng.integers(0, 255, (n, size, size), dtype=np.uint8) for n in frames]}


def _params(module: torch.nn.Module, prefix: str) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in module.named_parameters() if k.startswith(prefix)}


def test_teacher_forcing_feeds_sos_and_chars_and_predicts_chars_and_eos() -> None:
    tokens = torch.tensor([[10, 11, 12], [13, PAD_ID, PAD_ID]])
    inp, tgt = teacher_forcing(tokens, torch.tensor([3, 1]))
    assert inp.tolist() == [[SOS_ID, 10, 11, 12], [SOS_ID, 13, PAD_ID, PAD_ID]]
    assert tgt.tolist() == [[10, 11, 12, EOS_ID], [13, EOS_ID, PAD_ID, PAD_ID]]


def test_error_rates_are_corpus_level_over_all_reference_characters_and_words() -> None:
    rates = error_rates(["ab cd", "ef"], ["ab cx", ""], "val_")
    assert rates["val_cer"] == pytest.approx(3 / 7)  # 1 substitution + 2 deletions over 7 characters
    assert rates["val_wer"] == pytest.approx(2 / 3)
    assert math.isnan(error_rates([], [])["cer"])


def test_frames_are_normalised_grey_or_imagenet_rgb() -> None:
    task, _ = _task("vsr")
    batch = task.to_device(_batch(["ab", "c"], [3, 2]), "cpu")
    assert batch["video"].shape == (2, 3, 1, 16, 16) and batch["mask"].tolist() == [[True] * 3, [True, True, False]]
    raw = torch.as_tensor(_batch(["ab"], [3])["video"][0]).float() / 255
    assert torch.allclose(batch["video"][0, :, 0], (raw - GREY_MEAN) / GREY_STD)
    rgb, _ = _task("vsr", kwargs={"in_channels": 3})
    x = rgb.to_device({"tokens": [np.array([5])], "video": [np.full((1, 16, 16), 255, np.uint8)]}, "cpu")["video"]
    assert x.shape == (1, 1, 3, 16, 16)
    assert x[0, 0, :, 0, 0].tolist() == pytest.approx([(1 - m) / s for m, s in ((0.485, 0.229), (0.456, 0.224),
                                                                                 (0.406, 0.225))])


def test_the_lm_learns_transcripts_with_its_cross_attention_frozen() -> None:
    task, modules = _task("vsr_lm")
    model = modules["model"]
    assert not any(p.requires_grad for layer in model.layers for p in layer.cross_attn.parameters())
    ctx = StepContext(modules, task.configure_optimizers(modules, 3e-3), device="cpu")
    raw = {"tokens": [np.array(VOCAB.encode(t)) for t in ("mama has a bat", "the cat sat")]}
    before = task.evaluate(modules, [raw], "cpu", prefix="val_")
    frozen = _params(model, "layers.0.cross_attn")
    for _ in range(30):
        model.train()
        task.train_step(ctx, task.to_device(raw, "cpu"))
    after = task.evaluate(modules, [raw], "cpu", prefix="val_")
    assert after["val_loss"] < before["val_loss"] - 1.0
    assert after["val_perplexity"] == pytest.approx(math.exp(after["val_loss"]))
    assert all(torch.equal(v, _params(model, "layers.0.cross_attn")[k]) for k, v in frozen.items())


@pytest.mark.parametrize("loss", ["ce", "ctc"])
def test_visual_pretraining_trains_everything_but_the_frozen_softmax(loss: str) -> None:
    task, modules = _task("vsr_visual", stage2_loss=loss)
    model = modules["model"]
    ctx = StepContext(modules, task.configure_optimizers(modules, 1e-3), device="cpu")
    gru = _params(model, "generator")
    assert not any(p.requires_grad for p in model.softmax.parameters())
    weight = model.softmax.weight.detach().clone()
    out = task.train_step(ctx, task.to_device(_batch(["ab", "cde"], [6, 8]), "cpu"))
    assert math.isfinite(out.losses["loss"])
    assert out.weight == (5.0 if loss == "ctc" else 14.0)  # characters (ctc) or frames with a target (ce)
    assert torch.equal(model.softmax.weight, weight)
    assert any(not torch.equal(v, _params(model, "generator")[k]) for k, v in gru.items())
    metrics = task.evaluate(modules, [_batch(["ab", "cde"], [6, 8])], "cpu", prefix="val_")
    assert set(metrics) == {"val_loss", "val_cer", "val_wer"}


def test_stage_2_reads_frame_outputs_greedily_up_to_eos_or_by_ctc_best_path() -> None:
    logits = torch.full((1, 6, VOCAB.size), -5.0)
    for t, token in enumerate([VOCAB.encode("a")[0], VOCAB.encode("b")[0], VOCAB.encode("b")[0], EOS_ID,
                               VOCAB.encode("c")[0], 3]):
        logits[0, t, token] = 5.0
    ce, _ = _task("vsr_visual")
    ctc, _ = _task("vsr_visual", stage2_loss="ctc")
    assert ce.read(logits, torch.tensor([6])) == ["abb"]
    assert ctc.read(logits, torch.tensor([6])) == ["abc"]  # repeats merged, EOS and BLANK dropped


def test_integration_freezes_an_unused_ctc_head_and_logs_the_ctc_auxiliary_when_weighted() -> None:
    task, modules = _task("vsr", kwargs={"ctc_head": True})
    assert not any(p.requires_grad for p in modules["model"].generator.parameters())
    weighted, wmods = _task("vsr", kwargs={"ctc_head": True}, ctc_weight=0.3)
    assert all(p.requires_grad for p in wmods["model"].generator.parameters())
    ctx = StepContext(wmods, weighted.configure_optimizers(wmods, 1e-3), device="cpu")
    out = weighted.train_step(ctx, weighted.to_device(_batch(["ab", "cde"], [6, 8]), "cpu"))
    assert set(out.losses) == {"loss", "nll", "ctc"} and out.weight == 7.0  # 5 characters + 2 EOS
    assert out.losses["loss"] == pytest.approx(0.7 * out.losses["nll"] + 0.3 * out.losses["ctc"], rel=1e-5)


def test_the_time_mask_zeroes_spans_of_training_clips_only_within_their_frames() -> None:
    task, _ = _task("vsr", time_mask_window=6, time_mask_stride=4)
    batch = task.to_device(_batch(["abc", "d"], [20, 12]), "cpu")
    torch.manual_seed(1)
    masked = task.augment(batch)
    zeroed = (masked == 0).flatten(2).all(dim=2)  # (B, T) frames set to zero
    assert zeroed.any() and not zeroed[1, 12:].any()  # the second clip's padding frames are never masked
    assert torch.equal(masked[~zeroed], batch["video"][~zeroed])
    off, _ = _task("vsr", time_mask_window=0)
    assert off.augment(batch) is batch["video"]


def test_integration_scores_decoded_transcripts() -> None:
    task, modules = _task("vsr")
    metrics = task.evaluate(modules, [_batch(["ab", "cde"], [4, 5])], "cpu", prefix="val_")
    assert set(metrics) == {"val_loss", "val_cer", "val_wer"} and metrics["val_cer"] >= 0
