"""The sweep part of a report: best configuration, every trial, curves and hyperparameter plots.

Reads a sweep output (see :mod:`affectlab.tuning.state`): ``sweep.json`` for the space and
settings, ``ledger.jsonl`` for every trial's events and per-epoch results.

A trial is scored as the sweep scores it (:mod:`affectlab.tuning.searcher`): by its
**objective**, the sweep metric of the epoch whose weights its training keeps (the ledger's
``objective`` and ``kept_epoch``), not by its best epoch overall. The best configuration is the
best trial that ran its whole epoch budget (finished, not stopped early; ties: the earliest),
the rule behind the sweep's ``summary.json`` and ``best_config.yaml``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from affectlab import storage
from affectlab.reporting import plots
from affectlab.reporting.document import Document, Image, Table

__all__ = ["TrialRow", "best_trial", "is_sweep", "load_trials", "sweep_section"]

WritePng = Callable[[str, bytes], None]


def is_sweep(uri: str) -> bool:
    """True when ``uri`` holds a sweep output."""
    return storage.exists(storage.join(uri, "sweep.json"))


@dataclass
class TrialRow:
    """One trial as the report shows it."""

    number: int
    trial_id: str
    params: dict[str, Any]
    status: str = "interrupted"  # finished | stopped early | failed | interrupted
    curve: dict[int, dict[str, float]] = field(default_factory=dict)
    objective: float | None = None  # the metric of the epoch whose weights the training keeps
    kept_epoch: int | None = None  # that epoch

    def last(self, metric: str) -> float | None:
        """``metric`` of the last epoch reported."""
        if not self.curve:
            return None
        return self.curve[max(self.curve)].get(metric)

    @property
    def scored(self) -> bool:
        """True when the trial has a (finite) objective."""
        return self.objective is not None and not math.isnan(self.objective)


_STATUS = {"complete": "finished", "stopped": "stopped early", "error": "failed"}


def load_trials(uri: str, metric: str | None = None) -> list[TrialRow]:
    """Every trial of the sweep in ``uri``, in start order, from its ledger.

    Args:
        uri: The sweep output.
        metric: The sweep metric (default: ``tune.metric`` of its ``sweep.json``); used only for
            ledgers written before the ledger recorded each trial's objective.
    """
    ledger_uri = storage.join(uri, "ledger.jsonl")
    if not storage.exists(ledger_uri):
        return []
    trials: dict[str, TrialRow] = {}
    for line in storage.read_text(ledger_uri).splitlines():
        try:
            event = json.loads(line)
        except json.JSONDecodeError:
            continue  # a torn last line from an interrupted driver
        tid = event.get("trial_id")
        if event.get("event") == "start":
            trials[tid] = TrialRow(number=event.get("number") or len(trials) + 1, trial_id=tid,
                                   params=dict(event.get("params") or {}))
        elif tid in trials and event.get("event") == "result":
            trials[tid].curve[int(event["iteration"])] = dict(event.get("metrics") or {})
            _take_objective(trials[tid], event)
        elif tid in trials and event.get("event") in _STATUS:
            trials[tid].status = _STATUS[event["event"]]
            _take_objective(trials[tid], event)
    unscored = [t for t in trials.values() if t.objective is None and t.curve]
    if unscored:
        metric = metric or _spec(uri).get("tune", {}).get("metric", "val_uar")
        for trial in unscored:
            _objective_from_curve(trial, metric)
    return sorted(trials.values(), key=lambda t: t.number)


def _take_objective(trial: TrialRow, event: dict[str, Any]) -> None:
    """The latest objective the ledger recorded for ``trial`` (result and end events carry it)."""
    value, kept = event.get("objective"), event.get("kept_epoch")
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        trial.objective = float(value)
        trial.kept_epoch = int(kept) if isinstance(kept, (int, float)) and not isinstance(kept, bool) else None


def _objective_from_curve(trial: TrialRow, metric: str) -> None:
    """A ledger without ``objective`` fields: the same rule from the curve, through the last
    epoch's ``best_epoch`` (the epoch whose weights the training keeps after it); left unscored
    when the curve does not say which epoch that is."""
    kept = trial.curve[max(trial.curve)].get("best_epoch")
    if isinstance(kept, (int, float)) and int(kept) in trial.curve:
        value = trial.curve[int(kept)].get(metric)
        if isinstance(value, (int, float)):
            trial.objective, trial.kept_epoch = float(value), int(kept)


def _spec(uri: str) -> dict[str, Any]:
    return json.loads(storage.read_text(storage.join(uri, "sweep.json")))


def sweep_section(doc: Document, uri: str, write_png: WritePng, *, prefix: str = "sweep") -> None:
    """Append the sweep in ``uri`` to ``doc``; PNGs are handed to ``write_png(name, bytes)``."""
    spec = _spec(uri)
    tune = spec.get("tune", {})
    metric, mode = tune.get("metric", "val_uar"), tune.get("mode", "max")
    trials = load_trials(uri, metric)
    space = spec.get("space", {})
    doc.heading(f"Sweep: {spec.get('source', uri)}")
    doc.text(_overview(spec, trials, metric))
    _best_table(doc, uri, trials, metric, mode, space)
    _trials_table(doc, trials, metric, list(space))
    _sweep_plots(doc, trials, metric, space, write_png, prefix)


def _overview(spec: dict[str, Any], trials: list[TrialRow], metric: str) -> str:
    tune = spec.get("tune", {})
    asha = tune.get("asha")
    epochs = sum(len(t.curve) for t in trials)
    counts = {s: sum(1 for t in trials if t.status == s) for s in ("finished", "stopped early", "failed", "interrupted")}
    shown = ", ".join(f"{n} {s}" for s, n in counts.items() if n)
    stop = (
        f"ASHA (grace period {asha.get('grace_period')}, reduction factor {asha.get('reduction_factor')})"
        if asha else "no early stopping"
    )
    search = "grid search (order" if tune.get("search") == "grid" else "TPE (seed"
    return (
        f"Optuna {search} {tune.get('seed')}) with {stop}, objective {tune.get('mode')} {metric} "
        f"of the weights each training keeps; {spec.get('num_samples')} trials requested, "
        f"{len(trials)} started ({shown}); {epochs} training epochs in all. The best configuration "
        f"is the best trial that ran its whole epoch budget (trials stopped early are not candidates)."
    )


def best_trial(trials: list[TrialRow], mode: str) -> TrialRow | None:
    """The sweep's best trial: the best objective among the trials that ran their whole epoch
    budget (``finished``; not stopped early, failed or interrupted); ties: the earliest trial.

    The same rule as :func:`affectlab.tuning.state.best_trial`, which picks the trial behind the
    sweep's ``summary.json`` and ``best_config.yaml``.
    """
    sign = 1.0 if mode == "max" else -1.0
    scored = [t for t in trials if t.status == "finished" and t.scored]
    if not scored:
        return None
    return max(scored, key=lambda t: (sign * float(t.objective), -t.number))  # type: ignore[arg-type]


def _best_table(doc: Document, uri: str, trials: list[TrialRow], metric: str, mode: str,
                space: dict[str, Any]) -> None:
    best = best_trial(trials, mode)
    doc.heading("Best configuration", 3)
    if best is None:
        ended = any(t.status in ("stopped early", "failed") for t in trials)
        doc.text("No trial ran its whole epoch budget (all stopped early or failed), so there is no best "
                 "configuration." if ended else "No trial has finished yet.")
        return
    rows = [[key, best.params.get(key), _describe(space.get(key, {}))] for key in space]
    rows.append([f"{metric} (kept weights)", best.objective, f"trial {best.number} ({best.trial_id})"])
    rows.append(["kept epoch", best.kept_epoch, "the epoch whose weights the training keeps"])
    rows.append(["epochs trained", len(best.curve), best.status])
    doc.table(Table(["parameter", "value", "searched over"], rows))
    if storage.exists(storage.join(uri, "best_config.yaml")):
        doc.text(f"Full configuration: {storage.join(uri, 'best_config.yaml')} (runs with `affectlab train`).")


def _describe(dim: dict[str, Any]) -> str:
    for kind in ("loguniform", "uniform", "int"):
        if kind in dim:
            low, high = dim[kind]
            step = f" step {dim['step']}" if dim.get("step") else ""
            return f"{kind} [{low}, {high}]{step}"
    for kind in ("choice", "grid"):
        if kind in dim:
            return kind + " {" + ", ".join(map(str, dim[kind])) + "}"
    return "-"


def _trials_table(doc: Document, trials: list[TrialRow], metric: str, keys: list[str]) -> None:
    doc.heading("All trials", 3)
    columns = ["trial", "status", "epochs", f"{metric} (kept weights)", "kept epoch", f"{metric} (last epoch)", *keys]
    rows = [
        [t.number, t.status, len(t.curve), t.objective, t.kept_epoch, t.last(metric), *[t.params.get(k) for k in keys]]
        for t in trials
    ]
    doc.table(Table(columns, rows))


def _sweep_plots(doc: Document, trials: list[TrialRow], metric: str, space: dict[str, Any],
                 write_png: WritePng, prefix: str) -> None:
    curves = {f"trial {t.number}": {e: m[metric] for e, m in t.curve.items() if metric in m} for t in trials}
    stopped = [f"trial {t.number}" for t in trials if t.status == "stopped early"]
    if not any(curves.values()):
        return
    doc.heading("Plots", 3)
    name = f"{prefix}_learning_curves.png"
    write_png(name, plots.learning_curves_png(curves, metric=metric, stopped=stopped))
    doc.image(Image(name, f"{metric} per epoch for every trial (dashed: stopped early by ASHA)"))
    scored = [t for t in trials if t.scored and t.status != "failed"]
    keys = [k for k in space if all(k in t.params for t in scored)]
    if len(scored) < 2 or not keys:
        return
    params = {k: [t.params[k] for t in scored] for k in keys}
    values = [float(t.objective) for t in scored]  # type: ignore[arg-type]
    log_params = [k for k, d in space.items() if "loguniform" in d or d.get("log")]
    name = f"{prefix}_metric_vs_params.png"
    write_png(name, plots.metric_vs_params_png(params, values, metric=metric, log_params=log_params))
    doc.image(Image(name, f"{metric} of the weights each trial's training kept, against each hyperparameter "
                          f"(trials stopped early: after fewer epochs)"))
    name = f"{prefix}_parallel_coordinates.png"
    write_png(name, plots.parallel_coordinates_png(params, values, metric=metric, log_params=log_params))
    doc.image(Image(name, "parallel coordinates: one line per trial, coloured by the objective; each axis "
                          "scaled to its range (log10 for log-scale parameters)"))
