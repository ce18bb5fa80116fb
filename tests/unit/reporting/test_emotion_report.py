"""Emotion report tables (seed 001): video-level decisions, confusion, recall/precision, sklearn's
classification report, the modality comparison, and the section of `affectlab report`."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sklearn.metrics import classification_report

from affectlab.errors import ConfigError
from affectlab.reporting import find_outputs, write_report
from affectlab.reporting.emotion import (
    PredictionsError,
    classification_report_table,
    confusion,
    confusion_table,
    is_emotion_run,
    mean_face_ablation,
    modality_comparison,
    read_predictions,
    recall_precision_table,
    video_level,
)

CLASSES = ["angry", "calm", "disgust", "fear", "happy", "sad", "surprise"]
TEST_ACTORS = ["actor_21", "actor_22", "actor_23", "actor_24"]


def _frames(rows: list[tuple[str, str, str, int, int, list[float]]]) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=["sample_id", "subject", "modality", "frame", "label", "probs"])


def test_video_level_mean_and_max_weighting_decide_differently() -> None:
    # v1 (label 0): one confident frame for class 0, two hesitant ones for class 1.
    # mean: [0.3, 0.4, 0.3] -> 1; max-weighted (weights 0.9, 0.55, 0.55): [0.405, 0.3475, 0.2475] -> 0.
    frames = _frames([
        ("v1", "s1", "face", 21, 0, [0.9, 0.1, 0.0]),
        ("v1", "s1", "face", 24, 0, [0.0, 0.55, 0.45]),
        ("v1", "s1", "face", 27, 0, [0.0, 0.55, 0.45]),
        ("v2", "s2", "face", 21, 2, [0.1, 0.1, 0.8]),
        ("v2", "s2", "face", 24, 2, [0.2, 0.2, 0.6]),
    ])
    mean = video_level(frames)
    assert list(mean.sample_id) == ["v1", "v2"] and list(mean.subject) == ["s1", "s2"]
    assert list(mean.n_frames) == [3, 2] and list(mean.label) == [0, 2]
    np.testing.assert_allclose(mean.probs[0], [0.3, 0.4, 0.3])
    np.testing.assert_allclose(mean.probs[1], [0.15, 0.15, 0.7])
    assert list(mean.pred) == [1, 2]
    weighted = video_level(frames, "max")
    np.testing.assert_allclose(weighted.probs[0], [0.405, 0.3475, 0.2475])
    np.testing.assert_allclose(weighted.probs[1], [(0.08 + 0.12) / 1.4, (0.08 + 0.12) / 1.4, (0.64 + 0.36) / 1.4])
    assert list(weighted.pred) == [0, 2]


def test_video_level_keeps_modalities_apart() -> None:
    frames = _frames([
        ("v1", "s1", "speech", -1, 1, [0.2, 0.8]),
        ("v1", "s1", "face", -1, 1, [0.7, 0.3]),
    ])
    videos = video_level(frames)
    assert list(zip(videos.modality, videos.pred, strict=True)) == [("speech", 1), ("face", 0)]


def test_video_level_errors_name_the_problem() -> None:
    frames = _frames([("v1", "s1", "face", 0, 0, [1.0, 0.0]), ("v7", "s1", "face", 0, 1, [1.0, 0.0]),
                      ("v7", "s1", "face", 3, 0, [1.0, 0.0])])
    with pytest.raises(PredictionsError, match=r"sample_id 'v7' \(face\): its frames have different labels \[0, 1\]"):
        video_level(frames)
    with pytest.raises(ConfigError, match=r"weighting='median': must be one of mean, max"):
        video_level(frames, "median")
    with pytest.raises(PredictionsError, match=r"missing column\(s\) \['probs'\]"):
        video_level(frames.drop(columns="probs"))
    assert video_level(frames.iloc[:0]).empty


def test_confusion_counts_every_item_rows_true() -> None:
    labels = [0, 0, 1, 2, 2, 2]
    preds = [0, 1, 1, 2, 0, 2]
    conf = confusion(labels, preds, 3)
    np.testing.assert_array_equal(conf, [[1, 1, 0], [0, 1, 0], [1, 0, 2]])
    assert conf.sum() == len(labels)
    with pytest.raises(PredictionsError, match="prediction 3 is outside 0..2"):
        confusion([0], [3], 3)
    table = confusion_table(conf, ["a", "b", "c"])
    assert list(table.columns) == ["true \\ pred", "a", "b", "c"] and list(table.iloc[2]) == ["c", 1, 0, 2]


def test_recall_precision_with_zero_division_is_zero_and_quiet() -> None:
    conf = np.array([[3, 1, 0], [0, 0, 0], [1, 0, 0]])  # class b never true, class c never predicted
    with np.errstate(all="raise"):
        table = recall_precision_table(conf, ["a", "b", "c"])
    assert list(table.columns) == ["class", "recall", "precision"]
    np.testing.assert_allclose(table.recall, [0.75, 0.0, 0.0])
    np.testing.assert_allclose(table.precision, [0.75, 0.0, 0.0])
    with pytest.raises(PredictionsError, match="does not match 2 classes"):
        recall_precision_table(conf, ["a", "b"])


def test_recall_precision_reproduces_the_seed_single_frame_table() -> None:
    seed = np.array([  # SEED-NOTES B.4 table 1: 5376 test frames, 768 per class
        [356, 24, 132, 178, 28, 27, 23], [9, 396, 2, 80, 178, 13, 90], [52, 31, 552, 50, 2, 80, 1],
        [20, 25, 75, 519, 0, 40, 89], [2, 102, 4, 77, 567, 0, 16], [81, 44, 103, 244, 30, 244, 22],
        [129, 53, 50, 284, 26, 8, 218]])
    assert seed.sum() == 5376 and set(seed.sum(axis=1)) == {768}
    table = recall_precision_table(seed, CLASSES)
    assert list(table.recall.round(2)) == [0.46, 0.52, 0.72, 0.68, 0.74, 0.32, 0.28]
    assert list(table.precision.round(2)) == [0.55, 0.59, 0.60, 0.36, 0.68, 0.59, 0.47]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_classification_report_matches_sklearn(seed: int) -> None:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 6, 300)  # class 6 never true
    preds = np.where((rng.random(300) < 0.5) & (labels < 5), labels, rng.integers(0, 5, 300))  # 5, 6 never predicted
    ours = classification_report_table(labels, preds, CLASSES).set_index("class")
    ref = classification_report(labels, preds, labels=range(7), target_names=CLASSES, output_dict=True,
                                zero_division=0)
    assert list(ours.index) == [*CLASSES, "accuracy", "macro avg", "weighted avg"]
    assert list(ours.columns) == ["precision", "recall", "f1-score", "support"]
    for name in [*CLASSES, "macro avg", "weighted avg"]:
        for column in ("precision", "recall", "f1-score", "support"):
            assert ours.loc[name, column] == pytest.approx(ref[name][column]), (name, column)
    assert ours.loc["accuracy", "f1-score"] == pytest.approx(ref["accuracy"])
    assert ours.loc["accuracy", "support"] == 300 and np.isnan(ours.loc["accuracy", "precision"])
    assert ours.loc["surprise", "support"] == 0 and ours.loc["sad", "precision"] == 0.0  # zero division -> 0
    assert ours.loc["sad", "support"] > 0 and ours.loc["sad", "recall"] == 0.0


def test_classification_report_averages_by_hand() -> None:
    # a: 2 true (1 right), b: 1 true (right), c: 1 true (wrong, predicted a)
    table = classification_report_table([0, 0, 1, 2], [0, 1, 1, 0], ["a", "b", "c"]).set_index("class")
    p, r = np.array([0.5, 0.5, 0.0]), np.array([0.5, 1.0, 0.0])
    f1 = np.array([0.5, 2 / 3, 0.0])
    assert table.loc["macro avg", "precision"] == pytest.approx(p.mean())
    assert table.loc["macro avg", "f1-score"] == pytest.approx(f1.mean())
    assert table.loc["weighted avg", "recall"] == pytest.approx(r @ [0.5, 0.25, 0.25])
    assert table.loc["accuracy", "f1-score"] == pytest.approx(0.5)


def test_modality_comparison_and_mean_face_ablation() -> None:
    rows = []
    for i, label in enumerate([0, 1, 1, 2]):
        rows.append((f"v{i}", "s1", "face", -1, label, [1.0, 0.0, 0.0]))  # face right only for v0
        rows.append((f"v{i}", "s1", "speech", -1, label, np.eye(3)[label].tolist()))  # speech always right
        rows.append((f"v{i}", "s1", "fusion", -1, label, np.eye(3)[label if i < 3 else 0].tolist()))
    table = modality_comparison(_frames(rows[::-1]))  # order of the rows does not matter
    assert table.values.tolist() == [["face", 4, 0.25], ["speech", 4, 1.0], ["fusion", 4, 0.75]]
    ablation = mean_face_ablation([("without mean face", 0.1786, 224), ("with mean face", 0.625, 224)])
    assert list(ablation.columns) == ["setting", "full-video accuracy", "videos"]
    assert ablation.values.tolist() == [["without mean face", 0.1786, 224], ["with mean face", 0.625, 224]]


# -- run directories ---------------------------------------------------------------------------
def _predictions_table(rows: list[dict]) -> pa.Table:
    schema = pa.schema([("sample_id", pa.string()), ("subject", pa.string()), ("modality", pa.string()),
                        ("frame", pa.int32()), ("label", pa.int32()), ("probs", pa.list_(pa.float32()))])
    return pa.Table.from_pylist(rows, schema=schema)


def _probs(k: int, confidence: float = 0.7) -> list[float]:
    p = np.full(7, (1 - confidence) / 6)
    p[k] = confidence
    return p.tolist()


def face_rows(actors: list[str], wrong_video: str | None = None) -> list[dict]:
    """Seven videos per actor, one per class, three frames each: two right (0.7), one on the next
    class (0.6). Single frame: 2/3 right; full video: all right (but ``wrong_video``: all frames wrong)."""
    rows = []
    for actor in actors:
        for k in range(7):
            sid = f"{actor}_{k}"
            for j, frame in enumerate((21, 24, 27)):
                wrong = j == 2 or sid == wrong_video
                rows.append({"sample_id": sid, "subject": actor, "modality": "face", "frame": frame, "label": k,
                             "probs": _probs((k + 1) % 7, 0.6) if wrong else _probs(k)})
    return rows


SPLIT = {"train": [f"actor_{i:02d}" for i in range(1, 19)], "val": ["actor_19", "actor_20"], "test": TEST_ACTORS}


def write_emotion_run(run: Path, modality: str, rows_by_split: dict[str, list[dict]], *, history: bool = True,
                      mean_face: bool | None = None, mean_face_in: str = "result.json") -> Path:
    """A run as the emotion training writes it (a late fusion, ``history=False``: as ``fuse`` does);
    ``mean_face`` goes into result.json or, ``mean_face_in="config.yaml"``, into data.emotion there."""
    (run / "predictions").mkdir(parents=True)
    if history:
        summary = {"name": run.name, "runner": "in_process", "target": {"task": "emotion", "au": None, "kind": None},
                   "model": "emotion_cnn", "feature_set": "face", "classes": CLASSES, "modality": modality,
                   "epochs": 2, "best_epoch": 2, "stop_reason": "max_epochs", "split": SPLIT,
                   "val": {"val_accuracy": 0.5}, "test": {"test_video_accuracy": 0.9}}
        pq.write_table(pa.Table.from_pylist([{"epoch": e, "train_loss": 1 / e, "val_accuracy": 0.3 * e}
                                             for e in (1, 2)]), run / "history.parquet")
    else:
        summary = {"name": run.name, "target": {"task": "emotion"}, "modality": modality, "classes": CLASSES,
                   "split": SPLIT, "runs": {"face": "out/face", "speech": "out/speech"}, "weighting": "mean"}
    if mean_face is not None and mean_face_in == "result.json":
        summary["mean_face"] = mean_face
    elif mean_face is not None:
        (run / "config.yaml").write_text(f"name: {run.name}\ndata:\n  task: emotion\n  emotion:\n"
                                         f"    mean_face: {str(mean_face).lower()}\n")
    (run / "result.json").write_text(json.dumps(summary))
    for split, rows in rows_by_split.items():
        pq.write_table(_predictions_table(rows), run / "predictions" / f"{split}.parquet")
    return run


def _table_after(md: str, caption: str) -> list[str]:
    """The pipe-table lines under the bold caption ``caption``."""
    lines = md.splitlines()
    start = lines.index(f"**{caption}**") + 2
    end = next(i for i in range(start, len(lines)) if not lines[i].startswith("|"))
    return lines[start:end]


def test_face_run_report_has_single_frame_and_full_video_tables(tmp_path: Path) -> None:
    run = write_emotion_run(tmp_path / "face", "face", {"test": face_rows(TEST_ACTORS),
                                                         "val": face_rows(["actor_19", "actor_20"])})
    assert is_emotion_run(str(run)) and find_outputs(str(run)) == [("run", str(run))]
    report = Path(write_report(str(run))).parent
    md = (report / "index.md").read_text()
    where = "test split (actors actor_21, actor_22, actor_23, actor_24)"
    single = _table_after(md, f"{where}, single frame: confusion matrix (rows true, columns predicted; frames)")
    assert single[0] == "| true \\ pred | " + " | ".join(CLASSES) + " |"
    assert single[2] == "| angry | 8 | 4 | 0 | 0 | 0 | 0 | 0 |"  # 4 videos x 2 right frames, 4 on calm
    assert sum(int(c) for line in single[2:] for c in line.strip("| ").split(" | ")[1:]) == 4 * 7 * 3
    video = _table_after(md, f"{where}, full video: confusion matrix (rows true, columns predicted; videos)")
    assert video[2] == "| angry | 4 | 0 | 0 | 0 | 0 | 0 | 0 |"
    recall = _table_after(md, f"{where}, single frame: recall and precision")
    assert recall[2] == "| angry | 0.6667 | 0.6667 |"
    report_rows = _table_after(md, f"{where}, full video: classification report")
    assert report_rows[0] == "| class | precision | recall | f1-score | support |"
    assert "| accuracy | - | - | 1 | 28 |" in report_rows and "| macro avg | 1 | 1 | 1 | 28 |" in report_rows
    overview = _table_after(md, f"{where}: accuracy and UAR (mean per-class recall)")
    assert overview[2:] == ["| face | single frame | 84 | 0.6667 | 0.6667 |", "| face | full video | 28 | 1 | 1 |"]
    assert "val split (actors actor_19, actor_20), full video: classification report" in md
    assert md.index("Test split (actors") < md.index("Val split (actors")
    assert "target face emotion (7 classes) (emotion)" in md
    pngs = sorted(p.name for p in report.glob("*.png"))
    assert "run1_emotion_test_face_single_frame_confusion.png" in pngs
    assert "run1_emotion_val_face_full_video_confusion.png" in pngs and "run1_learning_curves.png" in pngs
    assert 'src="run1_emotion_test_face_full_video_confusion.png"' in (report / "index.html").read_text()


def test_fusion_run_compares_modalities_and_needs_no_history(tmp_path: Path) -> None:
    rows = []
    for actor in TEST_ACTORS:
        for k in range(7):
            sid = f"{actor}_{k}"
            for modality, pred in (("face", k), ("speech", k if k < 4 else 0), ("fusion", k if k else 1)):
                rows.append({"sample_id": sid, "subject": actor, "modality": modality, "frame": -1, "label": k,
                             "probs": _probs(pred)})
    run = write_emotion_run(tmp_path / "fusion", "fusion", {"test": rows}, history=False)
    md = (Path(write_report(str(run))).parent / "index.md").read_text()
    where = "test split (actors actor_21, actor_22, actor_23, actor_24)"
    comparison = _table_after(md, f"{where}: modality comparison (video-level accuracy)")
    assert comparison == ["| modality | n_videos | accuracy |", "|---|---|---|", "| face | 28 | 1 |",
                          "| speech | 28 | 0.5714 |", "| fusion | 28 | 0.8571 |"]
    assert f"{where}, fusion, recording: confusion matrix (rows true, columns predicted; recordings)" in md
    assert ", single frame" not in md and f"{where}, face, recording" not in md  # details only for the run's modality
    assert "learning_curves" not in md
    assert "## Emotion run: fusion" in md and "no training of its own (runs face: out/face; speech: out/speech)" in md


def test_directory_of_emotion_runs_gets_a_comparison_and_the_mean_face_ablation(tmp_path: Path) -> None:
    write_emotion_run(tmp_path / "face", "face", {"test": face_rows(TEST_ACTORS)}, mean_face=True)
    write_emotion_run(tmp_path / "face_no_mean", "face", {"test": face_rows(TEST_ACTORS, wrong_video="actor_21_0")},
                      mean_face=False, mean_face_in="config.yaml")
    speech = [{"sample_id": f"{a}_{k}", "subject": a, "modality": "speech", "frame": -1, "label": k,
               "probs": _probs(k)} for a in TEST_ACTORS for k in range(7)]
    write_emotion_run(tmp_path / "speech", "speech", {"test": speech})
    md = (Path(write_report(str(tmp_path))).parent / "index.md").read_text()
    compared = _table_after(md, "test split of each run: accuracy of single frames (face) and of full videos")
    assert compared[2:] == ["| face | face | 28 | 0.6667 | 1 | yes |",
                            "| face_no_mean | face | 28 | 0.6429 | 0.9643 | no |",
                            "| speech | speech | 28 | - | 1 | - |"]
    ablation = _table_after(md, "mean-face ablation: full-video accuracy on the test split")
    assert ablation[2:] == ["| with mean face | 1 | 28 |", "| without mean face | 0.9643 | 28 |"]
    assert md.count("### Emotion: single frame and full video") == 3
    assert md.index("Emotion runs compared") < md.index("Training run: face")


def test_bad_predictions_file_is_named(tmp_path: Path) -> None:
    rows = face_rows(["actor_21"])
    rows[0]["probs"] = rows[0]["probs"][:5]
    run = write_emotion_run(tmp_path / "bad", "face", {"test": rows})
    path = run / "predictions" / "test.parquet"
    with pytest.raises(PredictionsError, match=r"test.parquet: probs have length\(s\) \[5, 7\]; expected 7"):
        read_predictions(str(path), 7)
    assert len(read_predictions(str(path))) == 21


def test_other_runs_are_unchanged(tmp_path: Path) -> None:
    run = tmp_path / "au"
    run.mkdir()
    pq.write_table(pa.Table.from_pylist([{"epoch": 1, "train_loss": 1.0, "val_uar": 0.6}]), run / "history.parquet")
    (run / "result.json").write_text(json.dumps({
        "name": "au", "runner": "in_process", "target": {"task": "au", "au": "AU17", "kind": "occurrence"},
        "model": "stacked", "feature_set": "egemaps", "epochs": 1, "best_epoch": 1, "stop_reason": "max_epochs",
        "split": {"test": ["s3"]}, "test": {"test_uar": 0.6}, "test_confusion": [[4, 1], [2, 3]]}))
    assert not is_emotion_run(str(run))
    md = (Path(write_report(str(run))).parent / "index.md").read_text()
    assert "target AU17 occurrence (au)" in md and "run1_confusion.png" in md
    assert "Emotion" not in md and "emotion" not in md
    bare = tmp_path / "bare"  # result.json without history and not an emotion run: not a run
    bare.mkdir()
    (bare / "result.json").write_text(json.dumps({"target": {"task": "au"}}))
    assert [kind for kind, _ in find_outputs(str(tmp_path))] == ["run"]
