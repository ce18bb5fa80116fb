"""Speaker-wise feature normalisation (``003`` Section III-B), reproducible and LOSO-safe.

Step 1, at preprocessing time (:func:`compute_subject_stats`): for every subject, the mean and
standard deviation of each feature dimension over all frames of that subject's recordings
(NaN frames ignored; population std). Stored as
``<out>/stats/<set>/version=<v>/subject_stats.parquet`` with columns ``subject``,
``count`` (list<int64>, frames per dimension), ``mean`` and ``std`` (list<float64>); the feature
names are in the schema metadata.

Step 2, at training time (:func:`normalise`): ``(x - mean_s) / std_s`` with the stats of the
recording's own subject ``s``.

Why this is safe for leave-one-speaker-out: the stats of a subject are computed only from that
subject's own features and never from labels, so nothing about the held-out speaker's labels
and nothing from other speakers enters its normalisation. Normalising the held-out speaker
with its own stats does use its (unlabelled) test audio: this is unsupervised test-time
adaptation, like the per-speaker normalisation in ``003`` (which additionally considered AU
activity; we do not, to keep labels out). If that is not acceptable for an experiment, use
:func:`global_stats` with the training subjects of the fold only, and apply the pooled mean/std to
every subject (:func:`apply_stats`): then the test speaker contributes nothing at all.
Dimensions with std < 1e-8 (constant) are only centred (divided by 1).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from affectlab import storage
from affectlab.errors import DatasetError
from affectlab.features import io
from affectlab.features.arrow import META_KEY, read_meta

__all__ = ["SubjectStats", "apply_stats", "compute_subject_stats", "global_stats", "load_subject_stats", "normalise",
           "subject_stats"]

STD_FLOOR = 1e-8


@dataclass
class _Acc:
    count: np.ndarray
    mean: np.ndarray
    m2: np.ndarray

    def merge(self, count: np.ndarray, mean: np.ndarray, m2: np.ndarray) -> None:
        """Chan et al. parallel merge of (count, mean, sum of squared deviations)."""
        total = self.count + count
        safe = np.where(total > 0, total, 1)
        delta = mean - self.mean
        self.mean = self.mean + delta * count / safe
        self.m2 = self.m2 + m2 + delta**2 * self.count * count / safe
        self.count = total


def _block_stats(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    x = x.astype(np.float64)
    ok = ~np.isnan(x)
    count = ok.sum(axis=0)
    safe = np.where(count > 0, count, 1)
    mean = np.where(ok, x, 0.0).sum(axis=0) / safe
    m2 = (np.where(ok, x - mean, 0.0) ** 2).sum(axis=0)
    return count.astype(np.int64), mean, m2


@dataclass(frozen=True)
class SubjectStats:
    """Per-subject ``count``, ``mean`` and ``std`` (each ``(D,)``) of one feature set version."""

    names: list[str]
    count: dict[str, np.ndarray]
    mean: dict[str, np.ndarray]
    std: dict[str, np.ndarray]

    @classmethod
    def from_table(cls, table: pa.Table) -> SubjectStats:
        """Build from a ``subject_stats.parquet`` table."""
        rows = table.to_pylist()
        names = list(read_meta(table.schema).get("columns", {}).get("features", []))
        return cls(
            names=names,
            count={r["subject"]: np.asarray(r["count"], np.int64) for r in rows},
            mean={r["subject"]: np.asarray(r["mean"], np.float64) for r in rows},
            std={r["subject"]: np.asarray(r["std"], np.float64) for r in rows},
        )

    def to_table(self) -> pa.Table:
        """The Parquet layout described in the module docstring."""
        subjects = sorted(self.mean)
        table = pa.table({
            "subject": subjects,
            "count": [self.count[s].tolist() for s in subjects],
            "mean": [self.mean[s].tolist() for s in subjects],
            "std": [self.std[s].tolist() for s in subjects],
        })
        return table.replace_schema_metadata({META_KEY: json.dumps({"columns": {"features": self.names}}).encode()})

    def subject(self, subject: str) -> tuple[np.ndarray, np.ndarray]:
        """``(mean, std)`` of one subject.

        Raises:
            DatasetError: No stats for ``subject`` (lists the known subjects).
        """
        if subject not in self.mean:
            raise DatasetError(f"no normalisation stats for subject {subject!r}; known: {sorted(self.mean)}")
        return self.mean[subject], self.std[subject]


def compute_subject_stats(out: str, name: str, *, version: str | None = None, column: str = "features") -> SubjectStats:
    """Compute per-subject stats of a feature set version and write them (see module docstring)."""
    version = version or io.latest_version(out, "features", name)
    stats = subject_stats(out, name, version=version, column=column)
    storage.write_parquet(stats.to_table(), storage.join(io.sidecar_dir(out, "stats", name, version), "subject_stats.parquet"))
    return stats


def subject_stats(out: str, name: str, *, version: str | None = None, column: str = "features") -> SubjectStats:
    """Per-subject stats of a feature set version, computed without writing them.

    Reads one Parquet file at a time and keeps only per-recording sums (D numbers each); the
    recordings are merged in ``sample_id`` order, so the result does not depend on file layout.
    """
    version = version or io.latest_version(out, "features", name)
    blocks: dict[str, tuple[str, tuple[np.ndarray, np.ndarray, np.ndarray]]] = {}
    names: list[str] = []
    for uri in storage.list_files(io.set_dir(out, "features", name, version), suffix=".parquet"):
        table = storage.read_parquet(uri, columns=["sample_id", "subject", column])
        names = names or io.feature_names(table, column)
        cells = io.column_arrays(table, column, np.float64)
        for sample_id, subject, x in zip(table.column("sample_id").to_pylist(), table.column("subject").to_pylist(), cells, strict=True):
            if x.ndim == 2 and x.size:
                blocks[sample_id] = (subject, _block_stats(x))
    accs: dict[str, _Acc] = {}
    for sample_id in sorted(blocks):  # a fixed merge order: equal results however rows were split into files
        subject, block = blocks[sample_id]
        if subject in accs:
            accs[subject].merge(*block)
        else:
            accs[subject] = _Acc(*block)
    return SubjectStats(
        names=names,
        count={s: a.count for s, a in accs.items()},
        mean={s: a.mean for s, a in accs.items()},
        std={s: np.sqrt(a.m2 / np.where(a.count > 0, a.count, 1)) for s, a in accs.items()},
    )


def load_subject_stats(out: str, name: str, *, version: str | None = None) -> SubjectStats:
    """Read the stats written by :func:`compute_subject_stats`."""
    version = version or io.latest_version(out, "features", name)
    return SubjectStats.from_table(storage.read_parquet(storage.join(io.sidecar_dir(out, "stats", name, version), "subject_stats.parquet")))


def apply_stats(features: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """``(features - mean) / std`` (std < 1e-8 treated as 1), as float32. ``features``: (T, D)."""
    scale = np.where(std < STD_FLOOR, 1.0, std)
    return ((np.asarray(features, np.float64) - mean) / scale).astype(np.float32)


def normalise(features: np.ndarray, stats: SubjectStats, subject: str) -> np.ndarray:
    """Speaker-normalise ``features`` (T, D) of a recording of ``subject`` with its own stats.

    See the module docstring for why this is leave-one-speaker-out safe and for the
    :func:`global_stats` alternative.
    """
    mean, std = stats.subject(subject)
    return apply_stats(features, mean, std)


def global_stats(stats: SubjectStats, subjects: Iterable[str]) -> tuple[np.ndarray, np.ndarray]:
    """Pooled ``(mean, std)`` over the frames of ``subjects`` only (e.g. a fold's training subjects).

    Exact: merges each subject's count / mean / std (no recomputation from features).
    """
    acc: _Acc | None = None
    for s in subjects:
        mean, std = stats.subject(s)
        block = (stats.count[s], mean, std**2 * stats.count[s])
        if acc is None:
            acc = _Acc(*block)
        else:
            acc.merge(*block)
    if acc is None:
        raise DatasetError("global_stats: no subjects given")
    return acc.mean, np.sqrt(acc.m2 / np.where(acc.count > 0, acc.count, 1))
