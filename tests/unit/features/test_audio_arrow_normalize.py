"""Plain-Arrow output rows, readers and speaker normalisation (no Ray)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.dataset as pads
import pytest

from affectlab import storage
from affectlab.errors import DatasetError
from affectlab.features import io
from affectlab.features.arrow import read_meta, rows_to_table, to_numpy
from affectlab.features.normalize import (
    apply_stats,
    compute_subject_stats,
    global_stats,
    load_subject_stats,
    normalise,
)


def _rows(rng: np.random.Generator) -> list[dict]:
    return [
        {"sample_id": f"r{i}", "subject": f"s{i % 2}", "n_frames": t,
         "features": rng.normal(i, 1 + i, size=(t, 3)).astype(np.float32),
         "f0_id": np.arange(t, dtype=np.int16), "crops": rng.integers(0, 255, (t, 2, 2), dtype=np.uint8)}
        for i, t in enumerate([5, 0, 7, 4])
    ]


def test_rows_become_plain_nested_lists_readable_by_pandas(tmp_path: Path) -> None:
    rows = _rows(np.random.default_rng(0))
    table = rows_to_table(rows, {"columns": {"features": ["a", "b", "c"]}})
    assert table.schema.field("features").type == pa.list_(pa.list_(pa.float32()))
    assert table.schema.field("f0_id").type == pa.list_(pa.int16())
    assert table.schema.field("crops").type == pa.list_(pa.list_(pa.list_(pa.uint8())))
    storage.write_parquet(table, str(tmp_path / "part-0.parquet"))
    frame = pd.read_parquet(tmp_path)
    assert frame["n_frames"].tolist() == [5, 0, 7, 4]
    for row, cell in zip(rows, frame["features"], strict=True):
        np.testing.assert_array_equal(to_numpy(cell).reshape(row["features"].shape), row["features"])
    back = pads.dataset(tmp_path).to_table()
    assert io.feature_names(back) == ["a", "b", "c"]
    for row, arr in zip(rows, io.column_arrays(back, "features"), strict=True):
        np.testing.assert_array_equal(arr.reshape(row["features"].shape), row["features"])
    assert [a.tolist() for a in io.column_arrays(back, "f0_id", np.int16)] == [r["f0_id"].tolist() for r in rows]
    assert np.asarray(back.column("crops")[2].as_py(), dtype=np.uint8).shape == (7, 2, 2)
    assert read_meta(back.schema)["columns"]["features"] == ["a", "b", "c"]


def test_null_arrays_become_null_cells() -> None:
    table = rows_to_table([{"x": np.ones((2, 2), np.float32)}, {"x": None}])
    assert table.column("x").to_pylist() == [[[1.0, 1.0], [1.0, 1.0]], None]


def _write_features(out: str, rows: list[dict]) -> None:
    table = rows_to_table([{k: r[k] for k in ("sample_id", "subject", "features")} for r in rows],
                          {"columns": {"features": ["a", "b", "c"]}})
    base = io.set_dir(out, "features", "egemaps", "vtest")
    storage.write_parquet(table.slice(0, 2), storage.join(base, "part-a.parquet"))
    storage.write_parquet(table.slice(2), storage.join(base, "part-b.parquet"))


def test_subject_stats_match_numpy_and_normalise(tmp_path: Path) -> None:
    rows = _rows(np.random.default_rng(1))
    out = str(tmp_path)
    _write_features(out, rows)
    stats = compute_subject_stats(out, "egemaps")
    loaded = load_subject_stats(out, "egemaps")
    assert loaded.names == ["a", "b", "c"] and sorted(loaded.mean) == ["s0", "s1"]
    for subject in ("s0", "s1"):
        frames = np.concatenate([r["features"] for r in rows if r["subject"] == subject]).astype(np.float64)
        np.testing.assert_allclose(loaded.mean[subject], frames.mean(axis=0), rtol=1e-10)
        np.testing.assert_allclose(loaded.std[subject], frames.std(axis=0), rtol=1e-10)
        assert loaded.count[subject].tolist() == [len(frames)] * 3
        z = normalise(frames, stats, subject)
        np.testing.assert_allclose(z.mean(axis=0), 0, atol=1e-5)
        np.testing.assert_allclose(z.std(axis=0), 1, atol=1e-5)
    with pytest.raises(DatasetError, match="s9"):
        normalise(rows[0]["features"], stats, "s9")


def test_global_stats_use_only_the_given_training_subjects(tmp_path: Path) -> None:
    rows = _rows(np.random.default_rng(2))
    out = str(tmp_path)
    _write_features(out, rows)
    stats = compute_subject_stats(out, "egemaps")
    mean, std = global_stats(stats, ["s0"])
    np.testing.assert_allclose(mean, stats.mean["s0"])
    everything = np.concatenate([r["features"] for r in rows]).astype(np.float64)
    mean, std = global_stats(stats, ["s0", "s1"])
    np.testing.assert_allclose(mean, everything.mean(axis=0), rtol=1e-10)
    np.testing.assert_allclose(std, everything.std(axis=0), rtol=1e-10)
    constant = apply_stats(np.ones((3, 2)), np.ones(2), np.zeros(2))
    assert (constant == 0).all()
