"""Read the frame-level labels a manifest row points to, as one DataFrame per recording.

Two formats (the row's ``labels_format``):

- ``csv``: ``labels_path`` is a CSV with an integer ``frame`` column (0-based) and one numeric
  column per label, e.g. ``AU01 ... AU26`` intensities (0-5) or ``valence, arousal``. Empty
  cells are missing (NaN).
- ``abaw_au``: the ABAW / Aff-Wild2 text files: ``labels_path`` (AU_Set), ``va_labels_path``
  (VA_Set) and ``expr_labels_path`` (EXPR_Set), any of which may be absent. Each has a header
  line and then one line per video frame (line *n* after the header is frame *n - 1*). ``-1``
  marks an unannotated frame in AU and EXPR files, ``-5`` in VA files (-1 is a valid valence).
  Columns: the AU names as ``AU01``-style names, ``valence``, ``arousal``, and ``expression``
  (the class index into :data:`EXPRESSIONS`).

The result is indexed by frame number (``int64``, named ``frame``), sorted, with ``float64``
columns and NaN wherever a frame is unannotated or absent from one of the files.
"""

from __future__ import annotations

import io
import re
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

from affectlab import storage
from affectlab.errors import DatasetError

__all__ = ["EXPRESSIONS", "LABEL_FORMATS", "normalise_au_name", "read_frame_labels"]

EXPRESSIONS = ("Neutral", "Anger", "Disgust", "Fear", "Happiness", "Sadness", "Surprise", "Other")
LABEL_FORMATS = ("csv", "abaw_au")
_AU_RE = re.compile(r"^\s*AU[\s_]*0*(\d{1,2})\s*$", re.IGNORECASE)
# ABAW file kind -> (manifest column, sentinel for "unannotated")
_ABAW_FILES = {"au": ("labels_path", -1.0), "va": ("va_labels_path", -5.0), "expr": ("expr_labels_path", -1.0)}


def normalise_au_name(name: str) -> str:
    """Return ``AU<nn>`` for an action-unit name (``"AU1"``, ``"au 12"``, ``"AU01"``).

    Names that are not action units (``"valence"``, ``"AU12_r"``) are returned unchanged.
    """
    match = _AU_RE.match(name)
    return f"AU{int(match.group(1)):02d}" if match else name


def read_frame_labels(row: Mapping[str, Any]) -> pd.DataFrame:
    """Read the frame-level labels of one manifest row (local paths or ``s3://`` URIs).

    Args:
        row: A manifest row (``labels_path``, ``labels_format`` and, for ABAW,
            ``va_labels_path`` / ``expr_labels_path``).

    Returns:
        A DataFrame indexed by 0-based frame number with one float column per label.

    Raises:
        DatasetError: No label file, an unknown format, a missing file, a missing ``frame``
            column, a non-numeric cell or a malformed line; the message names the file (and
            the column or line).
    """
    fmt = row.get("labels_format")
    if fmt is None and (row.get("va_labels_path") or row.get("expr_labels_path")):
        fmt = "abaw_au"
    sample = row.get("sample_id", "?")
    if fmt == "csv":
        if not row.get("labels_path"):
            raise DatasetError(f"sample_id {sample!r}: labels_format 'csv' but no labels_path")
        return _read_csv(row["labels_path"])
    if fmt == "abaw_au":
        return _read_abaw(row, sample)
    if fmt is None:
        raise DatasetError(f"sample_id {sample!r}: the manifest row has no frame-level label files")
    raise DatasetError(f"sample_id {sample!r}: unknown labels_format {fmt!r}; known: {', '.join(LABEL_FORMATS)}")


def _read_text(path: str) -> str:
    try:
        return storage.read_bytes(path).decode("utf-8-sig")
    except FileNotFoundError as exc:
        raise DatasetError(f"label file {path} not found") from exc
    except UnicodeDecodeError as exc:
        raise DatasetError(f"label file {path} is not UTF-8 text: {exc}") from exc


def _numeric(text: pd.Series, path: str, column: str) -> pd.Series:
    """Column of strings as floats, empty cells NaN; anything else non-numeric is an error."""
    stripped = text.str.strip()
    values = pd.to_numeric(stripped.where(stripped != ""), errors="coerce")
    bad = values.isna() & (stripped != "") & ~stripped.str.lower().isin(["nan", "na"])
    if bad.any():
        first = bad.idxmax()
        raise DatasetError(
            f"{path}: column {column!r} has {int(bad.sum())} non-numeric cell(s), "
            f"first at data row {first + 1}: {stripped[first]!r}"
        )
    return values.astype("float64")


def _frames(text: pd.Series, path: str) -> pd.Index:
    frames = _numeric(text, path, "frame")
    if frames.isna().any() or (frames < 0).any() or (frames != np.floor(frames)).any():
        raise DatasetError(f"{path}: column 'frame' must hold non-negative integers (0-based frame numbers)")
    index = pd.Index(frames.astype("int64"), name="frame")
    if index.has_duplicates:
        raise DatasetError(f"{path}: frame {int(index[index.duplicated()][0])} appears more than once")
    return index


def _read_csv(path: str) -> pd.DataFrame:
    try:
        raw = pd.read_csv(io.StringIO(_read_text(path)), dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise DatasetError(f"{path}: not a readable CSV: {exc}") from exc
    raw.columns = [str(c).strip() for c in raw.columns]
    if "frame" not in raw.columns:
        raise DatasetError(f"{path}: no 'frame' column (columns: {list(raw.columns)})")
    columns = [c for c in raw.columns if c != "frame"]
    names = [normalise_au_name(c) for c in columns]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise DatasetError(f"{path}: label column(s) {repeated} appear more than once (AU names normalised)")
    data = {name: _numeric(raw[c], path, c).to_numpy() for name, c in zip(names, columns, strict=True)}
    frame = pd.DataFrame(data, index=_frames(raw["frame"], path), columns=names)
    return frame.sort_index()


def _read_abaw_file(path: str, kind: str, sentinel: float) -> pd.DataFrame:
    lines = _read_text(path).splitlines()
    if not lines:
        raise DatasetError(f"{path}: empty ABAW {kind} file (expected a header line)")
    header = [h.strip() for h in lines[0].split(",")]
    if kind == "au":
        names = [normalise_au_name(h) for h in header]
    elif kind == "va":
        names = [h.lower() for h in header]
    else:
        names = ["expression"]
    body = lines[1:]
    while body and not body[-1].strip():  # a trailing newline is fine; a blank frame line is not
        body.pop()
    values = np.full((len(body), len(names)), np.nan)
    for i, line in enumerate(body):
        cells = line.split(",")
        if len(cells) != len(names):
            expected = f"{len(names)} ({', '.join(names)})"
            raise DatasetError(f"{path} line {i + 2}: {len(cells)} value(s), expected {expected}")
        try:
            values[i] = [float(c) for c in cells]
        except ValueError as exc:
            raise DatasetError(f"{path} line {i + 2}: not a number: {line.strip()!r}") from exc
    values[values == sentinel] = np.nan
    return pd.DataFrame(values, index=pd.RangeIndex(len(body), name="frame"), columns=names)


def _read_abaw(row: Mapping[str, Any], sample: str) -> pd.DataFrame:
    parts = [
        _read_abaw_file(row[column], kind, sentinel)
        for kind, (column, sentinel) in _ABAW_FILES.items()
        if row.get(column)
    ]
    if not parts:
        raise DatasetError(f"sample_id {sample!r}: labels_format 'abaw_au' but no AU/VA/EXPR label file")
    merged = pd.concat(parts, axis=1, join="outer").sort_index()
    merged.index = merged.index.astype("int64").rename("frame")
    return merged.astype("float64")
