"""Typed, frozen configs loaded from YAML, with every problem reported at once.

A config class is a pydantic model deriving from :class:`StrictModel` (unknown keys are errors,
instances are frozen). :func:`load_config` reads YAML (safely, with ``1e-4`` read as a float,
unlike plain PyYAML), applies ``--set key.sub=value`` overrides and validates. All problems are
collected into one :class:`~affectlab.errors.ConfigError` whose lines each name the dotted key,
the bad value and what is allowed; a misspelt key gets the closest known key as a hint.

Hostile or broken YAML is refused with a :class:`~affectlab.errors.ConfigError` naming the file,
never a traceback: a key given twice in one mapping (plain PyYAML keeps the last silently), text
that is not UTF-8, anything but a regular file of at most :data:`MAX_CONFIG_BYTES`, nesting deeper
than :data:`MAX_DEPTH`, and anchors/aliases that expand to more than :data:`MAX_VALUES` values (a
"billion laughs") or refer to themselves. Floats must be finite: ``.nan`` and ``.inf`` are errors
in every config model.
"""

from __future__ import annotations

import difflib
import os
import re
import stat
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from affectlab.errors import ConfigError

__all__ = [
    "MAX_CONFIG_BYTES",
    "MAX_DEPTH",
    "MAX_VALUES",
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

MAX_CONFIG_BYTES = 4 * 1024 * 1024  # a config or card larger than this is not one
MAX_DEPTH = 32  # mappings / lists nested deeper than this (configs use about 6 levels)
MAX_VALUES = 100_000  # values after expanding YAML aliases (a "billion laughs" expands to 10**9)


class StrictModel(BaseModel):
    """Base for every affectlab config: unknown keys are rejected, floats must be finite (``.nan``
    and ``.inf`` are errors) and instances are frozen."""

    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True, allow_inf_nan=False)


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


def _construct_mapping_once(loader: yaml.SafeLoader, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
    """``SafeLoader.construct_mapping`` that refuses a key written twice in one mapping (PyYAML
    would keep the last value silently). Keys merged in with ``<<:`` may be overridden."""
    if isinstance(node, yaml.MappingNode):
        first: dict[tuple[str, str], Any] = {}
        for key_node, _ in node.value:
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = (key_node.tag, key_node.value)
            if key in first:
                raise yaml.constructor.ConstructorError(
                    "while constructing a mapping", node.start_mark,
                    f"found duplicate key {key_node.value!r} (first given on line {first[key].line + 1})",
                    key_node.start_mark)
            first[key] = key_node.start_mark
    return yaml.SafeLoader.construct_mapping(loader, node, deep=deep)


YamlLoader.construct_mapping = _construct_mapping_once  # type: ignore[method-assign]


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
    if not storage.is_remote(text_or_path):
        _check_local_file(text_or_path, source)
    try:
        data = storage.read_bytes(text_or_path)
    except FileNotFoundError as exc:
        raise ConfigError(f"{source}: file not found") from exc
    if len(data) > MAX_CONFIG_BYTES:
        raise ConfigError(f"{source}: {len(data)} bytes; a config file holds at most {MAX_CONFIG_BYTES} bytes")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{source}: not UTF-8 text (byte {exc.start}: {data[exc.start:exc.start + 1]!r}); "
                          "a config is a YAML text file") from None
    return parse_yaml(text, source=source)


def _check_local_file(path: str, source: str) -> None:
    """A local config must be a regular file of at most :data:`MAX_CONFIG_BYTES` (not a directory,
    FIFO or device such as ``/dev/zero``, which would never end)."""
    try:
        info = os.stat(os.path.expanduser(path.removeprefix("file://")))
    except FileNotFoundError:
        raise ConfigError(f"{source}: file not found") from None
    except OSError as exc:
        raise ConfigError(f"{source}: cannot read ({exc.strerror})") from None
    if stat.S_ISDIR(info.st_mode):
        raise ConfigError(f"{source}: is a directory, expected a YAML file")
    if not stat.S_ISREG(info.st_mode):
        raise ConfigError(f"{source}: not a regular file (a device or pipe?), expected a YAML file")
    if info.st_size > MAX_CONFIG_BYTES:
        raise ConfigError(f"{source}: {info.st_size} bytes; a config file holds at most {MAX_CONFIG_BYTES} bytes")


def parse_yaml(text: str, *, source: str = "<string>") -> dict[str, Any]:
    """Parse YAML text that must hold a mapping at the top level (see :func:`load_yaml`).

    Raises:
        ConfigError: Not YAML, a duplicate key, not a mapping, too deep or too large once
            aliases are expanded (module docstring); the message names ``source``.
    """
    try:
        data = yaml.load(text, Loader=YamlLoader)  # noqa: S506 - YamlLoader is a SafeLoader
    except yaml.YAMLError as exc:
        where = str(exc).replace('"<unicode string>"', source)  # PyYAML names the text, not the file
        raise ConfigError(f"{source}: not valid YAML: {where}") from exc
    except RecursionError:
        raise ConfigError(f"{source}: nested too deeply to read (a config nests at most {MAX_DEPTH} levels)") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: top level must be a mapping of keys, got {type(data).__name__}")
    _check_shape(data, source)
    return data


def _check_shape(data: Any, source: str) -> None:
    """Refuse structures nested deeper than :data:`MAX_DEPTH`, holding more than :data:`MAX_VALUES`
    values once YAML aliases are expanded, or containing themselves (a recursive alias).

    Shared sub-structures (aliases) are sized once, so a "billion laughs" is caught in a few
    steps instead of being walked (or printed in an error) a billion times.
    """
    sizes: dict[int, int] = {}
    open_: set[int] = set()

    def size(node: Any, path: str, depth: int) -> int:
        if not isinstance(node, (dict, list)):
            return 1
        if id(node) in sizes:
            return sizes[id(node)]
        if id(node) in open_:
            raise ConfigError(f"{source}: {path or '<top level>'}: a YAML alias refers to itself (recursive structure)")
        if depth > MAX_DEPTH:
            raise ConfigError(f"{source}: {path}: nested more than {MAX_DEPTH} levels deep")
        open_.add(id(node))
        items = node.items() if isinstance(node, dict) else enumerate(node)
        total = 1
        for key, child in items:
            total += size(child, f"{path}.{key}" if path else str(key), depth + 1)
            if total > MAX_VALUES:
                raise ConfigError(f"{source}: {path or '<top level>'}: expands to more than {MAX_VALUES} values "
                                  "(YAML anchors and aliases repeating a structure?)")
        open_.discard(id(node))
        sizes[id(node)] = total
        return total

    size(data, "", 0)


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
