"""The manifest: an Arrow table with one row per recording, the hand-off from adapters to pipelines.

Columns (all but ``sample_id``, ``dataset`` and ``subject`` may be null):

==================  ===========  =========================================================
column              type         meaning
==================  ===========  =========================================================
sample_id           string       stable, unique id of the recording
dataset             string       card name
subject             string       speaker / actor / identity (the unit of LOSO splits)
audio_path          string       absolute path or URI of the audio (or the video's track)
video_path          string       absolute path or URI of the video
labels_path         string       frame-level label file (csv with a ``frame`` column, or ABAW)
labels_format       string       ``csv`` or ``abaw_au`` (how to read ``labels_path``)
labels_rate_hz      float64      frame rate of ``labels_path``
va_labels_path      string       ABAW VA_Set file (affwild2)
expr_labels_path    string       ABAW EXPR_Set file (affwild2)
emotion             string       clip-level categorical emotion
transcript          string       clip-level text (lip reading)
word_times          list<struct> the transcript's words with start / end in seconds (LRS word timings)
valence, arousal,   float64      clip-level dimensional labels (PAD: dominance)
dominance
features            list<float>  per-clip feature vector (body-motion corpora, e.g. LMA)
==================  ===========  =========================================================
"""

from __future__ import annotations

import os
import posixpath
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import pyarrow as pa

from affectlab import storage
from affectlab.errors import DatasetError

__all__ = ["MANIFEST_SCHEMA", "manifest_from_rows", "resolve_under_root"]

MANIFEST_SCHEMA = pa.schema(
    [
        pa.field("sample_id", pa.string(), nullable=False),
        pa.field("dataset", pa.string(), nullable=False),
        pa.field("subject", pa.string(), nullable=False),
        pa.field("audio_path", pa.string()),
        pa.field("video_path", pa.string()),
        pa.field("labels_path", pa.string()),
        pa.field("labels_format", pa.string()),
        pa.field("labels_rate_hz", pa.float64()),
        pa.field("va_labels_path", pa.string()),
        pa.field("expr_labels_path", pa.string()),
        pa.field("emotion", pa.string()),
        pa.field("transcript", pa.string()),
        pa.field("word_times", pa.list_(pa.struct([("word", pa.string()), ("start", pa.float64()),
                                                   ("end", pa.float64())]))),
        pa.field("valence", pa.float64()),
        pa.field("arousal", pa.float64()),
        pa.field("dominance", pa.float64()),
        pa.field("features", pa.list_(pa.float32())),
    ]
)

MAX_PATH_CHARS = 4096  # PATH_MAX on Linux
MEDIA_COLUMNS = ("audio_path", "video_path", "labels_path", "va_labels_path", "expr_labels_path")


def resolve_under_root(root: str, rel: str, *, where: str) -> str:
    """Resolve a manifest path against the dataset root, refusing paths that escape it.

    Args:
        root: The dataset root (local directory or ``s3://`` URI).
        rel: A path relative to the root (an absolute path is accepted only inside the root).
        where: Description of the row/field for error messages, e.g. ``"manifest.csv row 3"``.

    Returns:
        The absolute path or URI.

    Raises:
        DatasetError: ``rel`` is empty, holds a NUL byte, is longer than :data:`MAX_PATH_CHARS`,
            resolves outside ``root`` (symbolic links followed), or is a URI under a local root.
    """
    rel = str(rel).strip()
    if not rel:
        raise DatasetError(f"{where}: empty path")
    if "\x00" in rel or len(rel) > MAX_PATH_CHARS:
        shown = rel[:60] + "..." if len(rel) > 60 else rel
        raise DatasetError(f"{where}: path {shown!r} holds a NUL byte or is longer than {MAX_PATH_CHARS} characters")
    if storage.is_remote(root):
        base = root.rstrip("/")
        if "://" in rel:
            full = rel
        else:
            if rel.startswith("/"):
                raise DatasetError(f"{where}: absolute path {rel!r} is outside the root {root}")
            normalised = posixpath.normpath(rel)
            full = base if normalised == "." else base + "/" + normalised
        if not (full + "/").startswith(base + "/") or "/../" in full + "/" or full == base:
            raise DatasetError(f"{where}: path {rel!r} escapes the dataset root {root}")
        return full
    if "://" in rel:
        raise DatasetError(f"{where}: path {rel!r} is a URI but the dataset root {root} is local; give a path "
                           "relative to the root")
    base = os.path.realpath(storage.filesystem(root)[1])
    full = os.path.realpath(os.path.join(base, rel))
    if os.path.commonpath([base, full]) != base or full == base:
        raise DatasetError(f"{where}: path {rel!r} escapes the dataset root {root}")
    return full


def manifest_from_rows(
    rows: Iterable[Mapping[str, Any]], *, source: str, locations: Sequence[str] | None = None
) -> pa.Table:
    """Build a manifest table from row dicts, checking ids are present and unique.

    Missing columns are filled with nulls; unknown keys are an error (a bug in an adapter).

    Args:
        rows: One mapping per recording, keyed by manifest column names.
        source: What the rows were read from (for error messages).
        locations: Optional description of where each row came from (e.g. ``"manifest.csv
            row 7"`` or a file path), used to name the rows in error messages; defaults to
            ``"<source> row <n>"`` counting from 1.

    Raises:
        DatasetError: A row has no ``sample_id``/``subject`` or a ``sample_id`` repeats.
    """
    names = MANIFEST_SCHEMA.names
    rows = list(rows)
    where = list(locations) if locations is not None else [f"{source} row {i + 1}" for i in range(len(rows))]
    columns: dict[str, list[Any]] = {name: [] for name in names}
    for i, row in enumerate(rows):
        unknown = set(row) - set(names)
        if unknown:
            raise DatasetError(f"{source}: adapter produced unknown manifest columns {sorted(unknown)}")
        for key in ("sample_id", "subject"):
            if not row.get(key):
                raise DatasetError(f"{where[i]}: missing {key}")
        for name in names:
            columns[name].append(row.get(name))
    _check_unique(columns["sample_id"], where, source=source)
    return pa.table(columns, schema=MANIFEST_SCHEMA)


def _check_unique(sample_ids: list[str], where: list[str], *, source: str) -> None:
    dupes = [sid for sid, n in Counter(sample_ids).items() if n > 1]
    if not dupes:
        return
    details = []
    for dupe in dupes[:5]:
        places = [where[i] for i, sid in enumerate(sample_ids) if sid == dupe]
        details.append(f"{dupe!r} at {'; '.join(places)}")
    more = f" (and {len(dupes) - 5} more)" if len(dupes) > 5 else ""
    raise DatasetError(f"{source}: duplicate sample_id " + " | ".join(details) + more)
