"""Storage: local and real-S3 (moto server on 127.0.0.1) round trips, atomic writes."""

from __future__ import annotations

import os

import pandas as pd
import pyarrow as pa
import pytest

from affectlab import storage
from affectlab.errors import StorageError


def _table() -> pa.Table:
    return pa.table({"sample_id": ["a", "b"], "x": pa.array([[1.0, 2.0], [3.0]], pa.list_(pa.float32()))})


def test_local_parquet_round_trip_and_atomic_write(tmp_path) -> None:
    uri = str(tmp_path / "out" / "part.parquet")
    storage.write_parquet(_table(), uri)
    assert storage.read_parquet(uri).equals(_table())
    # no temporary files are left next to the published one
    assert os.listdir(tmp_path / "out") == ["part.parquet"]


def test_list_files_skips_hidden_and_staging(tmp_path) -> None:
    storage.write_text(str(tmp_path / "d" / "a.txt"), "a")
    storage.write_text(str(tmp_path / "d" / "_staging" / "b.txt"), "b")
    storage.write_text(str(tmp_path / "d" / ".c.txt"), "c")
    assert storage.list_files(str(tmp_path / "d")) == [str(tmp_path / "d" / "a.txt")]
    assert len(storage.list_files(str(tmp_path / "d"), include_hidden=True)) == 3


def test_move_tree_publishes_files(tmp_path) -> None:
    storage.write_text(str(tmp_path / "stage" / "x" / "1.txt"), "1")
    moved = storage.move_tree(str(tmp_path / "stage"), str(tmp_path / "final"))
    assert moved == [str(tmp_path / "final" / "x" / "1.txt")]
    assert storage.read_text(moved[0]) == "1"
    assert not storage.exists(str(tmp_path / "stage"))


def test_absolute_resolves_local_paths_and_keeps_remote_uris(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert storage.absolute("runs/a") == str(tmp_path / "runs" / "a")
    assert storage.absolute(f"file://{tmp_path}/x/../y") == str(tmp_path / "y")
    assert storage.absolute("~/out") == os.path.join(os.path.expanduser("~"), "out")
    assert storage.absolute("s3://bucket/prefix/") == "s3://bucket/prefix/"
    with pytest.raises(StorageError, match="'gs' in 'gs://bucket/x'"):
        storage.absolute("gs://bucket/x")


def test_unsupported_scheme_is_named() -> None:
    with pytest.raises(StorageError, match="unsupported URI scheme 'gs'"):
        storage.filesystem("gs://bucket/x")


def test_missing_file_raises_file_not_found(tmp_path) -> None:
    with pytest.raises(FileNotFoundError):
        storage.read_bytes(str(tmp_path / "nope"))


def test_s3_parquet_round_trip(s3_bucket: str, tmp_path) -> None:
    uri = f"{s3_bucket}/features/set/part-0.parquet"
    storage.write_parquet(_table(), uri)
    assert storage.exists(uri)
    assert storage.read_parquet(f"{s3_bucket}/features/set").equals(_table())
    # the same object is readable by s3fs/pandas, configured only through the environment
    frame = pd.read_parquet(uri.replace("s3://", "s3://", 1))
    assert list(frame["sample_id"]) == ["a", "b"]
    with storage.local_copy(uri) as local:
        assert os.path.getsize(local) > 0


def test_s3_move_tree_and_listing(s3_bucket: str) -> None:
    storage.write_text(f"{s3_bucket}/_staging/run1/a/x.txt", "x")
    storage.write_text(f"{s3_bucket}/_staging/run1/b.txt", "b")
    moved = storage.move_tree(f"{s3_bucket}/_staging/run1", f"{s3_bucket}/final")
    assert sorted(moved) == [f"{s3_bucket}/final/a/x.txt", f"{s3_bucket}/final/b.txt"]
    assert storage.list_files(f"{s3_bucket}/final") == sorted(moved)
    assert storage.list_files(f"{s3_bucket}/_staging/run1", include_hidden=True) == []


def test_describe_never_shows_secrets(monkeypatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIASECRETVALUE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "supersecret")
    text = repr(storage.describe())
    assert "AKIASECRETVALUE" not in text and "supersecret" not in text
