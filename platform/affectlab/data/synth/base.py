"""Shared pieces of the synthetic-corpus generators: request, seeding, pairing, writers."""

from __future__ import annotations

import csv
import os
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Optional

import numpy as np
import soundfile as sf
import yaml
from pydantic import Field, model_validator

from affectlab.config import StrictModel

__all__ = [
    "DurationOptions",
    "GENERATOR_VERSION",
    "Progress",
    "SynthRequest",
    "fit_length",
    "partner_indices",
    "rng_for",
    "shuffle_plan",
    "subject_id",
    "write_card",
    "write_csv",
    "write_manifest",
    "write_wav",
]

GENERATOR_VERSION = 1

Progress = Optional[Callable[[int], None]]  # called with the number of recordings just finished


class DurationOptions(StrictModel):
    """Options with a recording-duration range (subclasses change the defaults)."""

    min_duration_s: float = Field(2.0, ge=0.5, le=60, description="shortest recording")
    max_duration_s: float = Field(8.0, ge=0.5, le=60, description="longest recording")

    @model_validator(mode="after")
    def _ordered(self) -> DurationOptions:
        if self.max_duration_s < self.min_duration_s:
            raise ValueError(f"max_duration_s ({self.max_duration_s}) < min_duration_s ({self.min_duration_s})")
        return self


@dataclass(frozen=True)
class SynthRequest:
    """The validated common arguments of every kind."""

    kind: str
    out: str
    subjects: int
    items: int
    seed: int
    relation: str

    @property
    def shuffled(self) -> bool:
        """True for the control corpus whose labels belong to other recordings."""
        return self.relation == "shuffled"

    def path(self, *parts: str) -> str:
        """``out/parts...``, creating the parent directory."""
        full = os.path.join(self.out, *parts)
        os.makedirs(os.path.dirname(full), exist_ok=True)
        return full

    def card_base(
        self, adapter: str, description: str, options: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """The top of a dataset card for this request (name, adapter, root, options)."""
        return {
            "name": f"synth-{self.kind}",
            "adapter": adapter,
            "root": ".",
            "description": description,
            "options": options or {},
        }

    def planted_base(self) -> dict[str, Any]:
        """The part of the ``planted:`` mapping that every kind shares."""
        return {
            "generator": f"affectlab synth {self.kind} v{GENERATOR_VERSION}",
            "seed": self.seed,
            "subjects": self.subjects,
            "items_per_subject": self.items,
            "relation": self.relation,
        }


def rng_for(req: SynthRequest, *keys: int) -> np.random.Generator:
    """A generator for one (kind, seed, keys...) stream: items do not depend on the corpus size."""
    return np.random.default_rng([req.seed, zlib.crc32(req.kind.encode()), *keys])


def subject_id(index: int) -> str:
    """``s01``, ``s02``... (1-based display of a 0-based index)."""
    return f"s{index + 1:02d}"


def partner_indices(n: int, rng: np.random.Generator) -> np.ndarray:
    """A random permutation without fixed points: item ``i`` takes the labels of ``partner[i]``.

    Built as one cycle through a shuffled order, so no item keeps its own labels (``n >= 2``).
    """
    order = rng.permutation(n)
    partner = np.empty(n, dtype=int)
    partner[order] = np.roll(order, -1)
    return partner


def fit_length(x: np.ndarray, n: int, offset: int = 0) -> np.ndarray:
    """Rotate ``x`` (axis 0) left by ``offset``, then crop it to ``n`` rows or tile (wrap) it when shorter.

    The rotation keeps a shuffled control from sharing the position-in-recording structure
    (silence at both ends, neutral starts) with the recording it is paired with.
    """
    x = np.roll(x, -(offset % len(x)), axis=0) if len(x) else x
    if len(x) >= n:
        return x[:n]
    return np.concatenate([x] * (n // len(x) + 1))[:n]


def shuffle_plan(n: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Partner indices (see :func:`partner_indices`) and a random rotation (0..2**31) per item."""
    partner = partner_indices(n, rng)
    return partner, rng.integers(0, 2**31, size=n)


def write_csv(path: str, header: list[str], columns: list[np.ndarray], fmt: list[str]) -> None:
    """Write columns as a CSV with ``header`` (fixed formats, so equal data give equal bytes)."""
    table = np.column_stack([np.asarray(c, dtype=float) for c in columns])
    np.savetxt(path, table, fmt=fmt, delimiter=",", header=",".join(header), comments="")


MANIFEST_COLUMNS = (
    "sample_id", "subject", "audio", "video", "labels", "emotion", "transcript", "valence", "arousal",
)


def write_manifest(req: SynthRequest, rows: list[dict[str, str]]) -> None:
    """Write ``manifest.csv`` for the csv adapter (:data:`MANIFEST_COLUMNS`, empty where n/a)."""
    with open(req.path("manifest.csv"), "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(MANIFEST_COLUMNS)
        writer.writerows([row.get(c, "") for c in MANIFEST_COLUMNS] for row in rows)


def write_wav(path: str, audio: np.ndarray, sample_rate: int) -> None:
    """Write mono 16-bit PCM WAV."""
    sf.write(path, audio, sample_rate, subtype="PCM_16", format="WAV")


def _plain(value: Any) -> Any:
    """Numpy scalars/arrays to plain Python for YAML."""
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.ndarray):
        return _plain(value.tolist())
    if isinstance(value, np.generic):
        return value.item()
    return value


def write_card(out: str, card: dict[str, Any]) -> str:
    """Write ``out/dataset.yaml`` and return its path."""
    path = os.path.join(out, "dataset.yaml")
    with open(path, "w", encoding="utf-8") as fh:
        yaml.safe_dump(_plain(card), fh, sort_keys=False, allow_unicode=True, width=100)
    return path
