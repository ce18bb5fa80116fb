"""Training, prediction and late fusion for ``data.task: emotion``.

:func:`train_emotion` is what :func:`affectlab.training.run.train` runs for this task: it builds the
data (:mod:`affectlab.training.emotion_data`), trains with the configured runner (Ray Train
streaming the frames to every worker, or in-process), restores the best epoch, predicts the
validation and test parts and writes, besides the usual run outputs (``config.yaml``,
``history.parquet``, ``result.json``, ``best_model.pt``):

* ``predictions/<part>.parquet``: one row per scored frame (face) or recording (speech):
  ``sample_id, subject, modality, frame, label, probs`` (softmax probabilities in class order);
  every table of the report is recomputed from these files.

:func:`fuse` averages a face run's and a speech run's class probabilities per recording (late
fusion) and writes a run whose predictions hold the three modalities side by side.
"""

from __future__ import annotations

import json
import re
import time
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import torch

from affectlab import storage
from affectlab.errors import DatasetError
from affectlab.training.config import ExperimentConfig
from affectlab.training.emotion_data import EmotionData, load_emotion_data, resolve_split
from affectlab.training.loop import saved_weights
from affectlab.training.runners import (Reporter, batch_seed, build_modules, run_in_process_batches,
                                       run_ray_train_datasets, shard_batches, torch_threads)
from affectlab.training.splits import Split
from affectlab.training.tasks import DataInfo, EmotionTask, build_task
from affectlab.training.tasks.emotion import clip_probabilities, softmax_predictions

__all__ = ["fuse", "predictions_uri", "read_predictions", "recording_key", "train_emotion"]

PREDICTION_FIELDS = pa.schema([
    ("sample_id", pa.string()), ("subject", pa.string()), ("modality", pa.string()), ("frame", pa.int32()),
    ("label", pa.int32()), ("probs", pa.list_(pa.float32())),
])
RAVDESS_STEM = re.compile(r"^0[123]-(\d\d-\d\d-\d\d-\d\d-\d\d-\d\d)$")


def predictions_uri(run: str, part: str) -> str:
    """``<run>/predictions/<part>.parquet``."""
    return storage.join(run, "predictions", f"{part}.parquet")


def read_predictions(run: str, part: str = "test") -> pd.DataFrame:
    """A run's stored predictions (see :func:`affectlab.reporting.emotion.read_predictions`).

    Raises:
        DatasetError: The run has no predictions for ``part``.
    """
    from affectlab.reporting.emotion import read_predictions as read_checked

    uri = predictions_uri(run, part)
    if not storage.exists(uri):
        raise DatasetError(f"{run}: no {part} predictions ({uri}); is it an emotion run with a {part} part?")
    return read_checked(uri)


def recording_key(sample_id: str) -> str:
    """The recording a clip belongs to, shared by its modalities: a RAVDESS stem without its
    modality code (``01-01-05-...`` and ``03-01-05-...`` are one recording), else the id itself."""
    stem = sample_id.rsplit("/", 1)[-1]
    match = RAVDESS_STEM.match(stem)
    return match.group(1) if match else sample_id


def _datasets_batches(data: EmotionData, config: ExperimentConfig) -> tuple[Any, Any]:
    t = config.training
    return (lambda epoch: shard_batches(data.datasets["train"], t.batch_size, seed=batch_seed(t.seed, epoch, 0)),
            lambda: shard_batches(data.datasets["val"], t.batch_size))


def _emotion_task(config: ExperimentConfig, info: DataInfo) -> EmotionTask:
    task = build_task(config, info)
    if not isinstance(task, EmotionTask):  # a task registered over "emotion" at run time
        raise TypeError(f"data.task 'emotion' built a {type(task).__name__}, not an EmotionTask")
    return task


def _predict(config: ExperimentConfig, task: EmotionTask, data: EmotionData, info: DataInfo,
             states: dict[str, Any]) -> dict[str, dict]:
    """Eval-mode predictions of the best weights on every part but train."""
    modules = build_modules(config, task, info.model_kwargs)
    for name, module in modules.items():
        module.load_state_dict(states[name])
    out = {}
    with torch_threads(config.scaling.torch_threads):
        for part in ("val", "test"):
            if part in data.datasets:
                out[part] = task.predict(modules["model"], shard_batches(data.datasets[part], 256), "cpu")
    return out


def _write_predictions(run: str, part: str, columns: dict[str, Any]) -> None:
    storage.write_parquet(pa.Table.from_pydict(columns, schema=PREDICTION_FIELDS), predictions_uri(run, part))


def train_emotion(config: ExperimentConfig, *, out: str, reporter: Reporter | None = None,
                  resume_from: str | None = None, write: bool = True) -> Any:
    """Train ``data.task: emotion`` (see the module docstring); returns a
    :class:`~affectlab.training.run.TrainResult` whose ``test`` holds ``test_accuracy`` (single
    frame), ``test_video_accuracy``, ``test_uar`` and ``test_loss``."""
    from affectlab.training.run import TrainResult, write_outputs

    started = time.perf_counter()
    config, split_name = resolve_split(config)
    data = load_emotion_data(config, in_process=config.scaling.runner == "in_process")
    info = DataInfo(model_kwargs=data.model_kwargs, class_counts=data.class_counts("train"), extra=data.extra)
    if config.scaling.runner == "in_process":
        train_fn, val_fn = _datasets_batches(data, config)
        output = run_in_process_batches(config, info, train_fn, val_fn, reporter=reporter, resume_from=resume_from)
    else:
        output, _ = run_ray_train_datasets(config, {"train": data.datasets["train"], "val": data.datasets["val"]},
                                           info, out=out, reporter=reporter, stream=not config.data.emotion.cache)
    task = _emotion_task(config, info)
    predictions = _predict(config, task, data, info, output.best_states)
    best_row = next((r for r in output.history if r["epoch"] == output.best_epoch), output.history[-1])
    val = {k: float(v) for k, v in best_row.items() if k.startswith("val_")}
    test = task.scores(predictions["test"], "test_") if "test" in predictions else {}
    s = config.data.emotion
    counts = data.class_counts("train")
    baseline = {}
    if "test" in predictions:
        _, _, video_labels = clip_probabilities(predictions["test"]["sample_id"], predictions["test"]["probs"],
                                                predictions["test"]["label"])
        baseline = {"baseline_video_accuracy": float((video_labels == int(np.argmax(counts))).mean())}
    result = TrainResult(
        config=config, out=out, history=output.history, best_epoch=output.best_epoch, val=val, test=test,
        baseline=baseline, split=Split(s.split.train, s.split.val, s.split.test), stop_reason=output.stop_reason,
        runner=config.scaling.runner, wall_s=time.perf_counter() - started, resumed_from=output.resumed_from,
        extra={"modality": s.modality, "feature_column": data.column, "mean_face": s.mean_face, "split_name": split_name,
               **data.summary()},
    )
    if write:
        write_outputs(result, saved_weights(output.best_states))
        subjects = data.subjects()
        for part, pred in predictions.items():
            _write_predictions(out, part, softmax_predictions(pred, subjects, s.modality))
    return result


def _recording_level(frame: pd.DataFrame, weighting: str) -> pd.DataFrame:
    """One row per recording (:func:`affectlab.reporting.emotion.video_level`) with its :func:`recording_key`."""
    from affectlab.reporting.emotion import video_level

    videos = video_level(frame, weighting)
    videos["key"] = [recording_key(str(i)) for i in videos["sample_id"]]
    return videos


def _run_result(run: str) -> dict[str, Any]:
    uri = storage.join(run, "result.json")
    if not storage.exists(uri):
        raise DatasetError(f"{run}: no result.json (not a finished training run)")
    return json.loads(storage.read_text(uri))


def fuse(face_run: str, speech_run: str, out: str, *, part: str = "test", weighting: str = "mean") -> dict[str, Any]:
    """Late fusion: per recording, the mean of the face run's clip probabilities (frames averaged
    with ``weighting``) and the speech run's; recordings are matched by :func:`recording_key`.

    Writes ``<out>/predictions/<part>.parquet`` with the face, speech and fusion rows (frame -1) of
    the recordings both runs scored, and ``<out>/result.json`` (``modality: fusion``, accuracies).

    Raises:
        DatasetError: A run is missing or not an emotion run, the two runs order their classes
            differently, or they share no recording.
    """
    runs = {"face": _run_result(face_run), "speech": _run_result(speech_run)}
    for name, result in runs.items():
        if result.get("target", {}).get("task") != "emotion":
            raise DatasetError(f"{name} run {face_run if name == 'face' else speech_run} is not an emotion run")
    if runs["face"]["classes"] != runs["speech"]["classes"]:
        raise DatasetError(f"the runs' classes differ: face {runs['face']['classes']} vs speech "
                           f"{runs['speech']['classes']}")
    face = _recording_level(read_predictions(face_run, part), weighting)
    speech = _recording_level(read_predictions(speech_run, part), "mean")
    both = face.merge(speech, on="key", suffixes=("_face", "_speech"))
    if both.empty:
        raise DatasetError(f"the face and speech runs share no {part} recording (face e.g. "
                           f"{face['sample_id'].head(3).tolist()}, speech e.g. {speech['sample_id'].head(3).tolist()})")
    mismatch = both[both["label_face"] != both["label_speech"]]
    if len(mismatch):
        raise DatasetError(f"recordings labelled differently by the two runs: {mismatch['key'].head(5).tolist()}")
    rows: dict[str, list[Any]] = {k: [] for k in PREDICTION_FIELDS.names}
    fused = [(a + b) / 2 for a, b in zip(both["probs_face"], both["probs_speech"], strict=True)]
    for modality, probs in (("face", both["probs_face"]), ("speech", both["probs_speech"]), ("fusion", fused)):
        rows["sample_id"] += both["sample_id_face"].tolist()
        rows["subject"] += both["subject_face"].tolist()
        rows["modality"] += [modality] * len(both)
        rows["frame"] += [-1] * len(both)
        rows["label"] += both["label_face"].astype(int).tolist()
        rows["probs"] += [np.asarray(p, np.float32) for p in probs]
    _write_predictions(out, part, rows)
    labels = both["label_face"].to_numpy()
    accuracy = {m: float((np.stack(list(p)).argmax(axis=1) == labels).mean())
                for m, p in (("face", both["probs_face"]), ("speech", both["probs_speech"]), ("fusion", fused))}
    summary = {"name": "fusion", "target": {"task": "emotion"}, "modality": "fusion",
               "classes": runs["face"]["classes"], "split": runs["face"]["split"], "runs": {"face": face_run,
               "speech": speech_run}, "recordings": len(both), "weighting": weighting,
               part: {f"{part}_{m}_video_accuracy": a for m, a in accuracy.items()}}
    storage.write_text(storage.join(out, "result.json"), json.dumps(summary, indent=2))
    return summary
