"""Leave-one-actor-out cross-validation of ``data.task: emotion`` (``affectlab cv EXP --folds loso``).

Each fold tests one actor. Its validation actors (early stopping, the learning-rate schedule) are
the next ``len(data.emotion.split.val)`` actors in sorted order, wrapping around, so they are never
the test actor; every other actor trains. The mean face and the speech normalisation come from each
fold's training actors only (the training computes them). The folds run as parallel Ray Tune trials,
one CPU each, with the in-process trainer (:func:`affectlab.training.cv.fit_grid`); every trial
checks, before and after training, that its test actor is in neither train nor validation.

Outputs under ``<out>/cv/``:

* ``folds.parquet``: one row per fold (test actor, validation actors, frame and full-video
  accuracy, UAR, test videos, best epoch, wall time, run name);
* ``runs/<fold>/``: each training's run (``result.json``, ``predictions/test.parquet``...);
* ``loso.md`` / ``loso.csv``: the table, one row per fold, then the mean and standard deviation
  over folds and the pooled row: all folds' test predictions scored together (every video of the
  corpus scored once, by the model that never saw its actor);
* ``timing.json``: the grid's wall time against the sum of the trainings' times.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pandas as pd

from affectlab import storage
from affectlab.errors import DatasetError
from affectlab.features import io
from affectlab.training.config import ExperimentConfig, with_updates
from affectlab.training.emotion_data import ALIASES, resolve_split
from affectlab.training.splits import Fold

__all__ = ["emotion_folds", "emotion_subjects", "pooled_scores", "run_emotion_cv"]


def emotion_subjects(config: ExperimentConfig) -> list[str]:
    """The subjects with at least one clip of a kept class (not in ``data.emotion.drop``) in the
    config's feature set, sorted.

    Raises:
        DatasetError / StorageError: The feature set or the clip labels are missing.
    """
    s = config.data.emotion
    index = io.set_index(config.data.features, config.data.feature_set, columns=("sample_id", "subject"))
    labels = io.load_clip_labels(config.data.features)
    emotion = dict(zip(labels.column("sample_id").to_pylist(), labels.column("emotion").to_pylist(), strict=True))
    kept = set()
    for sid, subject in zip(index.column("sample_id").to_pylist(), index.column("subject").to_pylist(), strict=True):
        name = emotion.get(sid)
        if name is not None and ALIASES.get(str(name), str(name)) not in s.drop and name not in s.drop:
            kept.add(str(subject))
    return sorted(kept)


def emotion_folds(subjects: list[str], n_val: int) -> list[tuple[Fold, dict[str, list[str]]]]:
    """One fold per subject: ``(Fold, {train, val, test})`` with the ``n_val`` subjects after the
    test one (sorted order, wrapping around) as validation.

    Raises:
        DatasetError: Fewer than ``n_val + 2`` subjects (a fold would have nobody to train on).
    """
    if n_val < 1:
        raise DatasetError(f"an emotion LOSO needs at least one validation actor per fold, got {n_val}")
    if len(subjects) < n_val + 2:
        raise DatasetError(f"leave-one-actor-out needs at least {n_val + 2} actors with clips ({n_val} validating, "
                           f"1 testing, 1 training), found {len(subjects)}: {subjects}")
    folds = []
    for i, test in enumerate(subjects):
        val = [subjects[(i + k) % len(subjects)] for k in range(1, n_val + 1)]
        train = [s for s in subjects if s != test and s not in val]
        folds.append((Fold(f"loso_{test}", (test,)), {"train": train, "val": val, "test": [test]}))
    return folds


def _trial(params: dict[str, Any], *, configs: dict[str, dict[str, Any]], out: str) -> None:
    """One fold's training (a Tune function trainable)."""
    from affectlab.training.cv import TuneMetrics, check_fold
    from affectlab.training.run import train
    from affectlab.training.splits import Split

    entry = configs[params["key"]]
    config = ExperimentConfig.model_validate(entry["config"])
    fold = Fold(entry["fold"], tuple(entry["test"]))
    s = config.data.emotion.split
    check_fold(fold, Split(tuple(s.train), tuple(s.val), tuple(s.test)))  # before any training
    result = train(config, out=storage.join(out, "cv", "runs", config.name), reporter=TuneMetrics())
    check_fold(fold, result.split)  # and on the split the training actually used


def pooled_scores(runs: list[str], weighting: str = "mean") -> dict[str, Any]:
    """All runs' test predictions scored together: frame accuracy (face runs), video accuracy,
    UAR over videos, and the number of frames and videos.

    Raises:
        DatasetError: A run has no test predictions.
    """
    from affectlab.reporting.emotion import video_level
    from affectlab.training.emotion_run import read_predictions

    frames = pd.concat([read_predictions(run, "test") for run in runs], ignore_index=True)
    videos = video_level(frames, weighting)
    labels, preds = videos["label"].to_numpy(np.int64), videos["pred"].to_numpy(np.int64)
    recalls = [float((preds[labels == c] == c).mean()) for c in np.unique(labels)]
    scored = frames[frames["frame"] >= 0]
    frame_accuracy = None
    if len(scored):
        probs = np.stack(scored["probs"].to_numpy())
        frame_accuracy = float((probs.argmax(axis=1) == scored["label"].to_numpy()).mean())
    return {"frames": int(len(scored)), "videos": int(len(videos)), "accuracy": frame_accuracy,
            "video_accuracy": float((labels == preds).mean()), "uar": float(np.mean(recalls))}


def _row(fold: Fold, split: dict[str, list[str]], name: str, out: str) -> dict[str, Any]:
    summary = json.loads(storage.read_text(storage.join(out, "cv", "runs", name, "result.json")))
    test = summary["test"]
    return {"fold": fold.name, "test_subject": fold.test[0], "val_subjects": ",".join(split["val"]),
            "accuracy": test.get("test_accuracy"), "video_accuracy": test.get("test_video_accuracy"),
            "uar": test.get("test_uar"), "videos": summary["videos"].get("test", 0),
            "best_epoch": summary["best_epoch"], "epochs": summary["epochs"], "wall_s": summary["wall_s"], "run": name}


def _write_table(rows: list[dict[str, Any]], pooled: dict[str, Any], base: ExperimentConfig, out: str) -> None:
    from affectlab.reporting.document import Document, Table

    columns = ["fold", "test_subject", "videos", "accuracy", "video_accuracy", "uar", "best_epoch"]
    frame = pd.DataFrame(rows)[columns]
    means = frame[["accuracy", "video_accuracy", "uar"]].astype(float)
    summary_rows = [
        {"fold": "mean", "test_subject": f"{len(rows)} folds", "videos": int(frame["videos"].sum()),
         **means.mean().to_dict(), "best_epoch": None},
        {"fold": "sd", "test_subject": "", "videos": None, **means.std(ddof=1).to_dict(), "best_epoch": None},
        {"fold": "pooled", "test_subject": "all test predictions", "videos": pooled["videos"],
         "accuracy": pooled["accuracy"], "video_accuracy": pooled["video_accuracy"], "uar": pooled["uar"],
         "best_epoch": None},
    ]
    table = pd.concat([frame, pd.DataFrame(summary_rows)], ignore_index=True)
    storage.write_text(storage.join(out, "cv", "loso.csv"), table.to_csv(index=False))
    s = base.data.emotion
    doc = Document(f"Emotion, leave one actor out ({s.modality}, {base.model.name})")
    doc.table(Table.from_frame(table, caption=(
        f"Leave-one-actor-out, {len(rows)} folds: {s.modality} ({base.data.feature_set}), classes "
        f"{', '.join(s.classes)}; accuracy = single frame (face) or recording (speech), video_accuracy = "
        f"full video ({s.video_weighting} of frame probabilities), uar = mean per-class recall over videos")))
    storage.write_text(storage.join(out, "cv", "loso.md"), doc.to_markdown())


def run_emotion_cv(base: ExperimentConfig, *, out: str, max_concurrent: int | None = None) -> Any:
    """Run the leave-one-actor-out grid of ``base`` (see the module docstring); returns a
    :class:`~affectlab.training.cv.CVResult`.

    Raises:
        DatasetError: Too few actors, missing sets or labels, a named split the card lacks.
        SubjectLeakageError: A fold's test actor in its training or validation part.
    """
    from ray import tune

    from affectlab.training.cv import CVResult, fit_grid, write_rows_and_timing

    base, _ = resolve_split(base)
    n_val = len(base.data.emotion.split.val)  # type: ignore[union-attr]  # resolved: subject lists
    folds = emotion_folds(emotion_subjects(base), n_val)
    configs: dict[str, dict[str, Any]] = {}
    for fold, split in folds:
        config = with_updates(base, {"name": f"{base.name}_{fold.name}", "data.emotion.split": split,
                                     "scaling.runner": "in_process", "scaling.num_workers": 1,
                                     "scaling.torch_threads": 1})
        configs[config.name] = {"fold": fold.name, "test": list(fold.test), "config": config.model_dump(mode="json")}
    wall = fit_grid(tune.with_parameters(_trial, configs=configs, out=out), list(configs), out=out,
                    max_concurrent=max_concurrent)
    names = list(configs)
    rows = [_row(fold, split, name, out) for (fold, split), name in zip(folds, names, strict=True)]
    timing = write_rows_and_timing(rows, out, wall, max_concurrent)
    pooled = pooled_scores([storage.join(out, "cv", "runs", n) for n in names], base.data.emotion.video_weighting)
    storage.write_text(storage.join(out, "cv", "pooled.json"), json.dumps(pooled, indent=2))
    _write_table(rows, pooled, base, out)
    return CVResult(rows, storage.join(out, "cv"), timing)
