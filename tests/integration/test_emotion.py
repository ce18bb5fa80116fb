"""``data.task: emotion`` end to end on real parts: synthetic RAVDESS video (rendered faces + speech),
Ray Data preprocessing (dlib landmarks, face crops, eGeMAPS functionals), training in-process and
on Ray Train with two workers, late fusion, the report's tables recomputed from the stored
predictions, and bad input (a video without a face, a split naming an actor without videos).

The claim "faces carry the planted emotion" is checked against its negative control: the same
recipe on the ``shuffled`` corpus (each file's face and voice from another file's emotion).
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
from affectlab.training.emotion_run import fuse, read_predictions
from affectlab.training.run import train

pytestmark = pytest.mark.slow
SPACE = str(Path(__file__).resolve().parents[2] / "search_spaces" / "emotion.yaml")
ACTORS, ITEMS = 6, 8  # 8 items: every emotion once, neutral included
SPLIT = "{train: [actor_01, actor_02, actor_03, actor_04], val: [actor_05], test: [actor_06]}"
NO_FACE = "01-01-03-02-02-02-06.mp4"  # a happy, strong file of the test actor whose video shows no face


def _prepare(root: Path, relation: str) -> str:
    card = generate("ravdess", str(root / "corpus"), subjects=ACTORS, items=ITEMS, seed=4, relation=relation,
                    video=True, size=80)
    if relation == "planted":
        noise = np.random.default_rng(0).integers(0, 255, size=(40, 80, 80, 3), dtype=np.uint8)
        audio = np.sin(np.linspace(0, 400 * np.pi, 16000 * 2)).astype(np.float32) * 0.1
        write_mp4(str(root / "corpus" / "Actor_06" / NO_FACE), noise, fps=25, audio=audio)
    out = str(root / "prep")
    preprocess(card, out, audio="egemaps,functionals", video="landmarks,face", face_sizes=[32], progress=False)
    return out


@pytest.fixture(scope="module")
def prepared(ray_local: None, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    return {rel: _prepare(tmp_path_factory.mktemp(f"emotion-{rel}"), rel) for rel in ("planted", "shuffled")}


def _config(features: str, *extra: str):  # noqa: ANN202
    return load_experiment(SPACE, [
        f"data.features={features}", f"data.emotion.split={SPLIT}", "data.emotion.crop_size=32",
        "data.emotion.input_size=32", "data.emotion.skip_first_frames=5", "data.emotion.cutout=0.2",
        "model.kwargs={conv_dropout: 0.2, dense_dropout: 0.3}", "training.max_epochs=14", "training.patience=14",
        "training.batch_size=32", "scaling.runner=in_process", "scaling.torch_threads=2", *extra]).base


@pytest.fixture(scope="module")
def runs(prepared: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("emotion-runs")
    out = {name: str(root / name) for name in ("face", "speech", "fusion", "face_shuffled")}
    train(_config(prepared["planted"]), out=out["face"])
    train(_config(prepared["shuffled"]), out=out["face_shuffled"])
    train(_config(prepared["planted"], "data.emotion.modality=speech", "data.feature_set=egemaps_functionals",
                  "model.name=speech_emotion_mlp", "model.kwargs={hidden: [32], dropout: 0.2}",
                  "training.max_epochs=40", "training.batch_size=8"), out=out["speech"])
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
    # 6 actors x 7 non-neutral files; the faceless one is not among the test videos
    assert result["videos"] == {"train": 28, "val": 7, "test": 6}
    test = read_predictions(runs["face"], "test")
    assert sorted(test["subject"].unique()) == ["actor_06"] and NO_FACE[:-4] not in set(test["sample_id"])
    k = result["frames_per_video"]["test"]
    assert len(test) == 6 * k and test.groupby("sample_id").size().eq(k).all()  # balanced frames


def test_faces_carry_the_planted_emotion_and_the_shuffled_control_does_not(runs: dict[str, str]) -> None:
    planted, control = _result(runs["face"]), _result(runs["face_shuffled"])
    # the planted corpus: val and test far above chance (1/7) on frames and videos
    assert planted["val"]["val_accuracy"] > 0.5, planted["val"]
    assert planted["test"]["test_video_accuracy"] >= 0.5, planted["test"]
    # the control, same recipe: the names no longer predict the faces
    assert control["test"]["test_accuracy"] < 0.35, control["test"]
    assert planted["test"]["test_accuracy"] > control["test"]["test_accuracy"] + 0.25


def test_stored_predictions_reproduce_the_reported_metrics_and_tables(runs: dict[str, str]) -> None:
    result = _result(runs["face"])
    frames = read_predictions(runs["face"], "test")
    probs = np.stack(frames["probs"].to_numpy())
    assert np.allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    assert (probs.argmax(axis=1) == frames["label"]).mean() == pytest.approx(result["test"]["test_accuracy"])
    videos = video_level(frames)
    assert (videos["pred"] == videos["label"]).mean() == pytest.approx(result["test"]["test_video_accuracy"])
    assert confusion(frames["label"], probs.argmax(axis=1), 7).sum() == len(frames)
    assert confusion(videos["label"], videos["pred"], 7).sum() == 6
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


def test_a_split_naming_an_actor_without_videos_is_a_clear_error(prepared: dict[str, str], tmp_path: Path) -> None:
    config = _config(prepared["planted"], "data.emotion.split={train: [actor_01, actor_09], val: [actor_05], test: []}")
    with pytest.raises(DatasetError, match=r"actor_09 \(train\)"):
        train(config, out=str(tmp_path / "never"))
    assert not os.path.exists(tmp_path / "never")


@pytest.mark.timeout(900)
def test_two_ray_train_workers_stream_the_crops_and_match_one_worker(prepared: dict[str, str], tmp_path: Path) -> None:
    """DDP on two CPU workers (gloo) vs one worker, same data and seed: the same number of epochs
    and validation accuracy within 0.15 (different batch partition and dropout draws per rank)."""
    results = {}
    for workers in (1, 2):
        config = _config(prepared["planted"], "scaling.runner=ray_train", f"scaling.num_workers={workers}",
                         "scaling.cpus_per_worker=0.5", "scaling.torch_threads=1", "training.max_epochs=3",
                         "training.verify_replicas=true")
        results[workers] = train(config, out=str(tmp_path / f"w{workers}"))
    assert [len(r.history) for r in results.values()] == [3, 3]
    assert abs(results[1].val["val_accuracy"] - results[2].val["val_accuracy"]) <= 0.15
    assert storage.exists(str(tmp_path / "w2" / "predictions" / "test.parquet"))
