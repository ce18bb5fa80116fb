"""Reading frame-level label files (csv and ABAW) into per-frame DataFrames."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from affectlab import storage
from affectlab.data.frame_labels import EXPRESSIONS, normalise_au_name, read_frame_labels
from affectlab.errors import DatasetError

AU_HEADER = "AU1,AU2,AU4,AU6,AU7,AU10,AU12,AU15,AU23,AU24,AU25,AU26"


@pytest.mark.parametrize(
    ("name", "expected"),
    [("AU1", "AU01"), ("AU01", "AU01"), ("au12", "AU12"), ("AU 6", "AU06"), ("AU_26", "AU26"),
     ("AU12_r", "AU12_r"), ("valence", "valence")],
)
def test_normalise_au_name(name: str, expected: str) -> None:
    assert normalise_au_name(name) == expected


def csv_row(path: Path, text: str) -> dict:
    path.write_text(text)
    return {"sample_id": "s1", "labels_path": str(path), "labels_format": "csv"}


def test_csv_labels(tmp_path: Path) -> None:
    row = csv_row(tmp_path / "l.csv", "frame,AU1,AU12,valence\n2,1.5,0,0.25\n0,0,3, \n1,,5,-1\n")
    frame = read_frame_labels(row)
    assert list(frame.columns) == ["AU01", "AU12", "valence"]
    assert frame.index.tolist() == [0, 1, 2] and frame.index.name == "frame"
    assert frame.index.dtype == np.int64 and (frame.dtypes == np.float64).all()
    assert frame.loc[2, "AU01"] == 1.5 and frame.loc[1, "valence"] == -1.0  # csv keeps -1 as a value
    assert np.isnan(frame.loc[1, "AU01"]) and np.isnan(frame.loc[0, "valence"])


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("AU01,AU02\n1,2\n", r"no 'frame' column \(columns: \['AU01', 'AU02'\]\)"),
        ("frame,AU01,AU02\n0,1,high\n", r"column 'AU02' has 1 non-numeric cell\(s\), first at data row 1: 'high'"),
        ("frame,AU01\n0,1\n0,2\n", "frame 0 appears more than once"),
        ("frame,AU01\n0.5,1\n", "non-negative integers"),
        ("frame,AU1,AU01\n0,1,1\n", r"\['AU01'\] appear more than once"),
    ],
)
def test_csv_label_errors_name_file_and_column(tmp_path: Path, text: str, message: str) -> None:
    row = csv_row(tmp_path / "bad.csv", text)
    with pytest.raises(DatasetError, match=message) as info:
        read_frame_labels(row)
    assert "bad.csv" in str(info.value)


def abaw_row(tmp_path: Path, au: str | None, va: str | None, expr: str | None) -> dict:
    row: dict = {"sample_id": "vid", "labels_format": "abaw_au", "labels_path": None}
    for column, text in (("labels_path", au), ("va_labels_path", va), ("expr_labels_path", expr)):
        if text is not None:
            path = tmp_path / f"{column}.txt"
            path.write_text(text)
            row[column] = str(path)
    return row


def test_abaw_labels_merge_and_mark_unannotated(tmp_path: Path) -> None:
    au = AU_HEADER + "\n" + "-1," * 11 + "-1\n" + "0,1,0,0,0,0,1,0,0,0,0,1\n" + "1,1,1,1,1,1,1,1,1,1,1,1\n"
    va = "valence,arousal\n-1,0.5\n-5,-5\n0.3,-0.2\n0.1,0.1\n"  # one frame more than the AU file
    expr = ",".join(EXPRESSIONS) + "\n4\n-1\n7\n"
    frame = read_frame_labels(abaw_row(tmp_path, au, va, expr))
    aus = [normalise_au_name(a) for a in AU_HEADER.split(",")]
    assert list(frame.columns) == [*aus, "valence", "arousal", "expression"]
    assert frame.index.tolist() == [0, 1, 2, 3]
    assert frame.loc[0, aus].isna().all() and frame.loc[1, "AU02"] == 1.0 and frame.loc[1, "AU01"] == 0.0
    assert frame.loc[0, "valence"] == -1.0  # -1 is a valid valence; -5 is the VA sentinel
    assert frame.loc[1, ["valence", "arousal"]].isna().all()
    assert frame["expression"].tolist()[:3] == [4.0, pytest.approx(np.nan, nan_ok=True), 7.0]
    assert frame.loc[3, aus].isna().all() and np.isnan(frame.loc[3, "expression"])


def test_abaw_single_file_without_format(tmp_path: Path) -> None:
    row = abaw_row(tmp_path, None, "valence,arousal\n0.5,0.25\n", None)
    del row["labels_format"]
    frame = read_frame_labels(row)
    assert frame.to_dict("list") == {"valence": [0.5], "arousal": [0.25]}


@pytest.mark.parametrize(
    ("au", "message"),
    [
        (AU_HEADER + "\n0,1\n", r"line 2: 2 value\(s\), expected 12"),
        (AU_HEADER + "\n" + "0," * 11 + "x\n", "line 2: not a number"),
        (AU_HEADER + "\n" + "0," * 11 + "0\n\n" + "0," * 11 + "0\n", r"line 3: 1 value\(s\)"),
        ("", "empty ABAW au file"),
    ],
)
def test_abaw_errors_name_file_and_line(tmp_path: Path, au: str, message: str) -> None:
    with pytest.raises(DatasetError, match=message) as info:
        read_frame_labels(abaw_row(tmp_path, au, None, None))
    assert "labels_path.txt" in str(info.value)


def test_row_errors(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="no frame-level label files"):
        read_frame_labels({"sample_id": "x"})
    with pytest.raises(DatasetError, match="unknown labels_format 'json'; known: csv, abaw_au"):
        read_frame_labels({"sample_id": "x", "labels_path": "a", "labels_format": "json"})
    with pytest.raises(DatasetError, match=r"label file .*gone.csv not found"):
        read_frame_labels({"sample_id": "x", "labels_path": str(tmp_path / "gone.csv"), "labels_format": "csv"})


def test_labels_on_s3(s3_bucket: str) -> None:
    csv_uri = f"{s3_bucket}/labels/a.csv"
    storage.write_text(csv_uri, "frame,AU4\n0,2\n1,3\n")
    va_uri = f"{s3_bucket}/VA_Set/Train_Set/a.txt"
    storage.write_text(va_uri, "valence,arousal\n0.5,-5\n")
    frame = read_frame_labels({"sample_id": "a", "labels_path": csv_uri, "labels_format": "csv"})
    pd.testing.assert_frame_equal(
        frame, pd.DataFrame({"AU04": [2.0, 3.0]}, index=pd.Index([0, 1], name="frame", dtype="int64"))
    )
    abaw = read_frame_labels({"sample_id": "a", "labels_format": "abaw_au", "va_labels_path": va_uri})
    assert abaw.loc[0, "valence"] == 0.5 and np.isnan(abaw.loc[0, "arousal"])
