"""Report tables of emotion runs (seed 001, SEED-NOTES B.4): single frame and full video.

An emotion run directory holds ``result.json`` (``target.task == "emotion"``, ``classes`` in
output order, ``modality``, ``split`` with the subjects of each part) and
``predictions/<split>.parquet`` with one row per scored frame: ``sample_id``, ``subject``,
``modality`` (face / speech / fusion), ``frame`` (-1 for recording-level rows), ``label``
(index into ``classes``) and ``probs`` (softmax probabilities, one per class). A fusion run's
test file holds recording-level rows of every modality, so one file gives the comparison.

The tables follow the seed's layouts: confusion matrices (rows true, columns predicted), the
recall / precision table (Out[127]) and sklearn's ``classification_report``; every caption
names the split and its subjects, so a training-set number cannot pass for a test one (the
seed's 89% headline was one, B.5.1).

>>> frames = read_predictions("out/emotion/predictions/test.parquet")
>>> videos = video_level(frames)                     # mean of frame probabilities, then argmax
>>> recall_precision_table(confusion(videos.label, videos.pred, 7), classes)
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from affectlab import storage
from affectlab.errors import AffectlabError, ConfigError
from affectlab.reporting import plots
from affectlab.reporting.document import Document, Image, Table

__all__ = [
    "MODALITIES",
    "PREDICTION_COLUMNS",
    "WEIGHTINGS",
    "PredictionsError",
    "classification_report_table",
    "emotion_cv_section",
    "confusion",
    "confusion_table",
    "emotion_runs_section",
    "emotion_section",
    "is_emotion_run",
    "mean_face_ablation",
    "modality_comparison",
    "read_predictions",
    "recall_precision_table",
    "video_level",
]

WritePng = Callable[[str, bytes], None]
WEIGHTINGS = ("mean", "max")
MODALITIES = ("face", "speech", "fusion")
PREDICTION_COLUMNS = ("sample_id", "subject", "modality", "frame", "label", "probs")
SPLITS = ("test", "val")
_VIDEO_COLUMNS = ("sample_id", "subject", "modality", "label", "probs")


class PredictionsError(AffectlabError, ValueError):
    """A predictions table is unusable (missing columns, labels out of range, a video with two labels)."""


# -- pure table functions ----------------------------------------------------------------------
def _require(frame: pd.DataFrame, columns: Iterable[str], what: str) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise PredictionsError(f"{what}: missing column(s) {missing}; have {list(frame.columns)}")


def _prob_matrix(probs: pd.Series | Sequence[Any]) -> np.ndarray:
    """A column of per-row probability lists as a (N, K) float64 array."""
    rows = list(probs)
    if not rows:
        return np.zeros((0, 0))
    lengths = {len(p) for p in rows}
    if len(lengths) != 1:
        raise PredictionsError(f"probs: rows have different lengths {sorted(lengths)}; every row needs one per class")
    return np.asarray(np.stack([np.asarray(p, dtype=np.float64) for p in rows]))


def video_level(frames: pd.DataFrame, weighting: str = "mean") -> pd.DataFrame:
    """One row per (sample_id, modality): its frames' probabilities combined, then argmax.

    Args:
        frames: Columns ``sample_id, subject, modality, label, probs`` (``frame`` optional), one
            row per scored frame (or one per recording).
        weighting: ``mean`` (the seed's full-video rule: mean of the frame probabilities) or
            ``max`` (its commented alternative: the average weighted by each frame's largest
            probability, so confident frames count more).

    Returns:
        Columns ``sample_id, modality, subject, label, n_frames, probs`` (float64 arrays) and
        ``pred``, in order of first appearance.

    Raises:
        ConfigError: Unknown ``weighting``.
        PredictionsError: Missing columns, or the frames of one video disagree on its label or subject.
    """
    if weighting not in WEIGHTINGS:
        raise ConfigError(f"weighting={weighting!r}: must be one of {', '.join(WEIGHTINGS)}")
    _require(frames, _VIDEO_COLUMNS, "video_level")
    columns = ["sample_id", "modality", "subject", "label", "n_frames", "probs", "pred"]
    if frames.empty:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in columns})
    groups = frames.groupby(["sample_id", "modality"], sort=False)
    for key in ("label", "subject"):
        counts = groups[key].nunique()
        bad = counts[counts > 1]
        if len(bad):
            sample_id, modality = bad.index[0]
            rows = frames.loc[(frames["sample_id"] == sample_id) & (frames["modality"] == modality), key]
            values = sorted(v.item() if hasattr(v, "item") else v for v in rows.unique())
            raise PredictionsError(
                f"sample_id {sample_id!r} ({modality}): its frames have different {key}s {values} "
                f"({len(bad)} video(s) affected)"
            )
    codes = groups.ngroup().to_numpy()
    probs = _prob_matrix(frames["probs"])
    weights = probs.max(axis=1) if weighting == "max" else np.ones(len(probs))
    n_videos = int(codes.max()) + 1
    sums = np.zeros((n_videos, probs.shape[1]))
    np.add.at(sums, codes, probs * weights[:, None])
    totals = np.bincount(codes, weights=weights, minlength=n_videos)
    combined = sums / np.maximum(totals, 1e-12)[:, None]
    first = groups.head(1).reset_index(drop=True)  # first row of each group, in group-number order
    out = pd.DataFrame({
        "sample_id": first["sample_id"].to_numpy(),
        "modality": first["modality"].to_numpy(),
        "subject": first["subject"].to_numpy(),
        "label": first["label"].to_numpy().astype(np.int64),
        "n_frames": np.bincount(codes, minlength=n_videos),
        "probs": list(combined),
        "pred": combined.argmax(axis=1).astype(np.int64),
    })
    return out[columns]


def confusion(labels: Sequence[int] | np.ndarray, preds: Sequence[int] | np.ndarray, n_classes: int) -> np.ndarray:
    """Counts (n_classes, n_classes): rows the true class, columns the predicted one.

    Raises:
        PredictionsError: Different lengths, or a label or prediction outside 0..n_classes-1.
    """
    true = np.asarray(labels, dtype=np.int64).ravel()
    pred = np.asarray(preds, dtype=np.int64).ravel()
    if true.shape != pred.shape:
        raise PredictionsError(f"confusion: {len(true)} labels but {len(pred)} predictions")
    for name, values in (("label", true), ("prediction", pred)):
        bad = values[(values < 0) | (values >= n_classes)]
        if len(bad):
            raise PredictionsError(
                f"confusion: {name} {int(bad[0])} is outside 0..{n_classes - 1} ({n_classes} classes)")
    return np.bincount(true * n_classes + pred, minlength=n_classes * n_classes).reshape(n_classes, n_classes)


def _safe_div(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num / den elementwise, 0 where den is 0 (sklearn's ``zero_division=0``; no warnings)."""
    num, den = np.asarray(num, dtype=np.float64), np.asarray(den, dtype=np.float64)
    return np.divide(num, den, out=np.zeros(np.broadcast(num, den).shape), where=den != 0)


def _check_classes(conf: np.ndarray, classes: Sequence[str]) -> np.ndarray:
    conf = np.asarray(conf)
    if conf.ndim != 2 or conf.shape != (len(classes), len(classes)):
        raise PredictionsError(
            f"confusion matrix of shape {conf.shape} does not match {len(classes)} classes {list(classes)}")
    return conf


def confusion_table(conf: np.ndarray, classes: Sequence[str]) -> pd.DataFrame:
    """The matrix with class names: first column ``true \\ pred`` (the true class), then one per prediction."""
    conf = _check_classes(conf, classes)
    table = pd.DataFrame(conf.astype(np.int64), columns=list(classes))
    table.insert(0, "true \\ pred", list(classes))
    return table


def recall_precision_table(conf: np.ndarray, classes: Sequence[str]) -> pd.DataFrame:
    """Per class: recall (diagonal / row sum) and precision (diagonal / column sum); 0 where the
    sum is 0. The seed's Out[127] layout."""
    conf = _check_classes(conf, classes).astype(np.float64)
    diag = np.diag(conf)
    return pd.DataFrame({"class": list(classes), "recall": _safe_div(diag, conf.sum(axis=1)),
                         "precision": _safe_div(diag, conf.sum(axis=0))})


def classification_report_table(
    labels: Sequence[int] | np.ndarray, preds: Sequence[int] | np.ndarray, classes: Sequence[str]
) -> pd.DataFrame:
    """sklearn's ``classification_report`` (``labels=range(K)``, ``zero_division=0``) as a table.

    Rows: one per class (precision, recall, f1-score, support), then ``accuracy`` (in the
    f1-score column, with the total support), ``macro avg`` (unweighted mean over every class)
    and ``weighted avg`` (weighted by support).
    """
    conf = confusion(labels, preds, len(classes)).astype(np.float64)
    diag, support = np.diag(conf), conf.sum(axis=1)
    precision = _safe_div(diag, conf.sum(axis=0))
    recall = _safe_div(diag, support)
    f1 = _safe_div(2 * precision * recall, precision + recall)
    total = support.sum()
    rows = [[name, precision[k], recall[k], f1[k], int(support[k])] for k, name in enumerate(classes)]
    rows.append(["accuracy", np.nan, np.nan, float(_safe_div(diag.sum(), total)), int(total)])
    rows.append(["macro avg", precision.mean(), recall.mean(), f1.mean(), int(total)])
    weights = _safe_div(support, total)
    rows.append(["weighted avg", float(precision @ weights), float(recall @ weights), float(f1 @ weights), int(total)])
    return pd.DataFrame(rows, columns=["class", "precision", "recall", "f1-score", "support"])


def _modality_order(values: Iterable[str]) -> list[str]:
    present = list(dict.fromkeys(values))
    return [m for m in MODALITIES if m in present] + sorted(m for m in present if m not in MODALITIES)


def modality_comparison(predictions: pd.DataFrame, weighting: str = "mean") -> pd.DataFrame:
    """Video-level accuracy of each modality in one predictions table (a fusion run's test file).

    Returns:
        Columns ``modality, n_videos, accuracy``; face, speech, fusion first, then any other.
    """
    videos = video_level(predictions, weighting)
    rows = []
    for modality in _modality_order(videos["modality"]):
        part = videos[videos["modality"] == modality]
        rows.append([modality, len(part), float((part["pred"] == part["label"]).mean())])
    return pd.DataFrame(rows, columns=["modality", "n_videos", "accuracy"])


def mean_face_ablation(rows: Iterable[tuple[str, float, int]]) -> pd.DataFrame:
    """The seed's mean-face ablation table from ``(setting, video_accuracy, n_videos)`` rows.

    Returns:
        Columns ``setting, full-video accuracy, videos`` in the given order.
    """
    data = [[str(setting), float(acc), int(n)] for setting, acc, n in rows]
    return pd.DataFrame(data, columns=["setting", "full-video accuracy", "videos"])


# -- reading a run -----------------------------------------------------------------------------
def read_predictions(uri: str, n_classes: int | None = None) -> pd.DataFrame:
    """A predictions parquet file as a DataFrame, checked (columns, label range, probs length).

    Raises:
        PredictionsError: Missing columns, labels outside 0..n_classes-1 or probs of the wrong length.
    """
    frame = storage.read_parquet(uri).to_pandas()
    _require(frame, PREDICTION_COLUMNS, uri)
    if n_classes is not None and len(frame):
        labels = frame["label"].to_numpy()
        bad = labels[(labels < 0) | (labels >= n_classes)]
        if len(bad):
            raise PredictionsError(f"{uri}: label {int(bad[0])} is outside 0..{n_classes - 1} ({n_classes} classes)")
        lengths = sorted({len(p) for p in frame["probs"]})
        if lengths != [n_classes]:
            raise PredictionsError(f"{uri}: probs have length(s) {lengths}; expected {n_classes} (one per class)")
    return frame


def _summary(uri: str) -> dict[str, Any] | None:
    path = storage.join(uri, "result.json")
    if not storage.exists(path):
        return None
    try:
        return json.loads(storage.read_text(path))
    except ValueError:
        return None


def is_emotion_run(uri: str) -> bool:
    """True when ``uri/result.json`` says ``target.task == "emotion"``."""
    summary = _summary(uri)
    return bool(summary) and (summary.get("target") or {}).get("task") == "emotion"


def _split_title(split: str, subjects: Sequence[str], name: str | None = None) -> str:
    """``test split (actors actor_21, actor_22)``: the split and who is in it; with the card's
    split ``name``: ``test split of 'seed001' (actors ...)``."""
    title = f"{split} split" + (f" of {name!r}" if name else "")
    if not subjects:
        return title
    noun = "actors" if all(str(s).startswith("actor") for s in subjects) else "subjects"
    return f"{title} ({noun} {', '.join(map(str, subjects))})"


@dataclass
class _Level:
    """Labels and predictions of one split, modality and level (single frame or full video)."""

    name: str  # "single frame", "full video" or "recording"
    unit: str  # "frames", "videos" or "recordings"
    labels: np.ndarray
    preds: np.ndarray


def _levels(part: pd.DataFrame, modality: str, weighting: str) -> list[_Level]:
    """Single-frame (rows with frame >= 0) and video-level scores of one modality's rows."""
    levels = []
    frames = part[part["frame"] >= 0]
    if len(frames):
        levels.append(_Level("single frame", "frames", frames["label"].to_numpy(np.int64),
                             _prob_matrix(frames["probs"]).argmax(axis=1)))
    videos = video_level(part, weighting)
    by_video = len(frames) > 0 or modality == "face"
    levels.append(_Level("full video" if by_video else "recording", "videos" if by_video else "recordings",
                         videos["label"].to_numpy(np.int64), videos["pred"].to_numpy(np.int64)))
    return levels


def _file_name(*parts: str) -> str:
    return "_".join(p.replace(" ", "_") for p in parts) + ".png"


def _level_tables(doc: Document, level: _Level, classes: Sequence[str], where: str, png: str | None,
                  write_png: WritePng) -> None:
    conf = confusion(level.labels, level.preds, len(classes))
    title = f"{where}, {level.name}"
    doc.table(Table.from_frame(confusion_table(conf, classes),
                               caption=f"{title}: confusion matrix (rows true, columns predicted; {level.unit})"))
    if png is not None:
        count = f"{len(level.labels)} {level.unit}"
        write_png(png, plots.confusion_matrix_png(conf, labels=classes, title=f"{title} ({count})"))
        doc.image(Image(png, f"{title}: confusion matrix (rows true, columns predicted)"))
    doc.table(Table.from_frame(recall_precision_table(conf, classes), caption=f"{title}: recall and precision"))
    doc.table(Table.from_frame(classification_report_table(level.labels, level.preds, classes),
                               caption=f"{title}: classification report"))


def _accuracy(level: _Level) -> float:
    return float((level.labels == level.preds).mean()) if len(level.labels) else float("nan")


def _uar(level: _Level, n_classes: int) -> float:
    recalls = [float((level.preds[level.labels == k] == k).mean())
               for k in range(n_classes) if (level.labels == k).any()]
    return float(np.mean(recalls)) if recalls else float("nan")


def _run_classes(summary: dict[str, Any], uri: str) -> list[str]:
    """Class names in output order: result.json ``classes``, else config.yaml ``data.emotion.classes``."""
    classes = summary.get("classes") or _emotion_settings(uri).get("classes")
    if not classes:
        raise PredictionsError(f"{uri}/result.json: an emotion run needs 'classes' (the class names in output order)")
    return [str(c) for c in classes]


def emotion_section(doc: Document, uri: str, write_png: WritePng, *, prefix: str = "run",
                    weighting: str | None = None, splits: Sequence[str] = SPLITS) -> None:
    """Append the emotion tables of the run in ``uri`` for each split with a predictions file.

    Per split: an overview (accuracy and UAR of each level), then for the run's modality the
    single-frame tables (face runs) and the full-video ones: confusion matrix (with a PNG),
    recall / precision, classification report; a file with several modalities (a fusion run)
    also gets the modality comparison. ``weighting`` defaults to the run's
    ``video_weighting`` (result.json) or ``mean``.
    """
    summary = _summary(uri) or {}
    classes = _run_classes(summary, uri)
    weighting = weighting or _weighting(uri, summary)
    subjects = summary.get("split") or {}
    doc.heading("Emotion: single frame and full video", 3)
    rule = ("the mean of its frame probabilities" if weighting == "mean"
            else "the average of its frame probabilities weighted by each frame's largest probability")
    doc.text(f"Classes in output order: {', '.join(classes)}. A video's prediction is the argmax of {rule}; "
             f"speech and fusion rows are one per recording.")
    found = False
    for split in splits:
        path = storage.join(uri, "predictions", f"{split}.parquet")
        if not storage.exists(path):
            continue
        found = True
        _split_tables(doc, read_predictions(path, len(classes)), classes, summary, split,
                      list(subjects.get(split) or []), weighting, prefix, write_png)
    if not found:
        doc.text(f"No predictions in {storage.join(uri, 'predictions')} ({', '.join(f'{s}.parquet' for s in splits)}).")


def emotion_cv_section(doc: Document, runs: Sequence[str], write_png: WritePng, *, prefix: str = "cv") -> None:
    """Append the pooled tables of an emotion leave-one-actor-out CV: every fold's test predictions
    (``<run>/predictions/test.parquet``) scored together, each video by the model that never saw
    its actor; the same tables as a run's test split."""
    first = runs[0]
    summary = _summary(first) or {}
    classes = _run_classes(summary, first)
    frames = pd.concat([read_predictions(storage.join(run, "predictions", "test.parquet"), len(classes))
                        for run in runs], ignore_index=True)
    _split_tables(doc, frames, classes, {**summary, "split_name": None}, f"pooled leave-one-actor-out ({len(runs)} folds) test",
                  [], _weighting(first, summary), prefix, write_png)


def _split_tables(doc: Document, frames: pd.DataFrame, classes: Sequence[str], summary: dict[str, Any], split: str,
                  subjects: list[str], weighting: str, prefix: str, write_png: WritePng) -> None:
    subjects = subjects or sorted(frames["subject"].astype(str).unique())
    where = _split_title(split, subjects, summary.get("split_name"))
    doc.heading(where[0].upper() + where[1:], 4)
    if frames.empty:
        doc.text("No predictions (the split is empty).")
        return
    present = _modality_order(frames["modality"])
    own = summary.get("modality")
    shown = [own] if own in present else present
    levels = {m: _levels(frames[frames["modality"] == m], m, weighting) for m in present}
    overview = [[m, lv.name, len(lv.labels), _accuracy(lv), _uar(lv, len(classes))]
                for m in present for lv in levels[m]]
    doc.table(Table(["modality", "level", "n", "accuracy", "uar"], overview,
                    caption=f"{where}: accuracy and UAR (mean per-class recall)"))
    if len(present) > 1:
        doc.table(Table.from_frame(modality_comparison(frames, weighting),
                                   caption=f"{where}: modality comparison (video-level accuracy)"))
    for modality in shown:
        label = where if len(present) == 1 else f"{where}, {modality}"
        for level in levels[modality]:
            png = _file_name(prefix, "emotion", split, modality, level.name, "confusion")
            _level_tables(doc, level, classes, label, png, write_png)


def _emotion_settings(uri: str) -> dict[str, Any]:
    """``data.emotion`` of the run's ``config.yaml`` ({} when there is none or it is unreadable)."""
    import yaml

    path = storage.join(uri, "config.yaml")
    if not storage.exists(path):
        return {}
    try:
        config = yaml.safe_load(storage.read_text(path))
        settings = config["data"]["emotion"]
    except (yaml.YAMLError, KeyError, TypeError):
        return {}
    return settings if isinstance(settings, dict) else {}


def _weighting(uri: str, summary: dict[str, Any]) -> str:
    """The run's video weighting: result.json ``video_weighting`` (or a fusion's ``weighting``), else
    config.yaml ``data.emotion.video_weighting``, else ``mean``."""
    value = (summary.get("video_weighting") or summary.get("weighting")
             or _emotion_settings(uri).get("video_weighting") or "mean")
    return value if value in WEIGHTINGS else "mean"


# -- several emotion runs ----------------------------------------------------------------------
def _mean_face(uri: str, summary: dict[str, Any]) -> bool | None:
    """result.json ``mean_face``, else config.yaml ``data.emotion.mean_face`` (None when unknown)."""
    value = summary.get("mean_face")
    if value is None:
        value = _emotion_settings(uri).get("mean_face")
    return value if isinstance(value, bool) else None


@dataclass
class _RunScore:
    name: str
    modality: str
    frame_accuracy: float
    video_accuracy: float
    n_videos: int
    mean_face: bool | None


def _run_score(uri: str, weighting: str | None = None) -> _RunScore | None:
    """Test scores of one emotion run from its predictions (None without a test file)."""
    summary = _summary(uri) or {}
    path = storage.join(uri, "predictions", "test.parquet")
    if not storage.exists(path):
        return None
    classes = _run_classes(summary, uri)
    frames = read_predictions(path, len(classes))
    modality = summary.get("modality") or (_modality_order(frames["modality"]) or ["-"])[0]
    part = frames[frames["modality"] == modality]
    if part.empty:
        return None
    levels = _levels(part, modality, weighting or _weighting(uri, summary))
    frame_acc = _accuracy(levels[0]) if levels[0].name == "single frame" else float("nan")
    name = str(summary.get("name") or uri.rstrip("/").rsplit("/", 1)[-1])
    mean_face = _mean_face(uri, summary) if modality == "face" else None
    return _RunScore(name, modality, frame_acc, _accuracy(levels[-1]), len(levels[-1].labels), mean_face)


def emotion_runs_section(doc: Document, uris: Sequence[str]) -> None:
    """Append a comparison of several emotion runs on their test splits (the per-run sections
    follow it), and the mean-face ablation when face runs differ in ``data.emotion.mean_face``."""
    scores = [s for s in (_run_score(u) for u in uris) if s is not None]
    if len(scores) < 2:
        return
    doc.heading("Emotion runs compared (test split)", 2)
    rows = [[s.name, s.modality, s.n_videos, s.frame_accuracy, s.video_accuracy,
             "-" if s.mean_face is None else ("yes" if s.mean_face else "no")] for s in scores]
    doc.table(Table(["run", "modality", "test videos", "single-frame accuracy", "full-video accuracy", "mean face"],
                    rows, caption="test split of each run: accuracy of single frames (face) and of full videos"))
    face = [s for s in scores if s.mean_face is not None]
    if len({s.mean_face for s in face}) == 2:
        settings = [f"{'with' if s.mean_face else 'without'} mean face" for s in face]
        ablation = [(f"{setting} ({s.name})" if settings.count(setting) > 1 else setting, s.video_accuracy, s.n_videos)
                    for setting, s in zip(settings, face, strict=True)]
        doc.table(Table.from_frame(mean_face_ablation(ablation),
                                   caption="mean-face ablation: full-video accuracy on the test split"))
