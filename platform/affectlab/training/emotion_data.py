"""The data of ``data.task: emotion``: labelled clips, the actor split, frame selection, Ray Datasets.

From a preprocessing output (``data.features``):

1. **Clips**: the clip labels (``labels/clips``, written by ``affectlab preprocess``) joined to the
   feature set's index (``face`` crops, or ``egemaps_functionals`` / ``compare_functionals``).
   RAVDESS names ``fearful`` and ``surprised`` read as the seed's ``fear`` and ``surprise``;
   ``data.emotion.drop`` (neutral) is left out; any other emotion outside ``classes``, or a clip
   without an emotion, is an error naming the clips.
2. **Split**: by subject, ``data.emotion.split`` (seed 001: actors 1-18 / 19-20 / 21-24). A subject
   named in the split without any clip is an error naming it and its part.
3. **Frames** (face): per video ``skip_first_frames`` are dropped and every ``frame_step``-th frame
   kept (seed 001: ``count % 3 == 0 and count > 20``); with ``balance_frames`` each video of a part
   gives the part's minimum number of frames, sampled at random (seeded per video). A video left
   with no frame is dropped and listed in ``dropped``.
4. **Datasets**: per part a Ray Dataset (or, for the in-process runner, numpy arrays read here) of single frames (``image`` uint8 S x S[x3],
   ``label``, ``sample_id``, ``frame``), or of recordings (``x`` D float32, ``label``,
   ``sample_id``, ``frame`` = -1) for speech, streamed from the Parquet files.
   With ``data.emotion.cache`` (default) each part is materialised once in Ray's object store
   (spilled to disk when it is full), so epochs do not re-read and re-select the Parquet rows.
5. **Statistics of the training part**: the mean face (S x S[x3] in [0, 1]) and, for speech, the
   per-feature mean and standard deviation, each computed by streaming the training part once.
   Speech follows ``data.normalisation``: ``per_speaker`` (default) first z-scores every recording
   with its own speaker's statistics over all of that speaker's recordings (unlabelled, so safe
   for held-out speakers), then with the training part's; ``global`` only the latter; ``none``
   neither.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from affectlab.errors import DatasetError
from affectlab.features import io
from affectlab.features.crops import cell_array
from affectlab.features.normalize import apply_stats, subject_stats
from affectlab.training.config import ExperimentConfig, SubjectSplit, with_updates
from affectlab.training.runners import InMemoryPart

__all__ = ["ALIASES", "EmotionData", "InMemoryPart", "PARTS", "labelled_clips", "load_emotion_data", "resolve_split",
           "select_frames"]

PARTS = ("train", "val", "test")
ALIASES = {"fearful": "fear", "surprised": "surprise"}  # RAVDESS names -> seed 001's names
SPEECH_SETS = ("egemaps_functionals", "compare_functionals")


@dataclass
class EmotionData:
    """Everything a training of ``data.task: emotion`` needs (see the module docstring)."""

    classes: tuple[str, ...]
    clips: dict[str, list[dict[str, Any]]]  # part -> [{sample_id, subject, label, frames}]
    datasets: dict[str, Any]  # part -> Ray Dataset or InMemoryPart (test may be absent)
    column: str
    model_kwargs: dict[str, Any]
    extra: dict[str, Any]
    frames_per_video: dict[str, int] = field(default_factory=dict)
    dropped: list[dict[str, str]] = field(default_factory=list)

    def subjects(self) -> dict[str, str]:
        """``sample_id -> subject`` over every part."""
        return {c["sample_id"]: c["subject"] for part in self.clips.values() for c in part}

    def class_counts(self, part: str = "train") -> np.ndarray:
        """Examples per class in ``part`` (frames for face, recordings for speech)."""
        counts = np.zeros(len(self.classes), dtype=np.int64)
        for clip in self.clips.get(part, []):
            counts[clip["label"]] += max(1, len(clip["frames"]))
        return counts

    def summary(self) -> dict[str, Any]:
        """Counts for ``result.json``: videos and examples per part, frames per video, dropped clips."""
        return {
            "classes": list(self.classes),
            "videos": {p: len(c) for p, c in self.clips.items()},
            "examples": {p: int(self.class_counts(p).sum()) for p in self.clips},
            "frames_per_video": self.frames_per_video,
            "dropped": self.dropped,
        }


def _feature_set(config: ExperimentConfig) -> str:
    s = config.data.emotion
    name = config.data.feature_set
    if s.modality == "speech" and name not in SPEECH_SETS:
        raise DatasetError(f"data.emotion.modality=speech needs a functionals set as data.feature_set "
                           f"(one of {list(SPEECH_SETS)}), got {name!r}")
    if s.modality == "face" and name != "face":
        raise DatasetError(f"data.emotion.modality=face reads the 'face' crop set; set data.feature_set: face "
                           f"(got {name!r})")
    return name


def _emotion_label(emotion: Any, classes: tuple[str, ...], drop: tuple[str, ...]) -> int | None | str:
    """Class index, None (dropped) or the problem as a string."""
    if emotion is None:
        return "no emotion label"
    name = ALIASES.get(str(emotion), str(emotion))
    if name in drop or emotion in drop:
        return None
    if name not in classes:
        return f"emotion {emotion!r} is not in data.emotion.classes {list(classes)} nor in drop {list(drop)}"
    return classes.index(name)


def resolve_split(config: ExperimentConfig) -> tuple[ExperimentConfig, str | None]:
    """``config`` with ``data.emotion.split`` as subject lists, and the split's name when the config
    named one of the dataset card's splits (stored by ``affectlab preprocess`` in ``splits.json``).

    Raises:
        DatasetError: The named split is not among the card's splits (the known names listed).
    """
    name = config.data.emotion.split
    if not isinstance(name, str):
        return config, None
    splits = io.load_splits(config.data.features)
    if name not in splits:
        known = ", ".join(sorted(splits)) or "none (add `splits:` to the dataset card and run `affectlab preprocess` again)"
        raise DatasetError(f"data.emotion.split {name!r}: no such split in the dataset card of {config.data.features}; "
                           f"its splits: {known}")
    parts = SubjectSplit(**splits[name])
    return with_updates(config, {"data.emotion.split": parts.model_dump(mode="json")}), name


def labelled_clips(config: ExperimentConfig, index: pa.Table, clip_labels: pa.Table) -> dict[str, list[dict[str, Any]]]:
    """The clips of each split part with their class index (steps 1-2 of the module docstring).

    Raises:
        DatasetError: Clips without labels or with an unknown emotion (named), or a subject of the
            split without clips.
    """
    s = config.data.emotion
    if isinstance(s.split, str):
        raise TypeError(f"labelled_clips needs subject lists, not the split name {s.split!r}: call resolve_split first")
    labels = dict(zip(clip_labels.column("sample_id").to_pylist(), clip_labels.column("emotion").to_pylist(),
                      strict=True))
    part_of = {subject: part for part in PARTS for subject in getattr(s.split, part)}
    parts: dict[str, list[dict[str, Any]]] = {p: [] for p in PARTS}
    problems = []
    n_frames = index.column("n_frames").to_pylist() if "n_frames" in index.column_names else [1] * index.num_rows
    for sid, subject, n in zip(index.column("sample_id").to_pylist(), index.column("subject").to_pylist(), n_frames,
                               strict=True):
        part = part_of.get(subject)
        if part is None:
            continue
        label = _emotion_label(labels.get(sid), s.classes, s.drop) if sid in labels else "not in labels/clips"
        if isinstance(label, str):
            problems.append(f"{sid}: {label}")
        elif label is not None:
            parts[part].append({"sample_id": sid, "subject": subject, "label": label, "n_frames": int(n)})
    if problems:
        shown = "; ".join(problems[:10]) + (f"; ... ({len(problems)} in all)" if len(problems) > 10 else "")
        raise DatasetError(f"{config.data.features}: {len(problems)} clip(s) cannot be labelled: {shown}")
    present = {c["subject"] for clips in parts.values() for c in clips}
    missing = [f"{subject} ({part})" for subject, part in part_of.items() if subject not in present]
    if missing:
        found = sorted(set(index.column("subject").to_pylist()))
        raise DatasetError(f"data.emotion.split names subject(s) without any labelled clip in feature set "
                           f"{config.data.feature_set!r}: {', '.join(missing)}; subjects present: {found}. "
                           "Pass a split that fits the corpus (e.g. --set data.emotion.split.test=[...])")
    return parts


def _video_seed(seed: int, sample_id: str) -> int:
    return (seed * 1_000_003 + zlib.crc32(sample_id.encode())) % (2**32)


def select_frames(clips: list[dict[str, Any]], *, skip: int, step: int, balance: bool,
                  seed: int) -> tuple[int, list[dict[str, str]]]:
    """Fill each clip's ``frames`` (step 3 of the module docstring); returns the frames per video
    (the part's minimum when balancing, else 0) and the dropped clips with the reason."""
    dropped, kept = [], []
    for clip in clips:
        clip["frames"] = np.arange(skip, clip["n_frames"], step)
        if len(clip["frames"]) == 0:
            dropped.append({"sample_id": clip["sample_id"],
                            "reason": f"{clip['n_frames']} frames: none left after skipping {skip}"})
        else:
            kept.append(clip)
    clips[:] = kept
    if not balance or not clips:
        return 0, dropped
    k = min(len(c["frames"]) for c in clips)
    for clip in clips:
        rng = np.random.default_rng(_video_seed(seed, clip["sample_id"]))
        clip["frames"] = np.sort(rng.choice(clip["frames"], size=k, replace=False))
    return k, dropped


class _FrameRows:
    """``map_batches``: whole-video rows (T x S x S crops) -> the selected single frames."""

    def __init__(self, column: str, clips: list[dict[str, Any]]) -> None:
        self.column = column
        self.side = int(column.rsplit("_", 1)[1])
        self.plan = {c["sample_id"]: (np.asarray(c["frames"]), c["label"]) for c in clips}

    def __call__(self, batch: pa.Table) -> dict[str, np.ndarray]:
        images, labels, ids, frames = [], [], [], []
        for i, sid in enumerate(batch.column("sample_id").to_pylist()):
            chosen, label = self.plan[sid]
            video = cell_array(batch, self.column, i, np.uint8)
            chosen = chosen[chosen < len(video)]
            images.append(video[chosen])
            labels += [label] * len(chosen)
            ids += [sid] * len(chosen)
            frames.append(chosen)
        if not images:
            return {"image": np.zeros((0, self.side, self.side), np.uint8), "label": np.zeros(0, np.int64),
                    "sample_id": np.zeros(0, str), "frame": np.zeros(0, np.int32)}
        return {"image": np.concatenate(images), "label": np.asarray(labels, np.int64),
                "sample_id": np.asarray(ids), "frame": np.concatenate(frames).astype(np.int32)}


class _VectorRows:
    """``map_batches``: functionals rows (1 x D) -> ``x`` (D,) float32 per recording, z-scored with
    its speaker's statistics when ``speakers`` (subject -> (mean, std)) is given."""

    def __init__(self, clips: list[dict[str, Any]], speakers: dict[str, tuple[np.ndarray, np.ndarray]] | None) -> None:
        self.labels = {c["sample_id"]: c["label"] for c in clips}
        self.subjects = {c["sample_id"]: c["subject"] for c in clips}
        self.speakers = speakers

    def __call__(self, batch: pa.Table) -> dict[str, np.ndarray]:
        ids = batch.column("sample_id").to_pylist()
        rows = [cell_array(batch, "features", i, np.float32).reshape(1, -1) for i in range(len(ids))]
        if self.speakers is not None:
            rows = [apply_stats(r, *self.speakers[self.subjects[sid]]) for r, sid in zip(rows, ids, strict=True)]
        x = np.concatenate(rows)
        return {"x": x, "label": np.asarray([self.labels[s] for s in ids], np.int64), "sample_id": np.asarray(ids),
                "frame": np.full(len(ids), -1, np.int32)}


def _crop_column(config: ExperimentConfig, columns: list[str]) -> str:
    sizes = sorted(int(c.split("_", 1)[1]) for c in columns if c.startswith("face_") and c[5:].isdigit())
    if not sizes:
        raise DatasetError(f"{config.data.features}: the face set has no face_<size> column (columns: {columns})")
    want = config.data.emotion.crop_size
    if want is None:
        return f"face_{sizes[-1]}"
    if want not in sizes:
        raise DatasetError(f"data.emotion.crop_size={want} is not stored; the face set has sizes {sizes}")
    return f"face_{want}"


def speaker_statistics(config: ExperimentConfig, feature_set: str) -> dict[str, tuple[np.ndarray, np.ndarray]] | None:
    """Speech with ``data.normalisation: per_speaker``: each subject's functionals mean and std over
    all of its recordings in the set (no labels used; see :mod:`affectlab.features.normalize` for
    why this is leave-one-speaker-out safe); None otherwise."""
    if config.data.emotion.modality != "speech" or config.data.normalisation != "per_speaker":
        return None
    stats = subject_stats(config.data.features, feature_set)
    return {subject: stats.subject(subject) for subject in stats.mean}


def _row_mapper(config: ExperimentConfig, column: str, clips: list[dict[str, Any]],
                speakers: dict[str, tuple[np.ndarray, np.ndarray]] | None) -> tuple[Any, list[str], int]:
    """The per-batch function, the columns it reads and the rows per batch, for one part."""
    if config.data.emotion.modality == "face":
        return _FrameRows(column, clips), ["sample_id", column], 4
    return _VectorRows(clips, speakers), ["sample_id", "features"], 256


def _part_dataset(config: ExperimentConfig, feature_set: str, column: str, clips: list[dict[str, Any]],
                  speakers: dict[str, tuple[np.ndarray, np.ndarray]] | None) -> Any:
    """A lazy Ray Dataset of the part's examples, streamed from Parquet."""
    mapper, columns, rows = _row_mapper(config, column, clips, speakers)
    ds = io.read_dataset(config.data.features, feature_set, columns=columns,
                         sample_ids=[c["sample_id"] for c in clips])
    ds = ds.map_batches(mapper, batch_format="pyarrow", batch_size=rows)
    return ds.materialize() if config.data.emotion.cache else ds


def _part_arrays(config: ExperimentConfig, feature_set: str, column: str, clips: list[dict[str, Any]],
                 speakers: dict[str, tuple[np.ndarray, np.ndarray]] | None) -> InMemoryPart:
    """The part's examples read in this process (in-process runner), a few recordings at a time."""
    mapper, columns, rows = _row_mapper(config, column, clips, speakers)
    pieces = [mapper(t) for t in io.iter_set_batches(config.data.features, feature_set, columns=columns,
                                                     sample_ids=[c["sample_id"] for c in clips], batch_rows=rows)]
    arrays = {k: np.concatenate([p[k] for p in pieces]) for k in pieces[0]}
    order = np.lexsort((arrays["frame"], arrays["sample_id"]))  # independent of how the files were committed
    return InMemoryPart({k: v[order] for k, v in arrays.items()})


def _train_statistics(config: ExperimentConfig, dataset: Any) -> dict[str, Any]:
    """Mean face (face) or feature mean / std (speech) of the training part, streamed once."""
    s = config.data.emotion
    total, sq, n = None, None, 0
    key = "image" if s.modality == "face" else "x"
    for batch in dataset.iter_batches(batch_size=512, batch_format="numpy"):
        x = batch[key].astype(np.float64)
        if s.modality == "face":
            x = x / 255.0
        total = x.sum(axis=0) if total is None else total + x.sum(axis=0)
        sq = (x**2).sum(axis=0) if sq is None else sq + (x**2).sum(axis=0)
        n += len(x)
    if n == 0:
        raise DatasetError("the training part has no examples")
    mean = total / n
    if s.modality == "face":
        shape = list(mean.shape)
        return {"mean_face": mean.astype(np.float32).tolist() if s.mean_face else None, "image_shape": shape}
    std = np.sqrt(np.maximum(sq / n - mean**2, 0.0))
    std = np.where(std > 1e-8, std, 1.0)
    if config.data.normalisation == "none":
        return {"feature_mean": None, "feature_std": None, "input_dim": int(mean.shape[0])}
    return {"feature_mean": mean.astype(np.float32).tolist(), "feature_std": std.astype(np.float32).tolist(),
            "input_dim": int(mean.shape[0])}


def load_emotion_data(config: ExperimentConfig, *, in_process: bool = False) -> EmotionData:
    """Build :class:`EmotionData` for ``config`` (see the module docstring).

    ``in_process``: read the parts into this process's memory (:class:`InMemoryPart`) instead of
    building Ray Datasets; for the in-process runner (sweeps, CV trials, small corpora).

    Raises:
        DatasetError / StorageError: Missing sets or labels, unlabelled clips, a split that does
            not fit the corpus, an empty part.
    """
    config, _ = resolve_split(config)
    s = config.data.emotion
    out = config.data.features
    feature_set = _feature_set(config)
    index = io.set_index(out, feature_set, columns=("sample_id", "subject", "n_frames"))
    clips = labelled_clips(config, index, io.load_clip_labels(out))
    column = "features"
    frames_per_video: dict[str, int] = {}
    dropped: list[dict[str, str]] = []
    if s.modality == "face":
        column = _crop_column(config, io.set_columns(out, feature_set))
        for part in PARTS:
            k, lost = select_frames(clips[part], skip=s.skip_first_frames, step=s.frame_step,
                                    balance=s.balance_frames, seed=config.data.split_seed)
            frames_per_video[part] = k
            dropped += [{**d, "part": part} for d in lost]
    else:
        for part in PARTS:
            for clip in clips[part]:
                clip["frames"] = np.asarray([-1])
    for part in ("train", "val"):
        if not clips[part]:
            raise DatasetError(f"the {part} part of data.emotion.split has no usable clip "
                               f"(subjects {list(getattr(s.split, part))})")
    source = _part_arrays if in_process else _part_dataset
    speakers = speaker_statistics(config, feature_set)
    datasets = {part: source(config, feature_set, column, clips[part], speakers) for part in PARTS if clips[part]}
    stats = _train_statistics(config, datasets["train"])
    n_classes = len(s.classes)
    if s.modality == "face":
        shape = stats.pop("image_shape")
        model_kwargs = {"n_classes": n_classes, "input_size": s.input_size or shape[0],
                        "in_channels": 3 if len(shape) == 3 else 1}
    else:
        model_kwargs = {"n_classes": n_classes, "input_dim": stats.pop("input_dim")}
    return EmotionData(classes=tuple(s.classes), clips=clips, datasets=datasets, column=column,
                       model_kwargs=model_kwargs, extra=stats, frames_per_video=frames_per_video, dropped=dropped)
