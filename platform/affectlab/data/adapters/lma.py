"""The ``lma`` adapter: per-clip Laban Movement Analysis (LMA) features with PAD labels.

Layout: one CSV ``<root>/<options.file>`` (default ``lma_features.csv``), one row per motion
clip, with columns ``clip_id``, optional ``subject``, the feature columns (``options.features``,
by default the 27 features of :data:`LMA_FEATURES`) and optional ``pleasure``, ``arousal``,
``dominance`` (PAD, the labels of the LMA -> PAD regression).

Manifest rows: ``sample_id`` = ``clip_id``, ``subject`` = ``subject`` (or ``clip_id`` when the
column is absent or the cell empty), ``features`` = the feature values in ``options.features``
order, ``valence`` = pleasure, ``arousal``, ``dominance``. There are no media files. Missing
feature columns, and empty or non-numeric feature cells, are errors (all reported together).
"""

from __future__ import annotations

import io

import pandas as pd
import pyarrow as pa
from pydantic import Field

from affectlab import storage
from affectlab.config import StrictModel
from affectlab.data.adapters._layout import RootPath, raise_collected
from affectlab.data.cards import Adapter, DatasetCard
from affectlab.data.manifest import manifest_from_rows
from affectlab.errors import DatasetError

__all__ = ["ADAPTER", "LMA_FEATURES", "PAD_COLUMNS", "LmaOptions", "build"]

# The 27 body-motion features of seed 004 (names as in its data, typo "cnest" included).
LMA_FEATURES: tuple[str, ...] = (
    "avg_chest_pelvis_distance",
    "avg_l_elbow_hip_distance",
    "avg_l_hand_chest_distance",
    "avg_l_hand_hip_distance",
    "avg_neck_cnest_distance",
    "avg_neck_rotation_w",
    "avg_neck_rotation_x",
    "avg_neck_rotation_y",
    "avg_neck_rotation_z",
    "avg_r_elbow_hip_distance",
    "avg_r_hand_chest_distance",
    "avg_r_hand_hip_distance",
    "avg_total_body_volume",
    "avg_triangle_area_feet_hips",
    "avg_triangle_area_hands_neck",
    "l_foot_acceleration_magnitude",
    "l_foot_speed",
    "l_hand_acceleration_magnitude",
    "l_hand_speed",
    "max_hand_distance",
    "max_stride_length",
    "neck_acceleration_magnitude",
    "neck_speed",
    "r_foot_acceleration_magnitude",
    "r_foot_speed",
    "r_hand_acceleration_magnitude",
    "r_hand_speed",
)
# CSV column -> manifest column
PAD_COLUMNS = {"pleasure": "valence", "arousal": "arousal", "dominance": "dominance"}


class LmaOptions(StrictModel):
    """Options of the ``lma`` adapter."""

    file: RootPath = "lma_features.csv"
    features: list[str] = Field(default=list(LMA_FEATURES), min_length=1, description="feature columns, in order")


def _read(card: DatasetCard, options: LmaOptions, root: str) -> tuple[str, pd.DataFrame]:
    source = storage.join(root, options.file)
    try:
        frame = pd.read_csv(io.BytesIO(storage.read_bytes(source)), dtype=str, keep_default_na=False)
    except FileNotFoundError as exc:
        raise DatasetError(f"{card.name}: LMA table {source} not found (key 'options.file')") from exc
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise DatasetError(f"{source}: not a readable CSV: {exc}") from exc
    frame.columns = [str(c).strip() for c in frame.columns]
    missing = [c for c in ("clip_id", *options.features) if c not in frame.columns]
    if missing:
        raise DatasetError(
            f"{source}: missing column(s) {missing} (feature columns come from options.features; "
            f"the table has {len(frame.columns)} columns)"
        )
    return source, frame


def _numbers(frame: pd.DataFrame, column: str, source: str, *, required: bool, problems: list[str]) -> pd.Series:
    """Column as floats (NaN where empty); bad cells are appended to ``problems``."""
    text = frame[column].str.strip()
    values = pd.to_numeric(text.where(text != ""), errors="coerce")
    bad = values.isna() & ((text != "") | required)
    for index in frame.index[bad][:5]:
        problems.append(f"{source} row {index + 2}, column {column!r}: not a number: {text[index]!r}")
    if bad.sum() > 5:
        problems.append(f"{source}, column {column!r}: {int(bad.sum()) - 5} more bad cell(s)")
    return values.astype("float64")


def build(card: DatasetCard, options: LmaOptions, root: str) -> pa.Table:
    """Read the LMA table into a manifest (see the module docstring)."""
    source, frame = _read(card, options, root)
    problems: list[str] = []
    features = [_numbers(frame, c, source, required=True, problems=problems) for c in options.features]
    pad = {
        PAD_COLUMNS[c]: _numbers(frame, c, source, required=False, problems=problems)
        for c in PAD_COLUMNS
        if c in frame.columns
    }
    raise_collected(problems, f"{card.name}: bad cells in the LMA table")
    matrix = pd.concat(features, axis=1).to_numpy(dtype="float32") if len(frame) else None
    rows, locations = [], []
    for i, clip_id in enumerate(frame["clip_id"].str.strip()):
        subject = frame["subject"].iloc[i].strip() if "subject" in frame.columns else ""
        row: dict[str, object] = {
            "sample_id": clip_id,
            "dataset": card.name,
            "subject": subject or clip_id,
            "features": matrix[i].tolist() if matrix is not None else None,
        }
        row.update({column: _float_or_none(values.iloc[i]) for column, values in pad.items()})
        rows.append(row)
        locations.append(f"{source} row {i + 2} (clip_id {clip_id!r})")
    return manifest_from_rows(rows, source=source, locations=locations)


def _float_or_none(value: float) -> float | None:
    return None if pd.isna(value) else float(value)


ADAPTER = Adapter(
    name="lma",
    options_model=LmaOptions,
    build=build,
    summary="per-clip LMA body-motion features + PAD labels from one CSV",
)
