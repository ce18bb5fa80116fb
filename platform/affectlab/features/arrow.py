"""Extractor output rows -> Arrow tables readable by plain pandas / pyarrow (no Ray extension types).

A numpy array of shape ``(T, D)`` becomes ``list<list<float32>>`` (the element type follows the
array's dtype), ``(T,)`` becomes ``list<...>``, ``(T, H, W)`` three nested lists, and so on;
scalars become plain columns. Ray Data would otherwise turn ragged arrays into its own tensor
extension type, which plain pandas cannot read.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pyarrow as pa

__all__ = ["META_KEY", "nested_list_array", "read_meta", "rows_to_table", "to_numpy"]

META_KEY = b"affectlab"
_INT32_MAX = 2**31 - 1


def nested_list_array(arrays: Sequence[np.ndarray | None]) -> pa.Array:
    """Build nested Arrow lists from numpy arrays of equal ndim and dtype (None -> null)."""
    present = [a for a in arrays if a is not None]
    if not present:
        return pa.nulls(len(arrays))
    ndim, dtype = present[0].ndim, present[0].dtype
    for a in present:
        if a.ndim != ndim or a.dtype != dtype:
            raise TypeError(f"column mixes arrays of shape/dtype {present[0].shape}/{dtype} and {a.shape}/{a.dtype}")
    flat = np.concatenate([a.ravel() for a in present]) if present else np.empty(0, dtype)
    arr: pa.Array = pa.array(flat, type=pa.from_numpy_dtype(dtype))
    mask = np.array([a is None for a in arrays])
    for level in reversed(range(ndim)):
        lengths = [
            np.full(int(np.prod(a.shape[:level])), a.shape[level], dtype=np.int64) if a is not None else np.zeros(1, np.int64)
            for a in arrays
            if a is not None or level == 0
        ]
        offsets = np.concatenate([[0], np.cumsum(np.concatenate(lengths))])
        cls = pa.LargeListArray if offsets[-1] > _INT32_MAX else pa.ListArray
        offsets_arr = pa.array(offsets, type=pa.int64() if cls is pa.LargeListArray else pa.int32())
        level_mask = pa.array(mask) if level == 0 and mask.any() else None
        arr = cls.from_arrays(offsets_arr, arr, mask=level_mask)
    return arr


def _column(values: list[Any]) -> pa.Array:
    if any(isinstance(v, np.ndarray) and v.ndim > 0 for v in values):
        return nested_list_array([v if v is None else np.asarray(v) for v in values])
    return pa.array([v.item() if isinstance(v, np.generic) else v for v in values])


def rows_to_table(rows: Sequence[Mapping[str, Any]], metadata: Mapping[str, Any] | None = None) -> pa.Table:
    """Turn output rows (dicts with the same keys) into a table; ``metadata`` goes in the schema.

    Args:
        rows: Extractor output rows; numpy arrays become nested list columns.
        metadata: JSON-serialisable mapping stored under the schema metadata key ``affectlab``.
    """
    names = list(rows[0]) if rows else []
    table = pa.table({name: _column([r.get(name) for r in rows]) for name in names})
    if metadata is not None:
        table = table.replace_schema_metadata({META_KEY: json.dumps(metadata, sort_keys=True).encode()})
    return table


def read_meta(schema: pa.Schema) -> dict[str, Any]:
    """The ``affectlab`` metadata mapping stored in a schema (empty when absent)."""
    raw = (schema.metadata or {}).get(META_KEY)
    return json.loads(raw) if raw else {}


def to_numpy(value: Any, dtype: Any = np.float32) -> np.ndarray:
    """A nested-list cell (as read by pyarrow's ``to_pylist`` or pandas) as a numpy array.

    ``(T, D)`` cells come back as ``(T, D)`` arrays; an empty sequence as shape ``(0,)``.
    """
    if isinstance(value, np.ndarray) and value.dtype != object:
        return value.astype(dtype, copy=False)
    if isinstance(value, np.ndarray | list | tuple) and len(value) and isinstance(value[0], np.ndarray | list | tuple):
        return np.stack([to_numpy(v, dtype) for v in value])
    return np.asarray(list(value) if value is not None else [], dtype=dtype)
