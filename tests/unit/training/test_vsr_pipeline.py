"""The lip reading pipeline file (``search_spaces/vsr.yaml``): stage overrides go where they are
addressed, each stage is chained to the previous one, and every bad file, stage or override is
named before anything trains."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from affectlab.errors import ConfigError
from affectlab.training.config import parse_experiment
from affectlab.training.vsr_pipeline import STAGES, load_pipeline, stage_sweep

SPACES = Path(__file__).resolve().parents[3] / "search_spaces"


def _stage_config(pipeline: object, stage: str, init: str | None = "runs/prev") -> object:
    return parse_experiment(pipeline.stage_docs[stage], source=stage,  # type: ignore[attr-defined]
                            overrides=pipeline.stage_overrides(stage, init)).base  # type: ignore[attr-defined]


def _copy(tmp_path: Path, edit: dict | None = None, **stages: str) -> Path:
    """``vsr.yaml`` and its stage files copied to ``tmp_path``, with ``edit`` merged into ``pipeline``."""
    for name in ("vsr_lm.yaml", "vsr_visual.yaml", "vsr_integrate.yaml"):
        shutil.copy(SPACES / name, tmp_path / name)
    doc = yaml.safe_load((SPACES / "vsr.yaml").read_text())
    doc["pipeline"]["stages"].update(stages)
    doc["pipeline"].update(edit or {})
    path = tmp_path / "vsr.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def test_the_shipped_pipeline_chains_its_three_stage_files() -> None:
    pipeline = load_pipeline(str(SPACES / "vsr.yaml"), ["lm:training.lr=0.002", "training.batch_size=4",
                                                        "data.features=/data/prep"])
    assert list(pipeline.stage_sources) == list(STAGES)
    lm, visual, lipreader = (_stage_config(pipeline, s, None if s == "lm" else f"runs/{s}-prev") for s in STAGES)
    assert [c.data.task for c in (lm, visual, lipreader)] == ["vsr_lm", "vsr_visual", "vsr"]
    assert lm.training.lr == 0.002 and visual.training.lr == lipreader.training.lr == 1e-3  # one stage only
    assert {c.training.batch_size for c in (lm, visual, lipreader)} == {4}  # every stage
    assert {c.data.features for c in (lm, visual, lipreader)} == {"/data/prep"}
    assert visual.data.vsr.init == "runs/visual-prev" and lipreader.data.vsr.init == "runs/lipreader-prev"
    sweep = stage_sweep(pipeline, "runs/visual")
    assert sweep.base.data.vsr.init == "runs/visual" and sweep.tune.metric == "val_cer"
    assert set(sweep.space) == {"training.lr", "data.vsr.decoding.val_method", "data.vsr.decoding.lm_weight",
                                "data.vsr.decoding.beam_width", "data.vsr.time_mask_window"}


@pytest.mark.parametrize(("edit", "stages", "message"), [
    ({"evaluate": "holdout"}, {}, r"pipeline.evaluate='holdout': must be one of test, val, train"),
    ({"epochs": 3}, {}, r"pipeline.epochs: unknown key; allowed: features, stages, overrides, evaluate, curriculum"),
    ({"curriculum": [3, 1]}, {}, r"pipeline.curriculum=\[3, 1\]: a rising list of word counts >= 1"),
    ({"curriculum": [0]}, {}, r"pipeline.curriculum=\[0\]: a rising list"),
    ({"curriculum": "1,3"}, {}, r"pipeline.curriculum='1,3': a rising list"),
    ({"curriculum": {"lipreader": [2, 2]}}, {}, r"pipeline.curriculum.lipreader=\[2, 2\]: a rising list"),
    ({"curriculum": {"lm": [1]}}, {}, r"pipeline.curriculum.lm: no such stage with a word curriculum; use visual, "
                                      r"lipreader"),
    ({"overrides": {"decoder": ["training.lr=1"]}}, {}, r"pipeline.overrides: a mapping from stage"),
    ({"overrides": {"lm": ["training.lr"]}}, {}, r"pipeline.overrides.lm: must be a list of key=value strings"),
    ({}, {"visual": "missing.yaml"}, r"pipeline.stages.visual: .*missing.yaml does not exist"),
    ({}, {"lm": "vsr_visual.yaml", "visual": "vsr_lm.yaml"}, r"vsr_visual.yaml: data.task is 'vsr_visual'; the lm stage "
                                                             r"needs 'vsr_lm'"),
])
def test_a_bad_pipeline_file_is_named_before_anything_trains(tmp_path: Path, edit: dict, stages: dict,
                                                               message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_pipeline(str(_copy(tmp_path, edit, **stages)))


def test_the_word_curriculum_puts_steps_before_the_whole_clip_stages_2_and_3(tmp_path: Path) -> None:
    pipeline = load_pipeline(str(_copy(tmp_path, {"curriculum": [1, 3]})), ["visual:data.vsr.max_words=5"])
    assert [(name, stage) for name, stage, _ in pipeline.steps()] == [
        ("lm", "lm"), ("visual-w1", "visual"), ("visual-w3", "visual"), ("visual", "visual"),
        ("lipreader-w1", "lipreader"), ("lipreader-w3", "lipreader"), ("lipreader", "lipreader")]
    words = {name: parse_experiment(pipeline.stage_docs[stage], source=stage,
                                    overrides=[*pipeline.stage_overrides(stage, "runs/prev"), *extra]).base
             for name, stage, extra in pipeline.steps() if stage == "visual"}
    assert [words[n].data.vsr.max_words for n in ("visual-w1", "visual-w3", "visual")] == [1, 3, 5]  # the step wins
    assert [n for n, _, _ in load_pipeline(str(_copy(tmp_path, {"curriculum": []}))).steps()] == list(STAGES)
    per_stage = load_pipeline(str(_copy(tmp_path, {"curriculum": {"lipreader": [1, 3]}})))
    assert [n for n, _, _ in per_stage.steps()] == ["lm", "visual", "lipreader-w1", "lipreader-w3", "lipreader"]


def test_a_bad_override_names_the_stage_or_the_stage_file(tmp_path: Path) -> None:
    path = str(_copy(tmp_path))
    with pytest.raises(ConfigError, match=r"'decoder' is not a stage; use one of lm, visual, lipreader"):
        load_pipeline(path, ["decoder:training.lr=0.1"])
    with pytest.raises(ConfigError, match=r"(?s)vsr_integrate.yaml: .*base.training.lr: Input should be greater than 0"):
        load_pipeline(path, ["lipreader:training.lr=-1"])


def test_a_stage_3_sweep_needs_a_space_and_a_tune_section(tmp_path: Path) -> None:
    path = _copy(tmp_path)
    doc = yaml.safe_load(path.read_text())
    del doc["tune"]
    path.write_text(yaml.safe_dump(doc))
    with pytest.raises(ConfigError, match=r"a stage-3 sweep needs both `space` and `tune` sections"):
        load_pipeline(str(path))
    del doc["space"]
    path.write_text(yaml.safe_dump(doc))
    with pytest.raises(ConfigError, match=r"--sweep needs `space` and `tune` sections"):
        stage_sweep(load_pipeline(str(path)), "runs/visual")
