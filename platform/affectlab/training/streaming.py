"""Streaming training data for frame sequences (mouth ROI, face crops): from the store to padded,
masked batches without reading the corpus whole anywhere.

* The split is planned from the set's small columns (``sample_id, subject, n_frames``:
  :func:`affectlab.features.io.set_index`), never from the tensors.
* Each part (train / val / test) is a lazy Ray Dataset over the set's Parquet files
  (:func:`affectlab.features.io.read_dataset`): only the needed columns are read, rows of the
  other parts are dropped in Arrow batches, and the nested-list frame column becomes a tensor
  column (one ``(T, H, W[, C])`` array per row, T varying) in a streaming ``map_batches``.
* Ray Train splits ``train`` across the workers; each worker iterates its shard in batches and
  the task pads them with :func:`pad_sequences` (``x`` (B, T_max, ...), ``mask`` (B, T_max)).

The driver holds only the index and the lazy plans; a worker holds the blocks in flight, the
local shuffle buffer and one batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from affectlab.errors import DatasetError
from affectlab.training.splits import Split, plan_split

__all__ = ["SequenceData", "pad_sequences", "sequence_datasets"]


def pad_sequences(cells: Sequence[np.ndarray], dtype: Any = np.float32) -> tuple[np.ndarray, np.ndarray]:
    """Pad variable-length sequences ``(T_i, ...)`` to ``(B, T_max, ...)``; mask (B, T_max) marks
    the real steps (left-aligned).

    Raises:
        DatasetError: The sequences' per-step shapes differ (names both shapes).
    """
    if not len(cells):
        return np.zeros((0, 0), dtype), np.zeros((0, 0), bool)
    arrays = [np.asarray(c) for c in cells]
    step_shape = arrays[0].shape[1:]
    for a in arrays[1:]:
        if a.shape[1:] != step_shape:
            raise DatasetError(f"sequences in one batch have different step shapes: {step_shape} and {a.shape[1:]}")
    longest = max(a.shape[0] for a in arrays)
    out = np.zeros((len(arrays), longest, *step_shape), dtype)
    mask = np.zeros((len(arrays), longest), bool)
    for i, a in enumerate(arrays):
        out[i, : a.shape[0]] = a
        mask[i, : a.shape[0]] = True
    return out, mask


class _ToTensorColumn:
    """``map_batches`` function: a nested-list column as a variable-shaped tensor column."""

    def __init__(self, column: str, dtype: str) -> None:
        self.column, self.dtype = column, dtype

    def __call__(self, batch: pa.Table) -> pa.Table:
        from ray.data.extensions import ArrowVariableShapedTensorArray

        from affectlab.features.crops import column_cells

        cells = column_cells(batch, self.column, np.dtype(self.dtype))
        index = batch.schema.get_field_index(self.column)
        return batch.set_column(index, self.column, ArrowVariableShapedTensorArray.from_numpy(cells))


@dataclass(frozen=True)
class SequenceData:
    """A planned split and one lazy Ray Dataset per part (``train``, ``val`` and, with test
    subjects, ``test``) with columns ``sample_id, subject, n_frames`` and the frame column."""

    split: Split
    datasets: dict[str, Any]
    counts: dict[str, int]


def sequence_datasets(data: Any, column: str, *, dtype: str = "uint8") -> SequenceData:
    """Stream a frame-sequence set (``data.feature_set``, e.g. ``mouth``) split by subject.

    Args:
        data: The experiment's ``DataConfig`` (store location, feature set, test subjects,
            validation settings and ``split_seed``).
        column: The frame column (``mouth``, ``face_112``...).
        dtype: The frames' numpy dtype.

    Raises:
        DatasetError: The set lacks ``column``, or a part of the split has no recording.
    """
    from affectlab.features import io

    available = io.set_columns(data.features, data.feature_set)
    if column not in available:
        raise DatasetError(f"feature set {data.feature_set!r} of {data.features!r} has no column {column!r}; "
                           f"its columns: {', '.join(available)}")
    index = io.set_index(data.features, data.feature_set)
    sample_ids = [str(s) for s in index.column("sample_id").to_pylist()]
    subjects = [str(s) for s in index.column("subject").to_pylist()]
    split = plan_split(data, sample_ids, subjects)
    parts = {part: [sample_ids[i] for i in idx]
             for part, idx in split.part_indices(sample_ids, subjects).items()}
    if not split.test:
        del parts["test"]
    empty = [p for p, ids in parts.items() if not ids]
    if empty:
        raise DatasetError(f"no recording of {data.features!r} ({data.feature_set}) in part(s) {empty} of {split}")
    columns = ["sample_id", "subject", "n_frames", column]
    datasets = {
        part: io.read_dataset(data.features, data.feature_set, columns=columns, sample_ids=ids)
        .map_batches(_ToTensorColumn(column, dtype), batch_format="pyarrow")
        for part, ids in parts.items()
    }
    return SequenceData(split, datasets, {p: len(ids) for p, ids in parts.items()})
