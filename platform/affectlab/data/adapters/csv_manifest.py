"""The generic ``csv`` adapter: the documented format for users' own corpora.

``<root>/<options.manifest>`` is a CSV with columns ``sample_id, subject, audio, video, labels``
(``audio``/``video``/``labels`` may be empty) and optional ``emotion, transcript, valence,
arousal, dominance``. ``labels`` names a per-recording CSV with a ``frame`` column and one column
per label (e.g. ``AU01 ... AU26`` intensities 0-5, or ``valence, arousal``) at the card's
``frame_labels.rate_hz``. All paths are relative to the root.
"""

from __future__ import annotations

import io

import pandas as pd
import pyarrow as pa

from affectlab import storage
from affectlab.config import StrictModel
from affectlab.data.cards import Adapter, DatasetCard
from affectlab.data.manifest import manifest_from_rows, resolve_under_root
from affectlab.errors import DatasetError

REQUIRED_COLUMNS = ("sample_id", "subject", "audio", "video", "labels")
OPTIONAL_TEXT = ("emotion", "transcript")
OPTIONAL_FLOAT = ("valence", "arousal", "dominance")


class CsvOptions(StrictModel):
    """Options of the ``csv`` adapter."""

    manifest: str = "manifest.csv"


def _cell(value: object) -> str | None:
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return None
    text = str(value).strip()
    return text or None


def build(card: DatasetCard, options: CsvOptions, root: str) -> pa.Table:
    """Read ``<root>/<manifest>`` into a manifest table (see module docstring)."""
    source = storage.join(root, options.manifest)
    try:
        frame = pd.read_csv(io.BytesIO(storage.read_bytes(source)), dtype=str, keep_default_na=False)
    except FileNotFoundError as exc:
        raise DatasetError(f"{card.name}: manifest {source} not found (key 'options.manifest')") from exc
    missing = [c for c in REQUIRED_COLUMNS if c not in frame.columns]
    if missing:
        raise DatasetError(
            f"{source}: missing column(s) {missing}; required: {list(REQUIRED_COLUMNS)}, "
            f"optional: {list(OPTIONAL_TEXT + OPTIONAL_FLOAT)}"
        )
    if frame["labels"].map(_cell).notna().any() and card.frame_labels is None:
        raise DatasetError(f"{card.name}: manifest names label files but the card has no frame_labels.rate_hz")
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
            value = _cell(rec.get(column))
            try:
                row[column] = float(value) if value is not None else None
            except ValueError as exc:
                raise DatasetError(f"{where}: column {column!r} is not a number: {value!r}") from exc
        rows.append(row)
        locations.append(where)
    return manifest_from_rows(rows, source=source, locations=locations)


ADAPTER = Adapter(name="csv", options_model=CsvOptions, build=build, summary="generic manifest CSV")
