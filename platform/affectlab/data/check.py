"""Checks of a loaded card's manifest: recordings, subjects, missing files, label coverage."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from affectlab import storage
from affectlab.data.manifest import MEDIA_COLUMNS

__all__ = ["ManifestReport", "check_manifest", "split_problems"]

LABEL_COLUMNS = ("labels_path", "emotion", "transcript", "word_times", "valence", "arousal", "dominance", "features")


@dataclass
class ManifestReport:
    """What :func:`check_manifest` found."""

    n_recordings: int
    n_subjects: int
    media_counts: dict[str, int]
    label_coverage: dict[str, int]
    missing: list[tuple[str, str, str]] = field(default_factory=list)  # (sample_id, column, path)

    @property
    def ok(self) -> bool:
        """True when no referenced file is missing."""
        return not self.missing


def check_manifest(manifest: pa.Table) -> ManifestReport:
    """Check that every referenced file exists and count labels per kind."""
    rows = manifest.to_pylist()
    missing: list[tuple[str, str, str]] = []
    media_counts = {c: 0 for c in MEDIA_COLUMNS}
    for row in rows:
        for column in MEDIA_COLUMNS:
            path = row.get(column)
            if not path:
                continue
            media_counts[column] += 1
            if not storage.exists(path):
                missing.append((row["sample_id"], column, path))
    coverage = {c: sum(1 for r in rows if r.get(c) is not None) for c in LABEL_COLUMNS}
    return ManifestReport(
        n_recordings=len(rows),
        n_subjects=len({r["subject"] for r in rows}),
        media_counts={k: v for k, v in media_counts.items() if v},
        label_coverage={k: v for k, v in coverage.items() if v},
        missing=missing,
    )


def split_problems(splits: dict[str, Any], manifest: pa.Table) -> list[str]:
    """For each named split of a card (``splits:``), the subjects it names that have no recording in
    the manifest, as messages naming the split, the part and the subjects (empty: all fine)."""
    present = set(manifest.column("subject").to_pylist()) if manifest.num_rows else set()
    problems = []
    for name, split in splits.items():
        for part in ("train", "val", "test"):
            absent = [s for s in getattr(split, part) if s not in present]
            if absent:
                problems.append(f"splits.{name}.{part} names subject(s) without recordings: {', '.join(absent)}")
    return problems
