"""``data.vsr`` and the lip reading stages' experiment files: every bad key is named with the valid
choices, each stage requires (or refuses) the previous stage's run, and the three files in
``search_spaces/`` validate and chain."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from affectlab.errors import ConfigError
from affectlab.training.config import load_experiment, parse_experiment

REPO = Path(__file__).resolve().parents[3]
STAGES = {"vsr_lm": "vsr_lm", "vsr_visual": "vsr_visual", "vsr": "vsr_lip_reader"}
MONITOR = {"vsr_lm": "val_loss", "vsr_visual": "val_cer", "vsr": "val_cer"}


def _experiment(task: str = "vsr", *, feature_set: str = "mouth_roi", kwargs: dict | None = None,
                **vsr: Any) -> dict:
    if task != "vsr_lm":
        vsr.setdefault("init", "runs/previous")
    return {"base": {"data": {"features": "prep", "feature_set": feature_set, "task": task, "vsr": vsr},
                     "model": {"name": STAGES[task], "kwargs": kwargs or {"size": "tiny"}},
                     "training": {"monitor": MONITOR[task]}}}


def _problems(doc: dict) -> str:
    with pytest.raises(ConfigError) as info:
        parse_experiment(doc)
    return str(info.value)


@pytest.mark.parametrize(("key", "value", "expected"), [
    ("stage2_loss", "mse", r"data\.vsr\.stage2_loss: Input should be 'ce' or 'ctc'"),
    ("frame_pad", "zero", r"data\.vsr\.frame_pad: Input should be 'eos' or 'ignore'"),
    ("decoding", {"val_method": "beamlm"}, r"data\.vsr\.decoding\.val_method: Input should be 'greedy', 'beam' or "
                                           r"'beam_lm'"),
    ("decoding", {"beam_width": 0}, r"data\.vsr\.decoding\.beam_width: Input should be greater than or equal to 1"),
    ("ctc_weight", 1.5, r"data\.vsr\.ctc_weight: Input should be less than or equal to 1"),
    ("crop_size", 128, r"data\.vsr\.crop_size: Input should be less than or equal to 96"),
    ("time_mask", 3, r"data\.vsr\.time_mask: unknown key \(did you mean .*time_mask_window"),
])
def test_a_bad_vsr_key_is_named_with_its_valid_values(key: str, value: Any, expected: str) -> None:
    assert re.search(expected, _problems(_experiment(**{key: value})))


def test_stage_2_and_3_need_the_previous_run_and_stage_1_refuses_one() -> None:
    doc = _experiment("vsr_visual")
    del doc["base"]["data"]["vsr"]["init"]
    assert "data.vsr.init is required for data.task 'vsr_visual': name the stage-1 LM run" in _problems(doc)
    doc = _experiment("vsr")
    del doc["base"]["data"]["vsr"]["init"]
    assert "name the stage-2 visual-pretraining run" in _problems(doc)
    assert "data.vsr.init: stage 1 (vsr_lm) starts from scratch" in _problems(_experiment("vsr_lm", init="runs/x"))
    assert "data.vsr.lm is only read by data.task 'vsr'" in _problems(_experiment("vsr_visual", lm="runs/lm"))


def test_cross_section_problems_name_both_keys() -> None:
    assert "data.vsr.ctc_weight=0.3 needs the CTC head: set model.kwargs.ctc_head: true" in _problems(
        _experiment(ctc_weight=0.3))
    parse_experiment(_experiment(ctc_weight=0.3, kwargs={"size": "tiny", "ctc_head": True}))
    assert "data.feature_set='face': data.task 'vsr' reads the mouth ROIs; set data.feature_set: mouth_roi" in \
        _problems(_experiment(feature_set="face"))
    assert "val_method 'beam_lm' with lm_weight 0 is plain beam" in _problems(
        _experiment(decoding={"val_method": "beam_lm", "lm_weight": 0}))
    assert "val_fraction 0.6 + test_fraction 0.5 must be below 1" in _problems(
        _experiment(split=None, val_fraction=0.6, test_fraction=0.5))
    doc = _experiment()
    doc["base"]["training"]["monitor"] = "val_perplexity"
    assert "choose one of ['val_loss', 'val_cer', 'val_wer']" in _problems(doc)
    doc = _experiment()
    doc["base"]["model"]["name"] = "vsr_lm"
    assert "data.task='vsr' does not fit model.name='vsr_lm'" in _problems(doc)


def test_a_split_is_a_card_name_subject_lists_or_a_seeded_draw() -> None:
    assert parse_experiment(_experiment()).base.data.vsr.split == "speakers"
    lists = parse_experiment(_experiment(split={"train": ["s01"], "val": ["s02"], "test": ["s03"]})).base
    assert lists.data.vsr.split.test == ("s03",)
    assert parse_experiment(_experiment(split=None)).base.data.vsr.split is None
    assert "'s01' is in both train and val" in _problems(_experiment(split={"train": ["s01"], "val": ["s01"]}))


def test_the_three_stage_files_validate_and_each_names_the_previous_stages_output() -> None:
    lm = load_experiment(str(REPO / "search_spaces" / "vsr_lm.yaml"))
    visual = load_experiment(str(REPO / "search_spaces" / "vsr_visual.yaml"))
    lipreader = load_experiment(str(REPO / "search_spaces" / "vsr_integrate.yaml"))
    assert [e.base.data.task for e in (lm, visual, lipreader)] == ["vsr_lm", "vsr_visual", "vsr"]
    assert lm.base.data.vsr.init is None
    assert visual.base.data.vsr.init == "runs/vsr/lm"
    assert lipreader.base.data.vsr.init == "runs/vsr/visual"
    assert {e.base.model.kwargs["size"] for e in (lm, visual, lipreader)} == {"tiny"}
    assert lipreader.base.training.monitor == "val_cer"
