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
      search: tpe                            # tpe (default) | grid

**Grid searches** (``tune.search: grid``) try every combination of the space once, with Optuna's
``GridSampler``; every entry must then have a finite list of values::

    space:
      training.class_weights: {grid: [true, false]}        # the values themselves (any scalars)
      model.name: {choice: [stacked, encdec]}               # a choice: its values
      model.kwargs.hidden: {int: [8, 32], step: 8}          # 8, 16, 24, 32
      model.kwargs.dropout: {uniform: [0.0, 0.2], step: 0.1}   # 0.0, 0.1, 0.2 (points up to high)
    tune: {search: grid}

``loguniform``, and ``int`` / ``uniform`` without a ``step``, have no grid points: the error names
the key and what to write instead (``{grid: [...]}`` with the values, or a ``step``). A ``grid:``
entry needs ``search: grid`` (for TPE, write ``choice:``). In a grid search ``num_samples``
defaults to the number of points and any other number is an error (each point runs once;
a partial grid is a TPE sweep over ``choice`` entries); ``seed`` sets the (shuffled) order of
the points, ``startup_trials`` is unused; there is **no early stopping unless ``asha:`` is given**
explicitly (every point trains to its own end).

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
    "grid_size",
    "load_sweep",
    "parse_sweep",
    "trial_config",
]

Scalar = bool | int | float | str


class Dimension(StrictModel):
    """One searched value: exactly one of ``loguniform``, ``uniform``, ``int``, ``choice`` or
    ``grid`` (the values of a grid search, ``tune.search: grid``)."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    loguniform: tuple[float, float] | None = None
    uniform: tuple[float, float] | None = None
    int_range: tuple[int, int] | None = Field(default=None, alias="int")
    choice: tuple[Scalar, ...] | None = Field(default=None, min_length=1)
    grid: tuple[Scalar, ...] | None = Field(default=None, min_length=1, description="grid search: every value")
    step: float | None = Field(default=None, gt=0, description="grid step for uniform / int")
    log: bool = Field(default=False, description="int only: sample on a log scale")

    @model_validator(mode="after")
    def _one_kind(self) -> Dimension:
        kinds = [k for k in ("loguniform", "uniform", "int_range", "choice", "grid") if getattr(self, k) is not None]
        if len(kinds) != 1:
            raise ValueError("give exactly one of loguniform: [lo, hi], uniform: [lo, hi], int: [lo, hi], "
                             "choice: [...], grid: [...]")
        kind = self.kind
        if kind not in ("choice", "grid"):
            low, high = self.bounds
            if not low < high:
                raise ValueError(f"{kind}: low must be below high, got [{low}, {high}]")
            if kind == "loguniform" and low <= 0:
                raise ValueError(f"loguniform: bounds must be > 0, got [{low}, {high}]")
        elif len(set(map(repr, self.values))) != len(self.values):
            raise ValueError(f"{kind}: values must be distinct, got {list(self.values)}")
        if self.step is not None and kind not in ("uniform", "int"):
            raise ValueError(f"step applies to uniform and int only, not {kind}")
        if self.step is not None and kind == "int" and self.step != int(self.step):
            raise ValueError(f"int: step must be a whole number, got {self.step}")
        if self.log and kind != "int":
            raise ValueError("log applies to int only (use loguniform for floats)")
        return self

    @property
    def kind(self) -> str:
        """``"loguniform"``, ``"uniform"``, ``"int"``, ``"choice"`` or ``"grid"``."""
        kinds = (("loguniform", "loguniform"), ("uniform", "uniform"), ("int", "int_range"), ("grid", "grid"))
        for name, attr in kinds:
            if getattr(self, attr) is not None:
                return name
        return "choice"

    @property
    def values(self) -> tuple[Scalar, ...]:
        """The listed values of a ``choice`` or ``grid`` (empty for a range)."""
        return self.choice or self.grid or ()

    @property
    def bounds(self) -> tuple[Any, Any]:
        """``(low, high)`` of a range dimension."""
        return self.loguniform or self.uniform or self.int_range or (None, None)

    def corners(self) -> list[Any]:
        """Values that must all be valid in the base config: both ends, or every choice."""
        if self.kind in ("choice", "grid"):
            return list(self.values)
        low, high = self.bounds
        return [low, high]

    def grid_points(self) -> list[Any]:
        """Every value a grid search tries: the listed values, or a stepped range's points from
        ``low`` up to ``high`` (``high`` itself when it is on the step).

        Raises:
            ValueError: The dimension has no finite set of points (``loguniform``, or ``int`` /
                ``uniform`` without a ``step``); the message says what to write instead.
        """
        if self.kind in ("choice", "grid"):
            return list(self.values)
        low, high = self.bounds
        if self.kind == "loguniform":
            shown = ", ".join(f"{v:g}" for v in _log_points(low, high))
            raise ValueError(f"loguniform [{low:g}, {high:g}] has no grid points in a grid search (tune.search: grid); "
                             f"list the values to try, e.g. {{grid: [{shown}]}}")
        if self.kind == "int" and self.log:
            powers = [2 ** k for k in range(int(high).bit_length() + 1) if low < 2 ** k < high]
            shown = ", ".join(map(str, [low, *powers, high]))
            raise ValueError(f"int [{low}, {high}] with log: true has no grid points in a grid search "
                             f"(tune.search: grid); list the values to try, e.g. {{grid: [{shown}]}}")
        if self.step is None:
            if self.kind == "int":
                raise ValueError(f"int [{low}, {high}] needs a step in a grid search (tune.search: grid): "
                                 f"{{int: [{low}, {high}], step: 1}} tries all {high - low + 1} integers; "
                                 f"or list the values, {{grid: [{low}, {high}]}}")
            raise ValueError(f"uniform [{low:g}, {high:g}] needs a step in a grid search (tune.search: grid), e.g. "
                             f"{{uniform: [{low:g}, {high:g}], step: {(high - low) / 4:g}}}; or list the values, "
                             f"{{grid: [{low:g}, {high:g}]}}")
        if self.kind == "int":
            return list(range(int(low), int(high) + 1, int(self.step)))
        count = math.floor((high - low) / self.step + 1e-9) + 1
        return [float(f"{low + i * self.step:.12g}") for i in range(count)]  # 0.30000000000000004 -> 0.3

    def to_optuna(self) -> Any:
        """The equivalent ``optuna.distributions`` object (a grid: categorical over its values)."""
        from optuna import distributions as d

        if self.kind in ("choice", "grid"):
            return d.CategoricalDistribution(list(self.values))
        low, high = self.bounds
        if self.kind == "loguniform":
            return d.FloatDistribution(low, high, log=True)
        if self.kind == "uniform":
            return d.FloatDistribution(low, high, step=self.step)
        return d.IntDistribution(low, high, step=int(self.step or 1), log=self.log)

    def describe(self) -> str:
        """Short human form, e.g. ``loguniform[0.0001, 0.01]``."""
        if self.kind in ("choice", "grid"):
            return self.kind + "{" + ", ".join(map(str, self.values)) + "}"
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
    """How a sweep searches: objective, budget, concurrency, seeds and early stopping.

    ``search: grid`` tries every combination of the space once (see the module docstring):
    ``num_samples`` is then the number of combinations and ``asha`` is off unless given.
    """

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
    search: Literal["tpe", "grid"] = Field(
        default="tpe", description="tpe: Optuna's TPE proposes num_samples trials; grid: every combination once"
    )


@dataclass(frozen=True)
class Sweep:
    """A validated sweep file: the base config, the space (dotted key -> Dimension), settings."""

    base: Any  # affectlab.training.config.ExperimentConfig
    space: dict[str, Dimension]
    tune: TuneSettings
    source: str

    @property
    def grid(self) -> dict[str, list[Any]]:
        """A grid search's values per searched key (:meth:`Dimension.grid_points`)."""
        return {key: dim.grid_points() for key, dim in self.space.items()}

    @property
    def max_t(self) -> int:
        """Round budget of one trial (ASHA's ``max_t``, else the base's rounds: ``max_epochs``, or
        ``max_iterations / eval_every`` evaluation periods for an iteration budget)."""
        rounds = int(self.base.training.max_evaluations)
        if self.tune.asha and self.tune.asha.max_t:
            return min(self.tune.asha.max_t, rounds)
        return rounds

    def fingerprint(self) -> str:
        """Hash of everything that defines the search except the number of samples.

        ``search: tpe`` (the default) is left out, so that sweeps started before grid searches
        existed keep their fingerprint (and can be resumed).
        """
        ignored = {"num_samples", "max_concurrent"} | ({"search"} if self.tune.search == "tpe" else set())
        blob = {
            "base": self.base.model_dump(mode="json"),
            "space": {k: v.model_dump(mode="json", by_alias=True, exclude_none=True) for k, v in self.space.items()},
            "tune": self.tune.model_dump(mode="json", exclude=ignored),
        }
        return hashlib.sha256(json.dumps(blob, sort_keys=True).encode()).hexdigest()[:16]


def grid_size(grid: Mapping[str, list[Any]]) -> int:
    """Number of combinations of a grid (see :attr:`Sweep.grid`)."""
    return math.prod(len(values) for values in grid.values())


def _log_points(low: float, high: float) -> list[float]:
    """A suggestion for a log-scale grid: both ends and the powers of ten between them."""
    decades = [10.0 ** e for e in range(math.ceil(math.log10(low)), math.floor(math.log10(high)) + 1)]
    inner = [v for v in decades if low < v < high and not math.isclose(v, low) and not math.isclose(v, high)]
    if not inner:
        inner = [float(f"{math.sqrt(low * high):.2g}")]
    return [low, *inner, high]


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


def _space_problems(raw: Mapping[str, Any], base: Any, *, grid: bool | None = False
                    ) -> tuple[dict[str, Dimension], list[str]]:
    """The space's dimensions and its problems. ``grid``: a grid search, whose entries must all
    have grid points and whose every point (not just the end points) is checked against the base;
    None: the kind of search is unknown (``tune.search`` is invalid), neither rule applies."""
    dims: dict[str, Dimension] = {}
    candidates: dict[str, list[Any]] = {}
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
        if grid:
            try:
                candidates[key] = dim.grid_points()
            except ValueError as exc:
                problems.append(f"  - space.{key}: {exc}")
                continue
        elif dim.kind == "grid" and grid is not None:
            problems.append(f"  - space.{key}: grid: [...] lists the values of a grid search: add `search: grid` to "
                            f"tune (every combination once), or write choice: [...] for TPE")
            continue
        else:
            candidates[key] = dim.corners()
        dims[key] = dim
    if base is None:  # the base config is invalid: its own problems are reported instead
        return dims, problems
    return dims, problems + _value_problems(base, candidates, combinations=not problems)


def _rejection(base: Any, params: Mapping[str, Any]) -> str | None:
    """Why ``params`` applied to ``base`` make an invalid config (None when they do not)."""
    try:
        trial_config(base, params)
    except ConfigError as exc:
        return "; ".join(line.strip()[2:].replace("Value error, ", "") for line in str(exc).splitlines()[1:])
    return None


def _value_problems(
    base: Any, candidates: Mapping[str, list[Any]], *, combinations: bool = True, max_combinations: int = 512
) -> list[str]:
    """A space must not be able to propose an invalid config.

    ``candidates`` are each key's values to check (a dimension's end points / choices, or every
    point of a grid search). Each is checked with the other keys at their first value (so a
    ``model.kwargs`` key is judged with the searched ``model.name``), then, when there are at
    most ``max_combinations``, every combination of them.
    """
    if not candidates:
        return []
    reference = {k: values[0] for k, values in candidates.items()}
    if _rejection(base, reference):  # locate the culprits one dimension at a time
        problems = _corner_problems(base, candidates, {})
        return problems or _combination_problem(base, [reference])
    problems = _corner_problems(base, candidates, reference)
    if problems or not combinations or math.prod(len(v) for v in candidates.values()) > max_combinations:
        return problems
    keys = list(candidates)
    combos = (dict(zip(keys, combo, strict=True)) for combo in itertools.product(*(candidates[k] for k in keys)))
    return _combination_problem(base, combos)


def _corner_problems(base: Any, candidates: Mapping[str, list[Any]], reference: Mapping[str, Any]) -> list[str]:
    """Each key's candidate values, the other keys held at ``reference``."""
    problems = []
    for key, values in candidates.items():
        for value in values:
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
    tune, tune_problems = TuneSettings(), []
    try:
        tune = validate(TuneSettings, sections["tune"] or {}, source=source)
    except ConfigError as exc:
        tune_problems = _problem_lines(exc, "tune")
    grid: bool | None = tune.search == "grid"
    if tune_problems:  # tune is invalid: judge the space by what search says, if it says something valid
        grid = {None: False, "tpe": False, "grid": True}.get((sections["tune"] or {}).get("search"))
    dims, space_problems = _space_problems(sections["space"], base, grid=grid)
    problems.extend(space_problems)
    problems.extend(tune_problems)
    if grid and not tune_problems and not space_problems and dims:
        tune, grid_problems = _grid_settings(tune, {k: d.grid_points() for k, d in dims.items()})
        problems.extend(grid_problems)
    if problems or base is None:
        raise ConfigError(f"{source}: {len(problems)} problem(s) in sweep file:\n" + "\n".join(problems))
    return Sweep(base=base, space=dims, tune=tune, source=source)


def _grid_settings(tune: TuneSettings, grid: Mapping[str, list[Any]]) -> tuple[TuneSettings, list[str]]:
    """A grid search's settings: ``num_samples`` is the number of combinations (a different
    explicit number is a problem) and ``asha`` is off unless the file gives it."""
    size = grid_size(grid)
    if "num_samples" in tune.model_fields_set and tune.num_samples != size:
        shape = f" ({' x '.join(str(len(values)) for values in grid.values())})" if len(grid) > 1 else ""
        return tune, [f"  - tune.num_samples: {tune.num_samples}, but the grid has {size} points{shape} and a grid "
                      f"search runs each once: leave num_samples out (it defaults to {size}) or set it to {size}"]
    update: dict[str, Any] = {"num_samples": size}
    if "asha" not in tune.model_fields_set:
        update["asha"] = None  # every point trains to its own end unless early stopping is asked for
    return tune.model_copy(update=update), []


def load_sweep(path: str, overrides: Iterable[str] = ()) -> Sweep:
    """Load and validate a sweep file from a path or URI (see :func:`parse_sweep`)."""
    from affectlab.config import load_yaml

    return parse_sweep(load_yaml(path), source=path, overrides=overrides)
