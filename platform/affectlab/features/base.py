"""The extractor contract shared by every preprocessing stage (audio and video).

An extractor turns one manifest row into one output row. It is constructed once per Ray worker
(heavy things such as an ``opensmile.Smile`` or a landmark network are loaded in ``__init__``)
and then called for many rows. It declares a ``name`` (the feature-set directory name), a
``version`` and its ``params()``; the pipeline hashes name, version and params into the feature
set's identity, so changed parameters write a new feature-set version instead of mixing.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Protocol, runtime_checkable

__all__ = ["Extractor", "params_hash"]


@runtime_checkable
class Extractor(Protocol):
    """One preprocessing stage.

    Attributes:
        name: Feature-set name, used as ``<out>/features/<name>/``.
        version: Bumped when the extractor's output changes for the same params.
    """

    name: str
    version: str

    def params(self) -> dict[str, Any]:
        """JSON-serialisable parameters that determine the output."""
        ...

    def process(self, row: dict[str, Any]) -> dict[str, Any]:
        """Process one manifest row.

        Returns:
            An output row with at least ``sample_id``, ``subject``, ``n_frames`` and
            ``frame_rate_hz``, plus the extractor's columns (sequences as numpy arrays T x D).

        Raises:
            affectlab.errors.MediaError: The input is unusable; the message says why and names
                the file. The pipeline records it in ``<out>/errors/`` and carries on.
        """
        ...


def params_hash(name: str, version: str, params: dict[str, Any]) -> str:
    """Short stable hash of an extractor's identity (used to version feature sets)."""
    blob = json.dumps({"name": name, "version": version, "params": params}, sort_keys=True, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]
