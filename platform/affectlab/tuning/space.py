"""Sweep files: a ``base`` training config, the ``space`` to search and the ``tune`` settings.

A sweep file is an experiment file (``search_spaces/<name>.yaml``, see
:mod:`affectlab.training.config`) whose ``space`` and ``tune`` sections are filled in::

    space:                                   # dotted keys of `base` -> one distribution each
      training.lr: {loguniform: [1e-4, 1e-2]}
      model.kwargs.hidden: {int: [8, 64], step: 8}
      model.kwargs.window: {choice: [5, 10, 20]}
      model.kwargs.dropout: {uniform: [0.0, 0.5], step: 0.1}
    tune:
      metric: val_uar                        # reported every epoch by the training code
      mode: max
      num_samples: 16
      max_concurrent: null                   # default: what the cluster's CPUs allow
      seed: 0                                # seeds Optuna's TPE sampler
      startup_trials: 4                      # random trials before TPE models the history
      trial_runner: auto                     # in_process | ray_train (auto: by scaling.num_workers)
      asha: {grace_period: 1, reduction_factor: 2, max_t: null}   # null max_t: training.max_epochs;
                                             # asha: null trains every trial to the end

Every problem is reported at once: bad distributions, unknown ``tune`` keys, space keys that are
not keys of ``base`` (named), and space values that ``base`` would reject (each distribution's
end points and choices are validated against the base config before anything runs).
"""

from __future__ import annotations

import copy
import hashlib
import itertools
import json
import math
import typing
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from affectlab.config import StrictModel, apply_overrides, model_in_annotation, validate
from affectlab.errors import ConfigError

__all__ = [
    "AshaSettings",
    "Dimension",
    "Sweep",
    "TuneSettings",
    "load_sweep",
    "parse_sweep",
    "trial_config",
]

Scalar = bool | int | float | str


class Dimension(StrictModel):
    """One searched value: exactly one of ``loguniform``, ``uniform``, ``int`` or ``choice``."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    loguniform: tuple[float, float] | None = None
    uniform: tuple[float, float] | None = None
    int_range: tuple[int, int] | None = Field(default=None, alias="int")
    choice: tuple[Scalar, ...] | None = Field(default=None, min_length=1)
    step: float | None = Field(default=None, gt=0, description="grid step for uniform / int")
    log: bool = Field(default=False, description="int only: sample on a log scale")

    @model_validator(mode="after")
    def _one_kind(self) -> Dimension:
        kinds = [k for k in ("loguniform", "uniform", "int_range", "choice") if getattr(self, k) is not None]
        if len(kinds) != 1:
            raise ValueError("give exactly one of loguniform: [lo, hi], uniform: [lo, hi], int: [lo, hi], choice: [...]")
        kind = self.kind
        if kind != "choice":
            low, high = self.bounds
            if not low < high:
                raise ValueError(f"{kind}: low must be below high, got [{low}, {high}]")
            if kind == "loguniform" and low <= 0:
                raise ValueError(f"loguniform: bounds must be > 0, got [{low}, {high}]")
        elif len(set(map(repr, self.choice or ()))) != len(self.choice or ()):
            raise ValueError(f"choice: values must be distinct, got {list(self.choice or ())}")
        if self.step is not None and kind not in ("uniform", "int"):
            raise ValueError(f"step applies to uniform and int only, not {kind}")
        if self.step is not None and kind == "int" and self.step != int(self.step):
            raise ValueError(f"int: step must be a whole number, got {self.step}")
        if self.log and kind != "int":
            raise ValueError("log applies to int only (use loguniform for floats)")
        return self

    @property
    def kind(self) -> str:
        """``"loguniform"``, ``"uniform"``, ``"int"`` or ``"choice"``."""
        for name, attr in (("loguniform", "loguniform"), ("uniform", "uniform"), ("int", "int_range")):
            if getattr(self, attr) is not None:
                return name
        return "choice"

    @property
    def bounds(self) -> tuple[Any, Any]:
        """``(low, high)`` of a range dimension."""
        return self.loguniform or self.uniform or self.int_range or (None, None)

    def corners(self) -> list[Any]:
        """Values that must all be valid in the base config: both ends, or every choice."""
        if self.kind == "choice":
            return list(self.choice or ())
        low, high = self.bounds
        return [low, high]

    def to_optuna(self) -> Any:
        """The equivalent ``optuna.distributions`` object."""
        from optuna import distributions as d

        if self.kind == "choice":
            return d.CategoricalDistribution(list(self.choice or ()))
        low, high = self.bounds
        if self.kind == "loguniform":
            return d.FloatDistribution(low, high, log=True)
        if self.kind == "uniform":
            return d.FloatDistribution(low, high, step=self.step)
        return d.IntDistribution(low, high, step=int(self.step or 1), log=self.log)

    def describe(self) -> str:
        """Short human form, e.g. ``loguniform[0.0001, 0.01]``."""
        if self.kind == "choice":
            return "choice{" + ", ".join(map(str, self.choice or ())) + "}"
        low, high = self.bounds
        extra = f" step {self.step:g}" if self.step else ""
        return f"{self.kind}[{low:g}, {high:g}]{extra}"


class AshaSettings(StrictModel):
    """Asynchronous successive halving on the per-epoch objective (Optuna's
    ``SuccessiveHalvingPruner``): rungs at ``grace_period * reduction_factor**k`` epochs, below
    ``max_t``; at each rung a trial goes on only if it is in the best ``1/reduction_factor`` of
    the trials that reached that rung so far."""

    grace_period: int = Field(default=1, ge=1, description="epochs before a trial can be stopped")
    reduction_factor: int = Field(default=2, ge=2, description="a whole number: keep the best 1/reduction_factor")
    max_t: int | None = Field(default=None, ge=1, description="default: base training.max_epochs")

    @model_validator(mode="after")
    def _grace_within_budget(self) -> AshaSettings:
        if self.max_t is not None and self.grace_period > self.max_t:
            raise ValueError(f"grace_period ({self.grace_period}) must not exceed max_t ({self.max_t})")
        return self


class TuneSettings(StrictModel):
    """How a sweep searches: objective, budget, concurrency, seeds and early stopping."""

    metric: str = Field(default="val_uar", pattern=r"^[A-Za-z0-9_/.-]+$")
    mode: Literal["max", "min"] = "max"
    num_samples: int = Field(default=16, ge=1)
    max_concurrent: int | None = Field(default=None, ge=1)
    seed: int = Field(default=0, ge=0)
    startup_trials: int = Field(default=4, ge=1)
    trial_runner: Literal["auto", "in_process", "ray_train"] = Field(
        default="auto", description="auto: in-process for one CPU worker, a TorchTrainer otherwise"
    )
    asha: AshaSettings | None = AshaSettings()


@dataclass(frozen=True)
class Sweep:
    """A validated sweep file: the base config, the space (dotted key -> Dimension), settings."""

    base: Any  # affectlab.training.config.ExperimentConfig
    space: dict[str, Dimension]
    tune: TuneSettings
    source: str

    @property
    def max_t(self) -> int:
        """Epoch budget of one trial (ASHA's ``max_t``, else the base's ``max_epochs``)."""
        if self.tune.asha and self.tune.asha.max_t:
            return min(self.tune.asha.max_t, self.base.training.max_epochs)
        return int(self.base.training.max_epochs)

    def fingerprint(self) -> str:
        """Hash of everything that defines the search except the number of samples."""
        blob = {
            "base": self.base.model_dump(mode="json"),
            "space": {k: v.model_dump(mode="json", by_alias=True, exclude_none=True) for k, v in self.space.items()},
            "tune": self.tune.model_dump(mode="json", exclude={"num_samples", "max_concurrent"}),
        }
        return hashlib.sha256(json.dumps(blob, sort_keys=True).encode()).hexdigest()[:16]


def trial_config(base: Any, params: Mapping[str, Any]) -> Any:
    """The base config with a trial's dotted-key ``params`` applied and re-validated.

    Raises:
        ConfigError: The values make an invalid config (the message names the keys).
    """
    items = [f"{key}={json.dumps(value)}" for key, value in params.items()]  # JSON is YAML
    data = apply_overrides(base.model_dump(mode="json"), items)
    return validate(type(base), data, source="<trial config>")


def _is_mapping(annotation: Any) -> bool:
    if typing.get_origin(annotation) in (dict, Mapping):
        return True
    return any(_is_mapping(arg) for arg in typing.get_args(annotation))


def _unknown_part(model_cls: type[BaseModel], path: list[str]) -> str | None:
    """The first part of a dotted ``path`` that is not a key of the config, or None.

    Keys inside a free-form mapping (``model.kwargs.hidden``) are accepted here; the model
    builder's own check (run on every end point, see :func:`_corner_problems`) judges them.
    """
    cls = model_cls
    for i, part in enumerate(path):
        field = cls.model_fields.get(part)
        if field is None:
            return part
        sub = model_in_annotation(field.annotation)
        if sub is None:
            last = i == len(path) - 1
            return None if last or _is_mapping(field.annotation) else path[i + 1]
        cls = sub
    return None


def _problem_lines(exc: ConfigError, prefix: str) -> list[str]:
    """The problem lines of a nested ConfigError, re-rooted under ``prefix``."""
    lines = []
    for line in str(exc).splitlines()[1:]:
        text = line.strip()[2:].replace("<top level>: ", "").replace("Value error, ", "")
        lines.append(f"  - {prefix}{'' if text.startswith(':') else '.'}{text}" if prefix else f"  - {text}")
    return lines


def _space_problems(raw: Mapping[str, Any], base: Any) -> tuple[dict[str, Dimension], list[str]]:
    dims: dict[str, Dimension] = {}
    problems: list[str] = []
    for key, value in raw.items():
        if not isinstance(value, Mapping):
            problems.append(f"  - space.{key}: must be a mapping like {{loguniform: [1e-4, 1e-2]}}, got {value!r}")
            continue
        try:
            dim = validate(Dimension, value, source=f"space.{key}")
        except ConfigError as exc:
            lines = _problem_lines(exc, f"space.{key}")
            problems.extend(line.replace(f"space.{key}.", f"space.{key}: ", 1).replace("int_range", "int") for line in lines)
            continue
        bad = None if base is None else _unknown_part(type(base), key.split("."))
        if bad is not None:
            problems.append(f"  - space.{key}: not a key of the base config ({bad!r} is unknown there)")
            continue
        dims[key] = dim
    if base is None:  # the base config is invalid: its own problems are reported instead
        return dims, problems
    return dims, problems + _value_problems(base, dims, combinations=not problems)


def _rejection(base: Any, params: Mapping[str, Any]) -> str | None:
    """Why ``params`` applied to ``base`` make an invalid config (None when they do not)."""
    try:
        trial_config(base, params)
    except ConfigError as exc:
        return "; ".join(line.strip()[2:].replace("Value error, ", "") for line in str(exc).splitlines()[1:])
    return None


def _value_problems(
    base: Any, dims: Mapping[str, Dimension], *, combinations: bool = True, max_combinations: int = 512
) -> list[str]:
    """A space must not be able to propose an invalid config.

    Each end point / choice is checked with the other dimensions at their first value (so a
    ``model.kwargs`` key is judged with the searched ``model.name``), then, when there are at
    most ``max_combinations``, every combination of them.
    """
    if not dims:
        return []
    reference = {k: d.corners()[0] for k, d in dims.items()}
    if _rejection(base, reference):  # locate the culprits one dimension at a time
        problems = _corner_problems(base, dims, {})
        return problems or _combination_problem(base, [reference])
    problems = _corner_problems(base, dims, reference)
    if problems or not combinations or math.prod(len(d.corners()) for d in dims.values()) > max_combinations:
        return problems
    keys = list(dims)
    combos = (dict(zip(keys, combo, strict=True)) for combo in itertools.product(*(dims[k].corners() for k in keys)))
    return _combination_problem(base, combos)


def _corner_problems(base: Any, dims: Mapping[str, Dimension], reference: Mapping[str, Any]) -> list[str]:
    """Each dimension's end points / choices, the other dimensions held at ``reference``."""
    problems = []
    for key, dim in dims.items():
        for value in dim.corners():
            why = _rejection(base, {**reference, key: value})
            if why:
                others = ", ".join(f"{k}={v!r}" for k, v in reference.items() if k != key)
                context = f" (with {others})" if others else ""
                problems.append(f"  - space.{key}: value {value!r}{context} is rejected by the base config: {why}")
                break  # one value is enough to show the problem
    return problems


def _combination_problem(base: Any, combos: Iterable[Mapping[str, Any]]) -> list[str]:
    """The first combination of values the base config rejects, as a problem line."""
    for params in combos:
        why = _rejection(base, params)
        if why:
            shown = ", ".join(f"{k}={v!r}" for k, v in params.items())
            return [f"  - space: the combination {shown} is rejected by the base config: {why}"]
    return []


def _sections(data: Mapping[str, Any], overrides: Iterable[str]) -> dict[str, Any]:
    """``space`` and ``tune`` with their ``--set space... / tune...`` overrides applied.

    Space keys are dotted names themselves: ``--set "space.training.lr={loguniform: [1e-4, 1e-2]}"``
    sets the dimension of ``training.lr`` (not a nested ``training: {lr: ...}``).
    """
    from affectlab.config import parse_override

    sections = {k: copy.deepcopy(data.get(k)) or {} for k in ("space", "tune")}
    tune_items = []
    for item in overrides:
        head = item.split("=", 1)[0].strip()
        if head.startswith("space.") and isinstance(sections["space"], dict):
            path, value = parse_override(item)
            sections["space"][".".join(path[1:])] = value
        elif head == "space" or head.split(".", 1)[0] == "tune":
            tune_items.append(item)
    routed = apply_overrides(sections, tune_items)
    return {k: routed.get(k) for k in ("space", "tune")}


def parse_sweep(data: Mapping[str, Any], *, source: str = "<sweep>", overrides: Iterable[str] = ()) -> Sweep:
    """Validate a sweep mapping (an experiment with ``space`` and ``tune`` sections).

    Raises:
        ConfigError: Every problem in ``base``, ``space`` and ``tune``, reported together.
    """
    from affectlab.training.config import parse_experiment

    overrides = list(overrides)
    problems: list[str] = []
    base = None
    try:
        base = parse_experiment(data, source=source, overrides=overrides).base
    except ConfigError as exc:
        problems.extend(str(exc).splitlines()[1:])
    sections = _sections(data, overrides)
    if not sections["space"]:
        problems.append("  - space: required for a sweep: a mapping of dotted base keys to distributions")
    if not isinstance(sections["space"], Mapping) or not isinstance(sections["tune"], Mapping):
        problems.append("  - space, tune: must be mappings")
        sections = {"space": {}, "tune": {}}
    dims, space_problems = _space_problems(sections["space"], base)
    problems.extend(space_problems)
    tune = TuneSettings()
    try:
        tune = validate(TuneSettings, sections["tune"] or {}, source=source)
    except ConfigError as exc:
        problems.extend(_problem_lines(exc, "tune"))
    if problems or base is None:
        raise ConfigError(f"{source}: {len(problems)} problem(s) in sweep file:\n" + "\n".join(problems))
    return Sweep(base=base, space=dims, tune=tune, source=source)


def load_sweep(path: str, overrides: Iterable[str] = ()) -> Sweep:
    """Load and validate a sweep file from a path or URI (see :func:`parse_sweep`)."""
    from affectlab.config import load_yaml

    return parse_sweep(load_yaml(path), source=path, overrides=overrides)
