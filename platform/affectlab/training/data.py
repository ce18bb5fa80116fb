"""From preprocessed Parquet to padded, masked training windows.

The one place that knows the preprocessing layout (see :mod:`affectlab.training.corpus`):
:func:`load_corpus` reads ``<features>/features/<feature_set>/`` and ``<features>/labels/<set>/``,
joins them on ``sample_id`` and returns per-recording arrays (:class:`Corpus`). The rest is
layout-free:

* :func:`prepare` picks the target column, splits by subject (:mod:`~affectlab.training.splits`),
  normalises features (``per_speaker``: each subject's own mean/std over its frames, an
  unsupervised statistic; ``global``: mean/std of the *training* frames only; ``none``) and cuts
  every recording into consecutive windows of at most ``max_steps`` steps.
* :class:`Windows` holds them padded: ``x`` (N, S, D) float32 (or (N, S) for F0 input), ``y``
  (N, S) int64, ``mask`` (N, S) bool (left-aligned), plus ``sample_id`` and ``subject`` per
  window. :meth:`Windows.to_arrow` gives the table a Ray Dataset is built from.

Features and labels are aligned on the label frame rate: when the features run faster (100 Hz
LLDs vs 25 Hz AU labels) they are averaged over each label frame; the shorter of the two
sequences sets the length.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from affectlab.errors import DatasetError
from affectlab.training.config import ExperimentConfig
from affectlab.training.corpus import Corpus, load_corpus, target_column
from affectlab.training.splits import Split, plan_split

__all__ = ["Corpus", "Prepared", "Windows", "batches", "load_corpus", "prepare", "windows_from_arrow"]


@dataclass(frozen=True)
class Windows:
    """Padded windows: x (N, S, D) or (N, S), y (N, S), mask (N, S), ids per window."""

    x: np.ndarray
    y: np.ndarray
    mask: np.ndarray
    sample_id: np.ndarray
    subject: np.ndarray

    def __len__(self) -> int:
        return int(self.x.shape[0])

    def select(self, index: np.ndarray) -> Windows:
        """Windows at ``index`` (an integer or boolean array)."""
        return Windows(self.x[index], self.y[index], self.mask[index], self.sample_id[index], self.subject[index])

    def to_arrow(self) -> pa.Table:
        """Tensor columns ``x``, ``y``, ``mask`` and plain ``sample_id`` / ``subject`` columns."""
        from ray.data.extensions import ArrowTensorArray

        return pa.table(
            {
                "x": ArrowTensorArray.from_numpy(self.x),
                "y": ArrowTensorArray.from_numpy(self.y),
                "mask": ArrowTensorArray.from_numpy(self.mask),
                "sample_id": pa.array(self.sample_id.astype(str)),
                "subject": pa.array(self.subject.astype(str)),
            }
        )


def windows_from_arrow(table: pa.Table) -> Windows:
    """Inverse of :meth:`Windows.to_arrow`."""
    cols = {name: table.column(name).combine_chunks() for name in ("x", "y", "mask")}
    arrays = {name: col.to_numpy_ndarray() for name, col in cols.items()}
    return Windows(
        arrays["x"],
        arrays["y"],
        arrays["mask"].astype(bool),
        np.asarray(table.column("sample_id").to_pylist()),
        np.asarray(table.column("subject").to_pylist()),
    )


@dataclass(frozen=True)
class Prepared:
    """Everything a training needs from the data.

    ``model_kwargs`` are the builder keywords that come from the data (``input_dim`` or the
    vocabulary sizes and SOS/EOS ids); ``class_counts`` are counted on the training frames.
    """

    train: Windows
    val: Windows
    test: Windows | None
    split: Split
    model_kwargs: dict[str, Any]
    class_counts: np.ndarray
    num_classes: int
    info: dict[str, Any] = field(default_factory=dict)


def prepare(config: ExperimentConfig, corpus: Corpus | None = None) -> Prepared:
    """Split, normalise and window the data of ``config`` (loading it unless ``corpus`` is given).

    Raises:
        DatasetError: Missing target column, too few subjects, or no training windows.
        SubjectLeakageError: A subject would be shared between train, validation and test.
    """
    data = config.data
    corpus = corpus if corpus is not None else load_corpus(data)
    if data.subjects is not None:
        corpus = corpus.restrict(data.subjects)
    column = target_column(corpus, data.task, data.target.au, data.target.kind)
    # data.split_seed (not training.seed) picks the validation subjects, preferring subjects whose
    # target labels hold two classes (class presence read from the label arrays only)
    split = plan_split(data, corpus.sample_ids, corpus.subjects, corpus.labels[column])
    x = _normalised(corpus, split, data.normalisation)
    ys = corpus.labels[column]
    parts = split.part_indices(corpus.sample_ids, corpus.subjects)
    made = {
        part: _window_all([x[i] for i in idx], [ys[i] for i in idx], [corpus.sample_ids[i] for i in idx],
                          [corpus.subjects[i] for i in idx], data.max_steps, corpus.is_token_input)
        for part, idx in parts.items()
    }
    if len(made["train"]) == 0 or len(made["val"]) == 0:
        raise DatasetError(f"no training or validation windows (split: {split})")
    num_classes = corpus.num_classes(column)
    train_y = made["train"].y[made["train"].mask]
    counts = np.bincount(train_y[train_y >= 0].ravel(), minlength=num_classes)
    return Prepared(
        train=made["train"],
        val=made["val"],
        test=made["test"] if split.test else None,
        split=split,
        model_kwargs=corpus.model_kwargs(data.task),
        class_counts=counts,
        num_classes=num_classes,
        info={"target_column": column, "feature_names": list(corpus.feature_names),
              "frame_rate_hz": corpus.frame_rate_hz, "vocab": corpus.vocab},
    )


def _normalised(corpus: Corpus, split: Split, mode: str) -> list[np.ndarray]:
    """Feature sequences normalised per speaker, with training statistics, or unchanged.

    Uses the per-subject statistics written by preprocessing when present (exact for pooled
    frames too: averaging commutes with the affine normalisation), else computes them here.
    """
    if mode == "none" or (corpus.is_token_input and mode == "global"):
        return list(corpus.features)
    if corpus.is_token_input:
        return _pitch_normalised(corpus)
    from affectlab.features.normalize import apply_stats, global_stats

    subjects = sorted(set(corpus.subjects))
    if corpus.stats is not None and set(subjects) <= set(corpus.stats.mean):
        per_subject = {s: corpus.stats.subject(s) for s in subjects}
        pooled = global_stats(corpus.stats, split.train) if mode == "global" else None
    else:
        per_subject = {s: _stats([x for x, t in zip(corpus.features, corpus.subjects, strict=True) if t == s]) for s in subjects}
        train = [x for x, s, sid in zip(corpus.features, corpus.subjects, corpus.sample_ids, strict=True)
                 if s in split.train and sid not in set(split.val_samples)]
        pooled = _stats(train) if mode == "global" else None
    out = []
    for x, s in zip(corpus.features, corpus.subjects, strict=True):
        mean, std = pooled if pooled is not None else per_subject[s]
        out.append(np.nan_to_num(apply_stats(x, mean, std)))
    return out


PITCH_REFERENCE_HZ = 150.0


def _pitch_normalised(corpus: Corpus) -> list[np.ndarray]:
    """F0 tokens of each speaker transposed so that its median voiced F0 is 150 Hz.

    The token analogue of per-speaker normalisation: F0 in Hz (from ``ID_to_F0``) is scaled by
    ``150 / median_s`` (a shift in semitones), clipped to the vocabulary's range and quantized
    to the nearest F0 token again; special tokens (SOS/EOS/UNVOICED) stay as they are.
    """
    values = np.asarray(corpus.vocab["f0_values"], dtype=np.float64)
    numeric = np.flatnonzero(~np.isnan(values))
    out = []
    medians = {}
    for subject in set(corpus.subjects):
        hz = np.concatenate([values[x] for x, s in zip(corpus.features, corpus.subjects, strict=True) if s == subject])
        medians[subject] = float(np.nanmedian(hz)) if np.isfinite(hz).any() else PITCH_REFERENCE_HZ
    for x, subject in zip(corpus.features, corpus.subjects, strict=True):
        hz = values[x] * (PITCH_REFERENCE_HZ / medians[subject])
        nearest = numeric[np.abs(values[numeric][None, :] - np.nan_to_num(hz)[:, None]).argmin(axis=1)]
        out.append(np.where(np.isnan(hz), x, nearest).astype(np.int64))
    return out


def _stats(seqs: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    frames = np.concatenate([np.asarray(x, dtype=np.float64) for x in seqs], axis=0)
    return np.nanmean(frames, axis=0), np.nanstd(frames, axis=0)


def _window_all(
    xs: list[np.ndarray], ys: list[np.ndarray], sids: list[str], subjects: list[str], steps: int, tokens: bool
) -> Windows:
    """Cut every recording into windows of at most ``steps`` and pad them.

    Trailing unlabelled steps (-1) are dropped; unlabelled steps inside keep -1 in ``y`` (the
    tasks leave them out of losses and metrics); ``mask`` marks the window's steps (left-aligned).
    """
    ends = [_labelled_length(y) for y in ys]
    cuts = [(i, start, min(start + steps, ends[i])) for i in range(len(xs)) for start in range(0, ends[i], steps)]
    n = len(cuts)
    feat_shape = (n, steps) if tokens else (n, steps, xs[0].shape[1] if xs else 0)
    x = np.zeros(feat_shape, dtype=np.int64 if tokens else np.float32)
    y = np.zeros((n, steps), dtype=np.int64)
    mask = np.zeros((n, steps), dtype=bool)
    for k, (i, a, b) in enumerate(cuts):
        x[k, : b - a] = xs[i][a:b]
        y[k, : b - a] = ys[i][a:b]
        mask[k, : b - a] = True
    return Windows(x, y, mask, np.asarray([sids[i] for i, _, _ in cuts]), np.asarray([subjects[i] for i, _, _ in cuts]))


def _labelled_length(y: np.ndarray) -> int:
    labelled = np.flatnonzero(np.asarray(y) >= 0)
    return int(labelled[-1]) + 1 if labelled.size else 0


def batches(windows: Windows, batch_size: int, *, seed: int | None = None) -> Iterator[dict[str, np.ndarray]]:
    """Mini-batches as dicts of arrays (``x``, ``y``, ``mask``), shuffled when ``seed`` is given."""
    order = np.arange(len(windows))
    if seed is not None:
        order = np.random.default_rng(seed).permutation(len(windows))
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        yield {"x": windows.x[idx], "y": windows.y[idx], "mask": windows.mask[idx]}

