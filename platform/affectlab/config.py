"""Typed, frozen configs loaded from YAML, with every problem reported at once.

A config class is a pydantic model deriving from :class:`StrictModel` (unknown keys are errors,
instances are frozen). :func:`load_config` reads YAML (safely, with ``1e-4`` read as a float,
unlike plain PyYAML), applies ``--set key.sub=value`` overrides and validates. All problems are
collected into one :class:`~affectlab.errors.ConfigError` whose lines each name the dotted key,
the bad value and what is allowed; a misspelt key gets the closest known key as a hint.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from affectlab.errors import ConfigError

__all__ = [
    "StrictModel",
    "SubjectParts",
    "YamlLoader",
    "apply_overrides",
    "format_validation_error",
    "load_config",
    "load_yaml",
    "model_in_annotation",
    "parse_override",
    "validate",
]

M = TypeVar("M", bound=BaseModel)


class StrictModel(BaseModel):
    """Base for every affectlab config: unknown keys are rejected and instances are frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)


class SubjectParts(StrictModel):
    """A subject-disjoint split: train, validation and test subjects (ids as the manifest names
    them, e.g. ``actor_21``). Dataset cards name such splits (``splits:``); trainings use one."""

    train: tuple[str, ...] = Field(min_length=1)
    val: tuple[str, ...] = Field(min_length=1)
    test: tuple[str, ...] = ()

    @model_validator(mode="after")
    def _disjoint(self) -> SubjectParts:
        seen: dict[str, str] = {}
        problems = []
        for part in ("train", "val", "test"):
            for subject in getattr(self, part):
                if subject in seen and seen[subject] != part:
                    problems.append(f"{subject!r} is in both {seen[subject]} and {part}")
                seen.setdefault(subject, part)
        if problems:
            raise ValueError("split parts must not share subjects: " + "; ".join(problems))
        return self


class YamlLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that also reads ``1e-4``, ``5E3`` and ``.5`` as floats.

    YAML 1.1 (PyYAML's dialect) requires a dot and a signed exponent for floats, so plain
    PyYAML reads ``1e-4`` as the string ``"1e-4"``: a classic source of silent config bugs.
    """


_FLOAT_RE = re.compile(
    r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
    |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
    |\.[0-9_]+(?:[eE][-+]?[0-9]+)?
    |[-+]?\.(?:inf|Inf|INF)
    |\.(?:nan|NaN|NAN))$""",
    re.X,
)
YamlLoader.yaml_implicit_resolvers = {
    key: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:float"]
    for key, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
YamlLoader.add_implicit_resolver("tag:yaml.org,2002:float", _FLOAT_RE, list("-+0123456789."))


def load_yaml(text_or_path: str, *, source: str | None = None) -> dict[str, Any]:
    """Read a YAML mapping from a local path or storage URI.

    Args:
        text_or_path: A local path or ``s3://`` URI of a YAML file.
        source: Name used in error messages (defaults to the path).

    Returns:
        The parsed mapping (an empty dict for an empty file).

    Raises:
        ConfigError: The file is missing, is not valid YAML, or is not a mapping.
    """
    from affectlab import storage

    source = source or text_or_path
    try:
        text = storage.read_text(text_or_path)
    except FileNotFoundError as exc:
        raise ConfigError(f"{source}: file not found") from exc
    return parse_yaml(text, source=source)


def parse_yaml(text: str, *, source: str = "<string>") -> dict[str, Any]:
    """Parse YAML text that must hold a mapping at the top level (see :func:`load_yaml`)."""
    try:
        data = yaml.load(text, Loader=YamlLoader)  # noqa: S506 - YamlLoader is a SafeLoader
    except yaml.YAMLError as exc:
        raise ConfigError(f"{source}: not valid YAML: {exc}") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: top level must be a mapping of keys, got {type(data).__name__}")
    return data


def parse_override(item: str) -> tuple[list[str], Any]:
    """Split ``key.sub=value`` into the key path and the YAML-parsed value.

    Raises:
        ConfigError: ``item`` has no ``=`` or an empty key.
    """
    key, sep, raw = item.partition("=")
    key = key.strip()
    if not sep or not key or any(not part for part in key.split(".")):
        raise ConfigError(f"--set {item!r}: expected KEY.SUB=VALUE, e.g. --set training.lr=1e-3")
    try:
        value = yaml.load(raw, Loader=YamlLoader) if raw.strip() else ""  # noqa: S506
    except yaml.YAMLError:
        value = raw  # not YAML (e.g. a glob like **/*.wav): keep the text as given
    return key.split("."), value


def apply_overrides(data: Mapping[str, Any], overrides: Iterable[str]) -> dict[str, Any]:
    """Return a deep copy of ``data`` with each ``key.sub=value`` override set.

    Intermediate mappings are created as needed; validation later reports keys that the config
    class does not know.
    """
    import copy

    result: dict[str, Any] = copy.deepcopy(dict(data))
    for item in overrides:
        path, value = parse_override(item)
        node = result
        for part in path[:-1]:
            child = node.get(part)
            if not isinstance(child, dict):
                child = {}
                node[part] = child
            node = child
        node[path[-1]] = value
    return result


def _dotted(loc: Sequence[Any]) -> str:
    return ".".join(str(p) for p in loc) or "<top level>"


def _known_keys(model_cls: type[BaseModel], loc: Sequence[Any]) -> list[str]:
    """Field names of the sub-model at ``loc`` (best effort; empty when not a model)."""
    cls: Any = model_cls
    for part in loc:
        if isinstance(part, int) or cls is None:
            continue
        field = getattr(cls, "model_fields", {}).get(part)
        if field is None:
            return []
        cls = model_in_annotation(field.annotation)
    return list(getattr(cls, "model_fields", {}).keys()) if cls is not None else []


def model_in_annotation(annotation: Any) -> type[BaseModel] | None:
    """The pydantic model inside a field annotation (``Model``, ``Model | None``...), if any."""
    import typing

    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in typing.get_args(annotation):
        found = model_in_annotation(arg)
        if found is not None:
            return found
    return None


def format_validation_error(
    exc: ValidationError, model_cls: type[BaseModel], *, source: str
) -> ConfigError:
    """Turn pydantic's errors into one ConfigError with a line per problem."""
    lines = []
    for err in exc.errors():
        loc = err.get("loc", ())
        key = _dotted(loc)
        value = err.get("input")
        if err["type"] == "extra_forbidden":
            known = _known_keys(model_cls, loc[:-1])
            close = difflib.get_close_matches(str(loc[-1]), known, n=1)
            hint = f" (did you mean {'.'.join([*map(str, loc[:-1]), close[0]])!r}?)" if close else ""
            lines.append(f"  - {key}: unknown key{hint}; allowed here: {', '.join(known) or '-'}")
        elif err["type"] == "missing":
            lines.append(f"  - {key}: required key is missing")
        else:
            shown = repr(value)
            if len(shown) > 80:
                shown = shown[:77] + "..."
            lines.append(f"  - {key}: {err['msg']} (got {shown})")
    return ConfigError(f"{source}: {len(lines)} problem(s) in config:\n" + "\n".join(lines))


def validate(model_cls: type[M], data: Mapping[str, Any], *, source: str = "<config>") -> M:
    """Validate ``data`` into ``model_cls``; raise one ConfigError that lists every problem."""
    try:
        return model_cls.model_validate(dict(data))
    except ValidationError as exc:
        raise format_validation_error(exc, model_cls, source=source) from None


def load_config(model_cls: type[M], path: str, overrides: Iterable[str] = ()) -> M:
    """Load YAML from ``path``, apply ``--set`` overrides and validate into ``model_cls``."""
    data = apply_overrides(load_yaml(path), overrides)
    return validate(model_cls, data, source=path)
