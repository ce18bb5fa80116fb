"""``data.task: emotion`` end to end on real parts: synthetic RAVDESS video (rendered faces + speech),
Ray Data preprocessing (dlib landmarks, face crops, eGeMAPS functionals), training in-process and
on Ray Train with two workers, late fusion, the report's tables recomputed from the stored
predictions, and bad input (a video without a face, a split naming an actor without videos).

The claim "the platform learns the planted emotion" is checked against its negative control:
the speech classifier on the ``shuffled`` corpus (each file's face and voice from another file's
emotion). The face CNN needs more actors than a CI-sized corpus has to generalise to unseen
faces (4 training actors here); its held-out accuracy and shuffled control are measured on 24
actors by ``benchmarks/emotion_faces.py`` (RESULTS.md).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

from affectlab import storage
from affectlab.data.synth import generate
from affectlab.data.synth.video import write_mp4
from affectlab.errors import DatasetError
from affectlab.features import io
from affectlab.preprocess import preprocess
from affectlab.reporting import write_report
from affectlab.reporting.emotion import confusion, video_level
from affectlab.training.config import load_experiment
from affectlab.training.cv import run_cv
from affectlab.training.emotion_run import fuse, read_predictions
from affectlab.training.run import train

pytestmark = pytest.mark.slow
SPACE = str(Path(__file__).resolve().parents[2] / "search_spaces" / "emotion.yaml")
ACTORS, ITEMS = 6, 8  # 8 items: every emotion once, neutral included
SPLIT = "{train: [actor_01, actor_02, actor_03, actor_04], val: [actor_05], test: [actor_06]}"
NO_FACE = "01-01-03-02-02-02-06.mp4"  # a happy, strong file of the test actor whose video shows no face


def _prepare(root: Path, relation: str) -> str:
    video = relation == "planted"  # the shuffled corpus only trains the speech control: no video to render or detect
    card = generate("ravdess", str(root / "corpus"), subjects=ACTORS, items=ITEMS, seed=4, relation=relation,
                    video=video, **({"size": 80} if video else {}))
    if relation == "planted":
        noise = np.random.default_rng(0).integers(0, 255, size=(40, 80, 80, 3), dtype=np.uint8)
        audio = np.sin(np.linspace(0, 400 * np.pi, 16000 * 2)).astype(np.float32) * 0.1
        write_mp4(str(root / "corpus" / "Actor_06" / NO_FACE), noise, fps=25, audio=audio)
    out = str(root / "prep")
    preprocess(card, out, audio="egemaps,functionals", video="landmarks,face" if video else "", face_sizes=[32],
               progress=False)
    return out


@pytest.fixture(scope="module")
def prepared(ray_local: None, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    return {rel: _prepare(tmp_path_factory.mktemp(f"emotion-{rel}"), rel) for rel in ("planted", "shuffled")}


# global z-scoring: per-speaker statistics from 8 recordings per actor are too noisy here (measured
# with per_speaker: the fixed split fell below 0.35 and the LOSO pool from 0.233 to 0.163); on the
# 24-actor benchmark corpus (14 recordings each) per_speaker is better (RESULTS.md)
SPEECH = ("data.emotion.modality=speech", "data.feature_set=egemaps_functionals", "model.name=speech_emotion_mlp",
          "model.kwargs={hidden: [32], dropout: 0.2}", "training.max_epochs=40", "training.patience=40",
          "training.batch_size=8", "data.normalisation=global")


def _config(features: str, *extra: str):  # noqa: ANN202
    return load_experiment(SPACE, [
        f"data.features={features}", f"data.emotion.split={SPLIT}", "data.emotion.crop_size=32",
        "data.emotion.input_size=32", "data.emotion.skip_first_frames=5", "data.emotion.cutout=0.2",
        "model.kwargs={conv_dropout: 0.1, dense_dropout: 0.3, bn_momentum: 0.1}", "training.max_epochs=8",
        "training.patience=8",
        "training.batch_size=32", "scaling.runner=in_process", "scaling.torch_threads=2", *extra]).base


@pytest.fixture(scope="module")
def runs(prepared: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("emotion-runs")
    out = {name: str(root / name) for name in ("face", "speech", "fusion", "speech_shuffled")}
    train(_config(prepared["planted"]), out=out["face"])
    for relation, name in (("planted", "speech"), ("shuffled", "speech_shuffled")):
        # the card's split by name: `synth ravdess` names seed 001's proportions "seed001" (here = SPLIT)
        train(_config(prepared[relation], *SPEECH, "data.emotion.split=seed001"), out=out[name])
    fuse(out["face"], out["speech"], out["fusion"])
    return out


def _result(run: str) -> dict:
    return json.loads(storage.read_text(storage.join(run, "result.json")))


def test_the_video_without_a_face_is_quarantined_and_every_other_clip_is_trained_and_scored(
        prepared: dict[str, str], runs: dict[str, str]) -> None:
    errors = io.load_errors(prepared["planted"]).to_pylist()
    assert [(e["stage"], e["sample_id"]) for e in errors] == [("landmarks", NO_FACE[:-4])]
    assert "no face detected in any frame" in errors[0]["message"]
    result = _result(runs["face"])
    assert result["videos"] == {"train": 28, "val": 7, "test": 7}  # 7 non-neutral files each; the faceless extra one is out
    test = read_predictions(runs["face"], "test")
    assert sorted(test["subject"].unique()) == ["actor_06"] and NO_FACE[:-4] not in set(test["sample_id"])
    k = result["frames_per_video"]["test"]
    assert len(test) == 7 * k and test.groupby("sample_id").size().eq(k).all()  # balanced frames


def test_the_planted_emotion_is_learnt_and_the_shuffled_control_stays_at_chance(runs: dict[str, str]) -> None:
    planted, control = _result(runs["speech"]), _result(runs["speech_shuffled"])
    # 8 held-out recordings (the faceless file has a voice), chance 1/7; measured 0.375 vs 0.143
    # (deterministic: the in-process parts are ordered by sample id, whatever the commit layout)
    assert planted["test"]["test_accuracy"] >= 0.35, planted["test"]
    assert control["test"]["test_accuracy"] <= 0.25, control["test"]
    assert planted["test"]["test_accuracy"] - control["test"]["test_accuracy"] >= 0.2


def test_stored_predictions_reproduce_the_reported_metrics_and_tables(runs: dict[str, str]) -> None:
    result = _result(runs["face"])
    frames = read_predictions(runs["face"], "test")
    probs = np.stack(frames["probs"].to_numpy())
    assert np.allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    assert (probs.argmax(axis=1) == frames["label"]).mean() == pytest.approx(result["test"]["test_accuracy"])
    videos = video_level(frames)
    assert (videos["pred"] == videos["label"]).mean() == pytest.approx(result["test"]["test_video_accuracy"])
    assert confusion(frames["label"], probs.argmax(axis=1), 7).sum() == len(frames)
    assert confusion(videos["label"], videos["pred"], 7).sum() == 7
    fused = read_predictions(runs["fusion"], "test")
    by = {m: g.set_index("sample_id")["probs"] for m, g in fused.groupby("modality")}
    for sid, p in by["fusion"].items():
        assert np.allclose(p, (by["face"][sid] + by["speech"][sid]) / 2, atol=1e-6)
    accuracy = _result(runs["fusion"])["test"]
    assert set(accuracy) == {f"test_{m}_video_accuracy" for m in ("face", "speech", "fusion")}
    assert accuracy["test_face_video_accuracy"] == pytest.approx(result["test"]["test_video_accuracy"])


def test_the_report_holds_the_seeds_tables_with_the_split_named(runs: dict[str, str], tmp_path: Path) -> None:
    report = write_report(str(Path(runs["face"]).parent))
    text = Path(report).with_suffix(".md").read_text() if report.endswith(".html") else Path(report).read_text()
    for needle in ("confusion matrix (rows true, columns predicted", "recall", "precision", "macro avg",
                   "weighted avg", "actor_06", "fusion", "speech"):
        assert needle in text, needle


def test_a_split_named_in_the_card_is_used_and_named_in_the_report(runs: dict[str, str]) -> None:
    result = _result(runs["speech"])
    assert result["split_name"] == "seed001"
    assert {k: result["split"][k] for k in ("train", "val", "test")} == {
        "train": ["actor_01", "actor_02", "actor_03", "actor_04"], "val": ["actor_05"], "test": ["actor_06"]}
    text = Path(write_report(runs["speech"])).with_suffix(".md").read_text()
    assert "Test split of 'seed001' (actors actor_06)" in text


def _kept_recordings(features: str) -> int:
    """Recordings of the speech set whose emotion is not neutral (what a LOSO must score once each)."""
    index = io.set_index(features, "egemaps_functionals", columns=("sample_id",)).column("sample_id").to_pylist()
    labels = io.load_clip_labels(features).to_pandas().set_index("sample_id")["emotion"]
    return sum(labels[sid] != "neutral" for sid in index)


def test_leave_one_actor_out_scores_every_recording_once_by_a_model_that_never_saw_its_actor(
        prepared: dict[str, str], tmp_path: Path) -> None:
    """The protocol, not learnability (tested on the fixed split above; 4 training actors per fold
    are too few for a pooled-accuracy claim: measured 0.233 vs 0.095 shuffled on 43 recordings)."""
    actors = [f"actor_0{i}" for i in range(1, ACTORS + 1)]
    out = str(tmp_path / "loso")
    result = run_cv(_config(prepared["planted"], *SPEECH, "training.max_epochs=20", "training.patience=20"), out=out)
    assert [r["test_subject"] for r in result.rows] == actors
    scored = []
    for i, row in enumerate(result.rows):
        run = os.path.join(out, "cv", "runs", row["run"])
        split = _result(run)["split"]
        assert split["test"] == [actors[i]] and split["val"] == [actors[(i + 1) % ACTORS]]
        assert actors[i] not in split["train"] + split["val"]
        test = read_predictions(run, "test")
        assert set(test["subject"]) == {actors[i]}
        scored += test["sample_id"].tolist()
    assert len(scored) == len(set(scored)) == _kept_recordings(prepared["planted"])  # each once, none missing
    pooled = json.loads(Path(out, "cv", "pooled.json").read_text())
    assert pooled["videos"] == len(scored) == sum(r["videos"] for r in result.rows)
    assert pooled["video_accuracy"] == pytest.approx(np.mean([r["video_accuracy"] * r["videos"] for r in result.rows])
                                                     * ACTORS / len(scored))
    text = Path(write_report(out)).with_suffix(".md").read_text()
    assert "Leave-one-actor-out, 6 folds" in text and "Pooled leave-one-actor-out (6 folds) test split" in text


def test_a_split_naming_an_actor_without_videos_is_a_clear_error(prepared: dict[str, str], tmp_path: Path) -> None:
    config = _config(prepared["planted"], "data.emotion.split={train: [actor_01, actor_09], val: [actor_05], test: []}")
    with pytest.raises(DatasetError, match=r"actor_09 \(train\)"):
        train(config, out=str(tmp_path / "never"))
    assert not os.path.exists(tmp_path / "never")


@pytest.mark.timeout(600)
def test_two_ray_train_workers_stream_the_crops_with_equal_parameters_on_both_ranks(
        prepared: dict[str, str], tmp_path: Path) -> None:
    """DDP on two CPU workers (gloo), frames streamed from the Parquet crops: with
    training.verify_replicas every step checks that both ranks hold the same parameters."""
    config = _config(prepared["planted"], "scaling.runner=ray_train", "scaling.num_workers=2",
                     "scaling.cpus_per_worker=0.5", "scaling.torch_threads=1", "training.max_epochs=2",
                     "training.verify_replicas=true")
    result = train(config, out=str(tmp_path / "w2"))
    assert [r["epoch"] for r in result.history] == [1, 2] and result.runner == "ray_train"
    assert storage.exists(str(tmp_path / "w2" / "predictions" / "test.parquet"))
