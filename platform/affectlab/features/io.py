"""Output layout of ``affectlab preprocess`` and the readers training code uses.

Layout under ``<out>`` (a local directory or ``s3://bucket/prefix``)::

    features/<set>/version=<v>/part-*.parquet   one row per recording (sets: egemaps, compare,
                                                egemaps_functionals, compare_functionals, video sets)
    labels/<set>/version=<v>/part-*.parquet     frame labels aligned to the feature frames (set: au)
    labels/clips/version=<v>/clips.parquet      clip labels of every manifest row (emotion,
                                                transcript, word_times, valence, arousal, dominance)
    errors/<stage>-<v>.parquet                  one row per failed recording of the last run
    stats/<set>/version=<v>/subject_stats.parquet   per-subject mean/std (speaker normalisation)
    stats/<set>/version=<v>/class_counts.json   AU phase class counts (label sets)
    vocab/<set>/version=<v>/vocab.json          ID_to_AU / AU_to_ID (au), ID_to_F0 (egemaps)
    provenance/<time>-<run>.json                one file per run; _SUCCESS.json = the last run
    splits.json                                 the dataset card's named subject splits (``splits:``)
    _staging/...                                work in progress; hidden from readers

``<v>`` is ``v`` + :func:`affectlab.features.base.params_hash` of the stage's name, version and
parameters: changed parameters write a new directory next to the old one instead of mixing.
``version=<v>`` is hive-style, so ``pandas.read_parquet("<out>/features/egemaps")`` reads every
version with a ``version`` column, and ``pandas.read_parquet(".../version=<v>")`` one version.
Names starting with ``_`` or ``.`` are skipped by pandas/pyarrow, so staging and temporary
files are never read as data. ``features/<set>/_latest.json`` names the newest version.

Columns of a feature row (pyarrow / pandas):

====================  =========================  =============================================
column                type                       meaning
====================  =========================  =============================================
sample_id, subject    string
n_frames              int64                      T (1 for functionals)
frame_rate_hz         float64                    100.0 for LLDs (frame t at t * 10 ms + 30 ms)
duration_s            float64                    audio duration
features              list<list<float32>>        T x D; names in the schema metadata
                                                 (``feature_names(table)``)
f0_hz (egemaps)       list<float32>              T; F0 in Hz clipped to 50-550, 0 = unvoiced
f0_id (egemaps)       list<int16>                T; ids into ``vocab/egemaps/...`` ID_to_F0
====================  =========================  =============================================

Columns of an ``au`` label row: ``sample_id, subject, n_frames, frame_rate_hz, label_rate_hz``,
``frame_offset_s`` (time of feature frame 0, the centre of its analysis window; absent = 0 in
label sets written before it) and T x K columns (K = AUs, names in ``label_names(table)``):
``intensity`` (list<list<float32>>, NaN = no label), ``au_id`` (list<list<int16>>, ids into
ID_to_AU, -1 = no label), ``onset``, ``apex``, ``offset``, ``occurrence`` (list<list<int8>>: 1 / 0,
-1 = no label). Label row ``T`` equals the feature row's ``n_frames`` for the same ``sample_id``.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.fs as pafs

from affectlab import storage
from affectlab.errors import StorageError
from affectlab.features.arrow import read_meta

__all__ = [
    "KeepRows",
    "column_arrays",
    "read_dataset",
    "set_columns",
    "set_index",
    "errors_uri",
    "feature_names",
    "label_names",
    "latest_version",
    "list_versions",
    "iter_set_batches",
    "load_clip_labels",
    "load_splits",
    "load_errors",
    "load_features",
    "load_labels",
    "load_vocab",
    "set_dir",
    "sidecar_dir",
    "staging_dir",
    "write_clip_labels",
    "write_splits",
]

CLIP_LABEL_COLUMNS = ("sample_id", "dataset", "subject", "emotion", "transcript", "word_times", "valence", "arousal",
                      "dominance")


def set_dir(out: str, kind: str, name: str, version: str | None = None) -> str:
    """``<out>/<kind>/<name>[/version=<version>]`` (kind: features or labels)."""
    base = storage.join(out, kind, name)
    return storage.join(base, f"version={version}") if version else base


def sidecar_dir(out: str, what: str, name: str, version: str) -> str:
    """``<out>/<what>/<name>/version=<version>`` for stats / vocab files of a set version."""
    return storage.join(out, what, name, f"version={version}")


def staging_dir(out: str, kind: str, name: str, version: str) -> str:
    """Hidden work area of one set version (removed when a run starts and when it ends)."""
    return storage.join(out, "_staging", kind, name, f"version={version}")


def errors_uri(out: str, stage: str, version: str) -> str:
    """``<out>/errors/<stage>-<version>.parquet``."""
    return storage.join(out, "errors", f"{stage}-{version}.parquet")


def list_versions(out: str, kind: str, name: str) -> list[str]:
    """Versions present under ``<out>/<kind>/<name>/`` (sorted)."""
    fs, path = storage.filesystem(set_dir(out, kind, name))
    infos = fs.get_file_info(pafs.FileSelector(path, allow_not_found=True))
    return sorted(
        i.base_name.split("=", 1)[1]
        for i in infos
        if i.type == pafs.FileType.Directory and i.base_name.startswith("version=")
    )


def latest_version(out: str, kind: str, name: str) -> str:
    """The newest version of a set (from ``_latest.json``, else the only one present).

    Raises:
        StorageError: Nothing was written for this set, or several versions and no marker.
    """
    marker = storage.join(set_dir(out, kind, name), "_latest.json")
    if storage.exists(marker):
        return json.loads(storage.read_text(marker))["version"]
    versions = list_versions(out, kind, name)
    if len(versions) == 1:
        return versions[0]
    where = set_dir(out, kind, name)
    if not versions:
        raise StorageError(f"no {kind} set {name!r} under {out} (looked in {where})")
    raise StorageError(f"{where} holds versions {versions} and no _latest.json; pass version=")


def _load(out: str, kind: str, name: str, version: str | None, columns: list[str] | None) -> pa.Table:
    version = version or latest_version(out, kind, name)
    uri = set_dir(out, kind, name, version)
    if not storage.list_files(uri, suffix=".parquet"):
        raise StorageError(f"no Parquet files in {uri}")
    return storage.read_parquet(uri, columns=columns)


def load_features(out: str, name: str, *, version: str | None = None, columns: list[str] | None = None) -> pa.Table:
    """Read one feature set (one version; the latest by default) as a pyarrow Table.

    See the module docstring for columns; ``feature_names(table)`` gives the D names.
    """
    return _load(out, "features", name, version, columns)


def load_labels(out: str, name: str = "au", *, version: str | None = None, columns: list[str] | None = None) -> pa.Table:
    """Read one label set (default ``au``; latest version by default) as a pyarrow Table."""
    return _load(out, "labels", name, version, columns)


INDEX_COLUMNS = ("sample_id", "subject", "n_frames")


def set_index(out: str, name: str, *, kind: str = "features", version: str | None = None,
              columns: tuple[str, ...] = INDEX_COLUMNS) -> pa.Table:
    """The small columns of a set (``sample_id, subject, n_frames`` by default): what splits and
    per-subject bookkeeping need, read without the tensor columns."""
    return _load(out, kind, name, version, list(columns))


def set_columns(out: str, name: str, *, kind: str = "features", version: str | None = None) -> list[str]:
    """The column names of a set, from the schema of one of its Parquet files (no data read)."""
    import pyarrow.parquet as pq

    _, files = _visible_files(out, kind, name, version)
    fs, path = storage.filesystem(files[0])
    return list(pq.read_schema(path, filesystem=fs).names)


def _visible_files(out: str, kind: str, name: str, version: str | None) -> tuple[str, list[str]]:
    """The set version's directory (latest by default) and its Parquet files.

    Raises:
        StorageError: No such set, or no Parquet files in it.
    """
    uri = set_dir(out, kind, name, version or latest_version(out, kind, name))
    files = storage.list_files(uri, suffix=".parquet")
    if not files:
        raise StorageError(f"no Parquet files in {uri}")
    return uri, files


def read_dataset(out: str, name: str, *, kind: str = "features", version: str | None = None,
                 columns: list[str] | None = None, sample_ids: list[str] | None = None) -> Any:
    """A set as a lazy, streaming Ray Dataset (one row per recording), read with
    ``ray.data.read_parquet`` from the set's visible Parquet files (local or ``s3://``).

    Args:
        out: The preprocessing output (path or URI).
        name: The set (``mouth``, ``face_112``, ``egemaps``...).
        kind: ``features`` or ``labels``.
        version: A version (default: the latest).
        columns: Columns to read (default: all); only these leave the Parquet files.
        sample_ids: Keep only these recordings (e.g. one side of a split); rows are filtered in
            Arrow batches, before any tensor conversion.

    Raises:
        StorageError: No such set, or no Parquet files in it.
    """
    import ray.data

    uri, files = _visible_files(out, kind, name, version)
    fs, _ = storage.filesystem(uri)
    paths = [storage.filesystem(f)[1] for f in files]
    ds = ray.data.read_parquet(paths, filesystem=fs, columns=columns)
    if sample_ids is not None:
        ds = ds.map_batches(KeepRows(sample_ids), batch_format="pyarrow", zero_copy_batch=True)
    return ds


def iter_set_batches(out: str, name: str, *, kind: str = "features", version: str | None = None,
                     columns: list[str] | None = None, sample_ids: list[str] | None = None,
                     batch_rows: int = 8) -> Any:
    """The rows of a set as small Arrow tables, read file by file in this process (no Ray): the
    in-process counterpart of :func:`read_dataset`, holding ``batch_rows`` recordings at a time."""
    import pyarrow.parquet as pq

    _, files = _visible_files(out, kind, name, version)
    keep = None if sample_ids is None else KeepRows(sample_ids)
    for file in files:
        fs, path = storage.filesystem(file)
        with fs.open_input_file(path) as handle:
            for batch in pq.ParquetFile(handle).iter_batches(batch_size=batch_rows, columns=columns):
                table = pa.Table.from_batches([batch])
                table = keep(table) if keep is not None else table
                if table.num_rows:
                    yield table


class KeepRows:
    """``map_batches`` function: the rows of an Arrow batch whose ``sample_id`` is in a set."""

    def __init__(self, sample_ids: Sequence[str]) -> None:
        self.keep = pa.array(sorted(set(sample_ids)), pa.string())

    def __call__(self, batch: pa.Table) -> pa.Table:
        return batch.filter(pc.is_in(batch.column("sample_id"), value_set=self.keep))


def write_clip_labels(out: str, manifest: pa.Table) -> str:
    """Write the manifest's clip-level labels as ``labels/clips`` (one row per recording, no media
    paths) and mark that version latest; returns the version. The version is a hash of the
    content, so an unchanged manifest rewrites nothing new and a changed one adds a version."""
    import hashlib

    table = manifest.select([c for c in CLIP_LABEL_COLUMNS if c in manifest.column_names])
    table = table.sort_by("sample_id")
    digest = hashlib.sha256()
    for column in table.columns:
        digest.update(repr(column.to_pylist()).encode())
    version = "v" + digest.hexdigest()[:12]
    uri = storage.join(set_dir(out, "labels", "clips", version), "clips.parquet")
    if not storage.exists(uri):
        storage.write_parquet(table, uri)
    marker = {"version": version, "rows": table.num_rows, "columns": table.column_names}
    storage.write_text(storage.join(set_dir(out, "labels", "clips"), "_latest.json"), json.dumps(marker, indent=1))
    return version


def load_clip_labels(out: str, *, version: str | None = None) -> pa.Table:
    """The clip labels written by :func:`write_clip_labels` (latest version by default).

    Raises:
        StorageError: ``out`` has no clip labels (preprocessed before they were written: re-run
            ``affectlab preprocess``; finished stages are skipped).
    """
    try:
        return _load(out, "labels", "clips", version, None)
    except StorageError as exc:
        raise StorageError(f"{exc}; clip labels (emotion, transcript...) are written by `affectlab preprocess`: "
                           "run it again on this output (finished stages are skipped)") from None


def write_splits(out: str, splits: dict[str, Any]) -> None:
    """Store the dataset card's named subject splits as ``<out>/splits.json`` (``{name: {train,
    val, test}}``), so trainings can name one (``data.emotion.split: NAME``) without the card."""
    data = {name: {part: list(getattr(split, part)) for part in ("train", "val", "test")}
            for name, split in splits.items()}
    storage.write_text(storage.join(out, "splits.json"), json.dumps(data, indent=1))


def load_splits(out: str) -> dict[str, dict[str, list[str]]]:
    """The named splits stored by :func:`write_splits` (empty when the card named none)."""
    uri = storage.join(out, "splits.json")
    return json.loads(storage.read_text(uri)) if storage.exists(uri) else {}


def load_errors(out: str) -> pa.Table:
    """All error rows (``sample_id, stage, error, message, path, version``); empty if none."""
    if not storage.list_files(storage.join(out, "errors"), suffix=".parquet"):
        return pa.table({k: pa.array([], pa.string()) for k in ("sample_id", "stage", "error", "message", "path", "version")})
    return storage.read_parquet(storage.join(out, "errors"))


def load_vocab(out: str, name: str, *, version: str | None = None, kind: str | None = None) -> dict[str, Any]:
    """The vocabulary JSON of a set (``au`` labels or ``egemaps`` F0), with integer ids restored."""
    kind = kind or ("labels" if name == "au" else "features")
    version = version or latest_version(out, kind, name)
    data = json.loads(storage.read_text(storage.join(sidecar_dir(out, "vocab", name, version), "vocab.json")))
    for key in ("ID_to_AU", "ID_to_F0"):
        if key in data:
            data[key] = {int(k): v for k, v in data[key].items()}
    return data


def feature_names(table_or_schema: pa.Table | pa.Schema, column: str = "features") -> list[str]:
    """Names of the D columns of a T x D feature column, from the schema metadata."""
    schema = table_or_schema.schema if isinstance(table_or_schema, pa.Table) else table_or_schema
    return list(read_meta(schema).get("columns", {}).get(column, []))


def label_names(table_or_schema: pa.Table | pa.Schema) -> list[str]:
    """Names of the K label columns (e.g. AU01 ... AU17) of a label table."""
    return feature_names(table_or_schema, "intensity")


def column_arrays(table: pa.Table, column: str, dtype: Any = np.float32) -> list[np.ndarray]:
    """One numpy array per row of a nested-list column: ``(T, D)`` for list<list>, ``(T,)`` for list."""
    chunked = table.column(column).combine_chunks()
    out = []
    depth = 0
    t: pa.DataType = chunked.type
    while pa.types.is_list(t) or pa.types.is_large_list(t):
        depth, t = depth + 1, t.value_type
    for i in range(len(chunked)):
        cell = chunked[i]
        if not cell.is_valid:
            out.append(np.empty((0,), dtype))
            continue
        values = cell.values
        if depth == 2:
            n_rows = len(values)
            flat = pc.list_flatten(values).to_numpy(zero_copy_only=False).astype(dtype, copy=False)
            out.append(flat.reshape(n_rows, -1) if n_rows else np.empty((0, 0), dtype))
        else:
            out.append(values.to_numpy(zero_copy_only=False).astype(dtype, copy=False))
    return out
