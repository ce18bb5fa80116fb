"""The generic ``csv`` adapter: the documented format for users' own corpora.

``<root>/<options.manifest>`` is a CSV with columns ``sample_id, subject, audio, video, labels``
(``audio``/``video``/``labels`` may be empty) and optional ``emotion, transcript, valence,
arousal, dominance``. ``labels`` names a per-recording CSV with a ``frame`` column and one column
per label (e.g. ``AU01 ... AU26`` intensities 0-5, or ``valence, arousal``) at the card's
``frame_labels.rate_hz``. All paths are relative to the root.
"""

from __future__ import annotations

import difflib
import io
import math

import pandas as pd
import pyarrow as pa

from affectlab import storage
from affectlab.config import StrictModel
from affectlab.data.adapters._layout import RootPath
from affectlab.data.cards import Adapter, DatasetCard
from affectlab.data.manifest import manifest_from_rows, resolve_under_root
from affectlab.errors import DatasetError

REQUIRED_COLUMNS = ("sample_id", "subject", "audio", "video", "labels")
OPTIONAL_TEXT = ("emotion", "transcript")
OPTIONAL_FLOAT = ("valence", "arousal", "dominance")
KNOWN_COLUMNS = REQUIRED_COLUMNS + OPTIONAL_TEXT + OPTIONAL_FLOAT


class CsvOptions(StrictModel):
    """Options of the ``csv`` adapter."""

    manifest: RootPath = "manifest.csv"


def _cell(value: object) -> str | None:
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return None
    text = str(value).strip()
    return text or None


def _read(card: DatasetCard, source: str) -> pd.DataFrame:
    """The manifest as strings; an unreadable file is a DatasetError naming it."""
    try:
        data = storage.read_bytes(source)
    except FileNotFoundError as exc:
        raise DatasetError(f"{card.name}: manifest {source} not found (key 'options.manifest')") from exc
    try:
        return pd.read_csv(io.BytesIO(data), dtype=str, keep_default_na=False, encoding="utf-8")
    except pd.errors.EmptyDataError:
        raise DatasetError(f"{source}: empty manifest (no header line); expected the columns "
                           f"{', '.join(REQUIRED_COLUMNS)}") from None
    except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as exc:
        raise DatasetError(f"{source}: not a readable UTF-8 CSV manifest ({type(exc).__name__}: "
                           f"{str(exc).splitlines()[0][:200]})") from None


def _check_columns(source: str, columns: list[str]) -> None:
    missing = [c for c in REQUIRED_COLUMNS if c not in columns]
    if missing:
        raise DatasetError(
            f"{source}: missing column(s) {missing}; required: {list(REQUIRED_COLUMNS)}, "
            f"optional: {list(OPTIONAL_TEXT + OPTIONAL_FLOAT)}"
        )
    typos = []
    for column in columns:
        close = difflib.get_close_matches(str(column), KNOWN_COLUMNS, n=1, cutoff=0.75)
        if column not in KNOWN_COLUMNS and close:
            typos.append(f"{column!r} (did you mean {close[0]!r}?)")
    if typos:
        raise DatasetError(f"{source}: unknown column(s) {', '.join(typos)}; known: {', '.join(KNOWN_COLUMNS)} "
                           "(other extra columns are ignored)")


def _number(value: str | None, column: str, where: str) -> float | None:
    if value is None:
        return None
    try:
        number = float(value)
    except ValueError:
        raise DatasetError(f"{where}: column {column!r} is not a number: {value!r}") from None
    if not math.isfinite(number):
        raise DatasetError(f"{where}: column {column!r} is not a finite number: {value!r}")
    return number


def build(card: DatasetCard, options: CsvOptions, root: str) -> pa.Table:
    """Read ``<root>/<manifest>`` into a manifest table (see module docstring)."""
    source = storage.join(root, options.manifest)
    frame = _read(card, source)
    _check_columns(source, list(frame.columns))
    if frame["labels"].map(_cell).notna().any() and card.frame_labels is None:
        raise DatasetError(f"{source}: column 'labels' names label files but the card {card.name!r} has no "
                           "frame_labels.rate_hz (the frame rate of those files)")
    rows, locations = [], []
    for i, rec in enumerate(frame.to_dict("records"), start=2):  # row 1 is the header
        where = f"{source} row {i} (sample_id {rec.get('sample_id')!r})"
        row: dict[str, object] = {
            "sample_id": _cell(rec["sample_id"]),
            "dataset": card.name,
            "subject": _cell(rec["subject"]),
        }
        for column, field in (("audio", "audio_path"), ("video", "video_path"), ("labels", "labels_path")):
            value = _cell(rec[column])
            row[field] = resolve_under_root(root, value, where=f"{where}, column {column!r}") if value else None
        if row["labels_path"]:
            row["labels_format"] = "csv"
            row["labels_rate_hz"] = card.frame_labels.rate_hz if card.frame_labels else None
        for column in OPTIONAL_TEXT:
            row[column] = _cell(rec.get(column))
        for column in OPTIONAL_FLOAT:
            row[column] = _number(_cell(rec.get(column)), column, where)
        rows.append(row)
        locations.append(where)
    return manifest_from_rows(rows, source=source, locations=locations)


ADAPTER = Adapter(name="csv", options_model=CsvOptions, build=build, summary="generic manifest CSV")
