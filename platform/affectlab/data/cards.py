"""Dataset cards: small YAML files that describe a corpus and name the adapter that reads it.

Example (``datasets/my_corpus.yaml``)::

    name: my_corpus
    adapter: csv                # csv | ravdess | lrs | affwild2 | lma
    root: /data/my_corpus       # or s3://bucket/my_corpus; relative paths are card-relative
    options:
      manifest: manifest.csv
    frame_labels:
      rate_hz: 25
    splits:                     # optional: named subject splits a training can pick (--split NAME)
      seed001: {train: [actor_01, actor_02], val: [actor_03], test: [actor_04]}

The card is validated before anything else runs: unknown keys (top level or in ``options``),
an unknown adapter and a missing root are all reported, each naming the key.
"""

from __future__ import annotations

import os
import posixpath
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
from pydantic import Field, create_model, field_validator

from affectlab import storage
from affectlab.config import StrictModel, SubjectParts, apply_overrides, load_yaml, validate
from affectlab.errors import ConfigError, DatasetError, unknown_name_error

__all__ = ["Adapter", "DatasetCard", "FrameLabelSpec", "LoadedCard", "build_manifest", "load_card"]


class FrameLabelSpec(StrictModel):
    """Frame-level label settings shared by adapters."""

    rate_hz: float = Field(gt=0, le=1000, description="frame rate of the per-recording label files")


class DatasetCard(StrictModel):
    """The validated top level of a dataset card."""

    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9_.-]+$")
    adapter: str
    root: str = Field(min_length=1)
    description: str = ""
    options: dict[str, Any] = Field(default_factory=dict)
    frame_labels: FrameLabelSpec | None = None
    splits: dict[str, SubjectParts] = Field(
        default_factory=dict, description="named subject-disjoint splits (train / val / test subjects) that a "
                                          "training can name, e.g. `affectlab train --split seed001`")
    planted: dict[str, Any] | None = Field(
        default=None, description="for synthetic corpora: what relation was planted, documented"
    )

    @field_validator("options", mode="before")
    @classmethod
    def _empty_options(cls, value: object) -> object:
        return {} if value is None else value  # `options:` with every line commented out


@dataclass(frozen=True)
class Adapter:
    """An adapter: a name, its options model and a function building the manifest."""

    name: str
    options_model: type[StrictModel]
    build: Callable[[DatasetCard, Any, str], pa.Table]
    summary: str


@dataclass(frozen=True)
class LoadedCard:
    """A validated card with its resolved root, adapter and adapter options."""

    card: DatasetCard
    root: str
    adapter: Adapter
    options: Any
    source: str


def _adapters() -> dict[str, Adapter]:
    from affectlab.data.adapters import ADAPTERS

    return ADAPTERS


def _resolve_root(root: str, card_path: str) -> str:
    if storage.is_remote(root):
        return root
    root = os.path.expanduser(root)
    if os.path.isabs(root):
        return os.path.normpath(root)
    if storage.is_remote(card_path):
        scheme, rest = card_path.split("://", 1)
        return f"{scheme}://" + posixpath.normpath(posixpath.join(posixpath.dirname(rest), root))
    return os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(card_path)), root))


def _option_problems(adapter: Adapter, options: Any, path: str) -> tuple[Any, list[str]]:
    """Validate ``options`` against the adapter's model; problems are named ``options.<key>``."""
    if options is None:
        options = {}
    if not isinstance(options, dict):
        return None, []  # DatasetCard validation already reports a non-mapping 'options'
    wrapper = create_model("CardOptions", __base__=StrictModel, options=(adapter.options_model, ...))
    try:
        return validate(wrapper, {"options": options}, source=path).options, []
    except ConfigError as exc:
        return None, str(exc).splitlines()[1:]


def load_card(path: str, overrides: Iterable[str] = (), *, check_root: bool = True) -> LoadedCard:
    """Load and validate a dataset card.

    Args:
        path: Path or URI of the card YAML.
        overrides: ``key.sub=value`` overrides (e.g. ``root=/other/place``).
        check_root: Fail when the root does not exist.

    Raises:
        ConfigError: Unknown keys, bad values, unknown adapter or bad adapter options
            (all problems of the card reported together).
        DatasetError: The root does not exist.
    """
    data = apply_overrides(load_yaml(path), overrides)
    problems: list[str] = []
    card: DatasetCard | None = None
    try:
        card = validate(DatasetCard, data, source=path)
    except ConfigError as exc:
        problems.extend(str(exc).splitlines()[1:])
    adapters = _adapters()
    adapter_name = data.get("adapter")
    adapter = adapters.get(adapter_name) if isinstance(adapter_name, str) else None
    if isinstance(adapter_name, str) and adapter is None:
        problems.append(f"  - adapter: {unknown_name_error('adapter', adapter_name, list(adapters))}")
    options = None
    if adapter is not None:
        options, option_problems = _option_problems(adapter, data.get("options"), path)
        problems.extend(option_problems)
    if problems or card is None or adapter is None or options is None:
        raise ConfigError(f"{path}: {len(problems)} problem(s) in dataset card:\n" + "\n".join(problems))
    root = _resolve_root(card.root, path)
    if check_root and not storage.exists(root):
        raise DatasetError(f"{path}: root {root!r} does not exist (key 'root')")
    return LoadedCard(card=card, root=root, adapter=adapter, options=options, source=path)


def build_manifest(loaded: LoadedCard) -> pa.Table:
    """Run the card's adapter and return the manifest table (see :mod:`affectlab.data.manifest`).

    Raises:
        DatasetError: The adapter's, prefixed with the card's path when it does not name it (a
            user checking several cards sees which one is at fault).
    """
    try:
        return loaded.adapter.build(loaded.card, loaded.options, loaded.root)
    except DatasetError as exc:
        if loaded.source in str(exc):
            raise
        raise DatasetError(f"{loaded.source}: {exc}") from None
