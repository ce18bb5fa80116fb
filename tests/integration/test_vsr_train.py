"""Seed 001's piece-wise lip reading end to end on real parts: a tiny ``synth visemes`` corpus,
Ray Data preprocessing (dlib landmarks, 96 px mouth ROIs), ``affectlab pipeline search_spaces/vsr.yaml``
running the three stages' experiment files in-process, each naming the previous stage's run, the
decoding of the test speakers (greedy, beam, beam + LM) and the report, run again to go on where it
stopped; ``affectlab evaluate``; a tiny lip reader overfitting 8 clips (the acceptance line
"CER < 0.05"), and each stage on Ray Train with two DDP workers streaming the clips, matching one
worker within a stated tolerance."""

from __future__ import annotations

import json
from pathlib import Path

import jiwer
import pandas as pd
import pytest
import torch

from click.testing import CliRunner

from affectlab.cli import cli
from affectlab.data.synth import generate
from affectlab.errors import ConfigError, DatasetError
from affectlab.preprocess import preprocess
from affectlab.training.config import ExperimentConfig
from affectlab.training.run import train
from affectlab.training.runners import build_modules, run_in_process_batches, shard_batches
from affectlab.training.tasks import DataInfo
from affectlab.training.vsr_data import load_vsr_data
from affectlab.training.vsr_evaluate import load_vsr_evaluation
from affectlab.training.vsr_run import vsr_task

pytestmark = pytest.mark.slow

# 4 speakers x 4 clips; the card's split `speakers`: s01, s02 train, s03 validates, s04 tests.
# Clip j says line j mod 8, so the 8 training clips hold 8 different sentences.
SENTENCES = ["HA BAM PAH", "MAMA HAS A BAT", "THE CAT SAT", "A BIG DOG", "I SEE YOU", "NO MORE FISH",
             "WE LIKE TEA", "ONE RED VAN"]
TINY = {"size": "tiny"}
SPACES = Path(__file__).resolve().parents[2] / "search_spaces"


@pytest.fixture(scope="module")
def corpus(ray_local: None, tmp_path_factory: pytest.TempPathFactory) -> str:
    root = tmp_path_factory.mktemp("vsr")
    sentences = root / "sentences.txt"
    sentences.write_text("\n".join(SENTENCES) + "\n")
    card = generate("visemes", str(root / "corpus"), subjects=4, items=4, seed=7, size=128, sentences=str(sentences))
    out = str(root / "prep")
    preprocess(card, out, audio="", video="landmarks,mouth", progress=False)
    return out


def _config(features: str, task: str, model: str, vsr: dict, **training: object) -> ExperimentConfig:
    return ExperimentConfig.model_validate({
        "name": task, "data": {"features": features, "feature_set": "mouth_roi", "task": task, "vsr": vsr},
        "model": {"name": model, "kwargs": TINY},
        "training": {"lr": 1e-3, "batch_size": 8, "prev_rounds": 0, "last_top_results": 1000, "patience": 100,
                     **training},
        "scaling": {"runner": "in_process", "torch_threads": 1}})


PIPELINE_SETS = ["scaling.runner=in_process", "scaling.torch_threads=1", "training.batch_size=8",
                 "lm:training.max_epochs=20", "lm:training.patience=20", "visual:data.vsr.stage2_loss=ctc",
                 "visual:training.max_epochs=2", "lipreader:data.vsr.decoding.beam_width=4",
                 "lipreader:training.max_epochs=3"]


def _pipeline(root: Path, corpus: str) -> object:
    """``affectlab pipeline search_spaces/vsr.yaml``: the three stage files chained by URI
    (``data.vsr.init``), the test decoding and the report."""
    args = ["pipeline", str(SPACES / "vsr.yaml"), "--out", str(root), "--features", corpus]
    for item in PIPELINE_SETS:
        args += ["--set", item]
    return CliRunner().invoke(cli, args)


@pytest.fixture(scope="module")
def pipeline_out(corpus: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("vsr-runs")
    done = _pipeline(root, corpus)
    assert done.exit_code == 0, done.output
    assert "beam_lm " in done.output and f"report: {root}/report/index.html" in done.output
    assert "stage 1/6 lm: epoch 1: train_loss=" in done.output  # progress per epoch
    assert "stage 2/6 visual-w1: epoch 2: train_loss=" in done.output  # the shipped word curriculum
    assert "stage 5/6 lipreader-w3: epoch 3: train_ctc=" in done.output  # the CTC auxiliary of vsr.yaml
    assert "stage 6/6 lipreader: epoch 3: train_ctc=" in done.output
    return root


@pytest.fixture(scope="module")
def stages(pipeline_out: Path) -> dict[str, str]:
    return {name: str(pipeline_out / name)
            for name in ("lm", "visual-w1", "visual", "lipreader-w1", "lipreader-w3", "lipreader")}


def _result(run: str) -> dict:
    return json.loads(Path(run, "result.json").read_text())


def test_each_stage_names_the_previous_run_and_the_lm_reads_training_transcripts_only(stages: dict[str, str]) -> None:
    lm, visual, lipreader = (_result(stages[k]) for k in ("lm", "visual", "lipreader"))
    assert lm["clips"] == {"train": 8, "val": 4, "test": 4} and lm["split_name"] == "speakers"
    assert lm["subjects"] == {"train": ["s01", "s02"], "val": ["s03"], "test": ["s04"]}
    words = _result(stages["visual-w1"])
    assert lm["pieces"] == {} and words["pieces"] == {"lm": stages["lm"]}
    assert visual["pieces"] == {"visual": stages["visual-w1"], "lm": stages["lm"]}  # goes on from the word step
    # the word step trains and validates on single words (one per word of each clip), the test part stays whole
    n_words = [len(line.split()) for line in SENTENCES]  # training clips say lines 0-7, val clips lines 0-3
    assert words["clips"] == {"train": sum(n_words), "val": sum(n_words[:4]), "test": 4}
    assert visual["clips"] == lm["clips"]
    assert _result(stages["lipreader-w1"])["pieces"] == {"visual": stages["visual"], "lm": stages["lm"]}  # LM via stage 2
    assert _result(stages["lipreader-w3"])["pieces"] == {"lipreader": stages["lipreader-w1"], "lm": stages["lm"]}
    assert lipreader["pieces"] == {"lipreader": stages["lipreader-w3"], "lm": stages["lm"]}
    history = pd.read_parquet(Path(stages["lm"], "history.parquet"))
    assert history["train_loss"].iloc[-1] < history["train_loss"].iloc[0] - 0.5
    for result in (visual, lipreader):
        assert {"val_loss", "val_cer", "val_wer"} <= set(result["val"])
        assert {"test_loss", "test_cer", "test_wer"} <= set(result["test"])


def test_stage_2_keeps_the_lms_softmax_frozen_and_stage_3_starts_from_both_pieces(
        corpus: str, stages: dict[str, str]) -> None:
    lm_state = torch.load(Path(stages["lm"], "best_model.pt"), weights_only=True)
    visual_state = torch.load(Path(stages["visual"], "best_model.pt"), weights_only=True)
    assert torch.equal(visual_state["softmax.weight"], lm_state["out.weight"])  # frozen through training
    config = _config(corpus, "vsr", "vsr_lip_reader", {"init": stages["visual"]}, monitor="val_cer")
    task = vsr_task(config, DataInfo(extra={"pieces": _result(stages["lipreader-w1"])["pieces"]}))
    model = build_modules(config, task, {})["model"]
    state = model.state_dict()
    for key, value in visual_state.items():
        if key.startswith("visual."):
            assert torch.equal(state[key], value), key
    layer = "decoder.layers.0."
    assert torch.equal(state[layer + "self_attn.in_proj_weight"], lm_state["layers.0.self_attn.in_proj_weight"])
    assert not torch.equal(state[layer + "cross_attn.in_proj_weight"], lm_state["layers.0.cross_attn.in_proj_weight"])


def test_the_report_has_the_seeds_wer_table_transcripts_and_stage_losses(
        pipeline_out: Path, stages: dict[str, str]) -> None:
    rows, _ = load_vsr_evaluation(stages["lipreader"])
    page = (pipeline_out / "report" / "index.md").read_text()
    assert "| S.NO | MODEL | WER SCORE | CER |" in page and "| 7 | Proposed Model | 45.9% |" in page
    for number, method in enumerate(("greedy", "beam", "beam_lm"), start=1):
        wer = rows[rows["method"] == method]["wer"].mean()
        assert f"| {number} | " in page and f"{100 * wer:.1f}%" in page
    beam_lm = rows[rows["method"] == "beam_lm"].sort_values("sample_id")
    first = beam_lm.iloc[0]
    assert f"| 0 | {first['sample_id']} | {first['n_frames']} | {first['reference']} |" in page
    assert "Epoch | Time | Loss" in page and "stage 1, character LM: epoch losses" in page
    assert (pipeline_out / "report" / "vsr1_stage_losses.png").stat().st_size > 1000


def test_the_pipeline_run_again_keeps_the_finished_stages(corpus: str, pipeline_out: Path) -> None:
    before = {stage: (pipeline_out / stage / "best_model.pt").stat().st_mtime_ns for stage in ("lm", "visual", "lipreader")}
    again = _pipeline(pipeline_out, corpus)
    assert again.exit_code == 0, again.output
    assert again.output.count("kept the finished run") == 6 and '"ran_now": []' in again.output
    assert before == {stage: (pipeline_out / stage / "best_model.pt").stat().st_mtime_ns for stage in before}
    summary = json.loads((pipeline_out / "pipeline.json").read_text())
    assert summary["evaluated"] == str(pipeline_out / "lipreader") and set(summary["summary"]) == {"greedy", "beam", "beam_lm"}
    done = CliRunner().invoke(cli, ["evaluate", str(pipeline_out / "lipreader")])  # the same decoding, by hand
    assert done.exit_code == 0, done.output
    assert '"beam_lm"' in done.output and "evaluation/test.parquet" in done.output


def test_evaluate_decodes_jointly_with_the_ctc_head_on_request(pipeline_out: Path, tmp_path: Path) -> None:
    import shutil

    run = tmp_path / "lipreader"  # a copy: the other tests read the pipeline's own evaluation
    shutil.copytree(pipeline_out / "lipreader", run)
    other_lm = tmp_path / "lm"  # another LM run (here a copy of the pipeline's)
    shutil.copytree(pipeline_out / "lm", other_lm)
    done = CliRunner().invoke(cli, ["evaluate", str(run), "--decode", "ctc_weight=0.5", "--decode", "beam_width=2",
                                    "--lm", str(other_lm)])
    assert done.exit_code == 0, done.output
    rows, summary = load_vsr_evaluation(str(run))
    assert summary["decoding"]["ctc_weight"] == 0.5 and summary["decoding"]["beam_width"] == 2
    assert summary["lm"] == str(other_lm)
    from affectlab.reporting.vsr import comparison_table

    assert comparison_table([str(run)])["MODEL"].tolist() == [
        "visual-only, greedy, joint CTC 0.5, `tiny`", "beam 2, joint CTC 0.5, `tiny`",
        "beam 2 + LM (weight 0.2), joint CTC 0.5, `tiny`"]  # vsr.yaml: lm_weight 0.2
    assert rows.groupby("method").size().to_dict() == {"beam": 4, "beam_lm": 4, "greedy": 4}
    bad = CliRunner().invoke(cli, ["evaluate", str(run), "--decode", "ctc_wieght=0.5"])
    assert isinstance(bad.exception, ConfigError)  # `affectlab` prints it as "error: ..." and exits 1
    assert "decoding settings: ctc_wieght: Extra inputs are not permitted" in str(bad.exception)
    not_an_lm = CliRunner().invoke(cli, ["evaluate", str(run), "--lm", str(pipeline_out / "visual")])
    assert isinstance(not_an_lm.exception, ConfigError)
    assert "that run trained data.task 'vsr_visual'" in str(not_an_lm.exception)


def test_the_test_speakers_are_decoded_greedy_beam_and_beam_with_lm(stages: dict[str, str]) -> None:
    rows, summary = load_vsr_evaluation(stages["lipreader"])
    assert len(rows) == 4 * 3 and set(rows["subject"]) == {"s04"}
    assert rows.groupby("method").size().to_dict() == {"beam": 4, "beam_lm": 4, "greedy": 4}
    assert rows["lm_score"].notna().all() and (rows["lm_score"] < 0).all()
    for method, stats in summary["methods"].items():
        part = rows[rows["method"] == method]
        assert stats["avg_cer"] == pytest.approx(part["cer"].mean())
        assert stats["corpus_wer"] == pytest.approx(jiwer.wer(part["reference"].tolist(), part["hypothesis"].tolist()))
    assert summary["decoding"]["beam_width"] == 4 and summary["lm"] == stages["lm"]
    assert sorted(set(rows["reference"])) == sorted(s.lower() for s in SENTENCES[4:])


def test_a_stage_naming_a_run_of_the_wrong_stage_or_other_sizes_is_an_error(
        corpus: str, stages: dict[str, str], tmp_path: Path) -> None:
    config = _config(corpus, "vsr", "vsr_lip_reader", {"init": stages["lm"]}, max_epochs=1, monitor="val_cer")
    with pytest.raises(ConfigError, match=r"that run trained data.task 'vsr_lm'; stage 3 needs a 'vsr_visual' run "
                                          r"\(or a 'vsr' run to go on from"):
        train(config, out=str(tmp_path / "never"))
    config = _config(corpus, "vsr", "vsr_lip_reader", {"init": stages["visual"]}, max_epochs=1, monitor="val_cer")
    config = config.model_copy(update={"model": config.model.model_copy(update={"kwargs": {**TINY, "d_model": 32}})})
    with pytest.raises(ConfigError, match=r"visual pretraining run .* other model.kwargs sizes: d_model: 64 there, "
                                          r"32 here"):
        train(config, out=str(tmp_path / "never"))
    config = _config(corpus, "vsr_visual", "vsr_visual", {"init": stages["lipreader"]}, max_epochs=1,
                     monitor="val_loss")
    with pytest.raises(ConfigError, match=r"that run trained data.task 'vsr'; stage 2 needs a 'vsr_lm' run \(or a "
                                          r"'vsr_visual' run to go on from"):
        train(config, out=str(tmp_path / "never"))
    config = _config(corpus, "vsr_visual", "vsr_visual", {"init": stages["visual"]}, max_epochs=1,
                     monitor="val_loss")
    with pytest.raises(ConfigError, match=r"visual pretraining run .* other model.kwargs sizes: generator_residual: "
                                          r"True there, False here"):  # the shipped pipeline's residual head
        train(config, out=str(tmp_path / "never"))


def test_the_speaker_split_and_frame_limit_come_from_the_card_or_the_config(corpus: str) -> None:
    def data(**vsr: object) -> object:
        return load_vsr_data(_config(corpus, "vsr_lm", "vsr_lm", vsr, monitor="val_loss"), in_process=True)

    with pytest.raises(DatasetError, match=r"data.vsr.split 'nope': no such split .*; its splits: speakers"):
        data(split="nope")
    with pytest.raises(DatasetError, match=r"speaker\(s\) without any clip .*: s09 \(test\)"):
        data(split={"train": ["s01", "s02"], "val": ["s03"], "test": ["s09"]})
    drawn = data(split=None, val_fraction=0.25, test_fraction=0.25)
    assert [len(getattr(drawn.split, p)) for p in ("train", "val", "test")] == [2, 1, 1]
    limited = data(max_frames=45)
    assert limited.dropped and all("> data.vsr.max_frames 45" in d["reason"] for d in limited.dropped)
    assert all(c.n_frames <= 45 for part in limited.clips.values() for c in part)
    words = data(max_words=2)  # every run of 2 words of a train / val clip; the test clips stay whole
    whole = data()
    assert [c.sample_id for c in words.clips["test"]] == [c.sample_id for c in whole.clips["test"]]
    for part in ("train", "val"):
        runs = sum(len(c.text.split()) - 1 for c in whole.clips[part])
        assert len(words.clips[part]) == runs and all(len(c.text.split()) == 2 for c in words.clips[part])
        assert all(c.span is not None and c.n_frames == c.span[1] - c.span[0] for c in words.clips[part])
    assert len(limited.dropped) + sum(map(len, limited.clips.values())) == 16


def test_a_tiny_lip_reader_overfits_8_clips_to_cer_below_005(corpus: str) -> None:
    """The platform's loop on the 8 training clips, scored on the same clips (greedy decoding); measured:
    CER 0.011 after 100 steps, 0.0 from 150 (clipping keeps Adam at 3e-3 from bouncing back up)."""
    config = _config(corpus, "vsr", "vsr_lip_reader", {"init": "unused", "time_mask_window": 0}, lr=3e-3,
                     max_iterations=150, eval_every=25, monitor="val_cer", grad_clip=1.0)
    config = config.model_copy(update={"model": config.model.model_copy(update={"kwargs": {**TINY, "dropout": 0.0}})})
    data = load_vsr_data(config, in_process=True)
    clips = data.datasets["train"]
    assert len(clips) == 8
    output = run_in_process_batches(config, DataInfo(extra={"pieces": {}}),
                                    lambda epoch: shard_batches(clips, 8, seed=epoch), lambda: shard_batches(clips, 8))
    cer = [row["val_cer"] for row in output.history]
    assert min(cer) < 0.05, cer


# data.vsr of the comparison runs: no time mask, so both runs see the same frames
DDP_VSR = {"time_mask_window": 0, "decoding": {"extra_steps": 2}}
DDP_TOLERANCE = 0.05  # relative, per round's training loss (see the test's docstring)


def _ddp_config(corpus: str, stages: dict[str, str], **training: object) -> ExperimentConfig:
    config = _config(corpus, "vsr", "vsr_lip_reader", {**DDP_VSR, "init": stages["visual"]}, max_iterations=4,
                     eval_every=1, monitor="val_loss", **training)
    return config.model_copy(update={"model": config.model.model_copy(update={"kwargs": {**TINY, "dropout": 0.0}})})


def _round_losses(config: ExperimentConfig, out: Path, **scaling: object) -> list[float]:
    config = config.model_copy(update={"scaling": config.scaling.model_copy(update=scaling)})
    result = train(config, out=str(out))
    assert [row["iteration"] for row in result.history] == [1, 2, 3, 4]
    return [row["train_loss"] for row in result.history]


def _relative_gap(a: list[float], b: list[float]) -> float:
    return max(abs(x - y) / abs(y) for x, y in zip(a, b, strict=True))


@pytest.mark.timeout(900)
def test_the_lip_reader_on_two_ray_train_workers_matches_one_worker(
        corpus: str, stages: dict[str, str], tmp_path: Path) -> None:
    """Stage 3 (the lip reader: the visual module restored from stage 2, the LM's frozen generator
    from stage 1) on Ray Train with two DDP workers (gloo, half a CPU each; training.batch_size 8 is
    global: 4 clips per worker), streaming its clips, ``verify_replicas`` checking after every step
    that both ranks hold the same parameters, against one in-process worker with the same global
    batch (8 clips: all 8 training clips every step, dropout and the time mask off). Stated
    tolerance: each round's training loss within 5 % of the single worker's (measured largest gap
    0.15 %; the runs differ in per-worker batch norm statistics and in DDP averaging two per-worker
    means instead of one mean over all characters). Negative control: the single worker with a 3x
    learning rate is outside the tolerance (measured 48 %), so the check can tell runs apart.

    Stages 1 (the character LM) and 2 (the visual module, CTC) passed the same check (gaps 0.01 %
    and 0.39 %, negative controls 18 % and 23 %) and were dropped from it to keep the suite under
    its time budget: the generic loop's DDP tests cover single networks, and stage 3 holds the
    frozen and restored pieces of both."""
    config = _ddp_config(corpus, stages, verify_replicas=True)
    two = _round_losses(config, tmp_path / "w2", runner="ray_train", num_workers=2, cpus_per_worker=0.5)
    one = _round_losses(config, tmp_path / "w1", runner="in_process")
    assert _relative_gap(two, one) <= DDP_TOLERANCE, (two, one)
    assert _result(str(tmp_path / "w2"))["pieces"]["lm"] == stages["lm"]
    assert (tmp_path / "w2" / "best_model.pt").exists()
    faster = config.model_copy(update={"training": config.training.model_copy(update={"lr": 3e-3})})
    assert _relative_gap(_round_losses(faster, tmp_path / "w1-lr", runner="in_process"), one) > DDP_TOLERANCE
