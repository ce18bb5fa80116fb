"""The sweep part of a report: best configuration, every trial, curves and hyperparameter plots.

Reads a sweep output (see :mod:`affectlab.tuning.state`): ``sweep.json`` for the space and
settings, ``ledger.jsonl`` for every trial's events and per-epoch results, ``summary.json``.
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

__all__ = ["TrialRow", "is_sweep", "load_trials", "sweep_section"]

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

    def last(self, metric: str) -> float | None:
        if not self.curve:
            return None
        return self.curve[max(self.curve)].get(metric)

    def best(self, metric: str, mode: str) -> float | None:
        values = [m[metric] for m in self.curve.values() if isinstance(m.get(metric), (int, float))]
        values = [v for v in values if not math.isnan(v)]
        if not values:
            return None
        return max(values) if mode == "max" else min(values)


_STATUS = {"complete": "finished", "stopped": "stopped early", "error": "failed"}


def load_trials(uri: str) -> list[TrialRow]:
    """Every trial of the sweep in ``uri``, in start order, from its ledger."""
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
        elif tid in trials and event.get("event") in _STATUS:
            trials[tid].status = _STATUS[event["event"]]
    return sorted(trials.values(), key=lambda t: t.number)


def _spec(uri: str) -> dict[str, Any]:
    return json.loads(storage.read_text(storage.join(uri, "sweep.json")))


def sweep_section(doc: Document, uri: str, write_png: WritePng, *, prefix: str = "sweep") -> None:
    """Append the sweep in ``uri`` to ``doc``; PNGs are handed to ``write_png(name, bytes)``."""
    spec = _spec(uri)
    tune = spec.get("tune", {})
    metric, mode = tune.get("metric", "val_uar"), tune.get("mode", "max")
    trials = load_trials(uri)
    space = spec.get("space", {})
    doc.heading(f"Sweep: {spec.get('source', uri)}")
    doc.text(_overview(spec, trials, metric))
    _best_table(doc, uri, trials, metric, mode, space)
    _trials_table(doc, trials, metric, mode, list(space))
    _sweep_plots(doc, trials, metric, mode, space, write_png, prefix)


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
    return (
        f"Optuna TPE (seed {tune.get('seed')}) with {stop}, objective {tune.get('mode')} {metric}; "
        f"{spec.get('num_samples')} trials requested, {len(trials)} started ({shown}); "
        f"{epochs} training epochs in all."
    )


def _best_trial(trials: list[TrialRow], metric: str, mode: str) -> TrialRow | None:
    """The trial whose best epoch is best (the training keeps its best epoch's weights)."""
    scored = [t for t in trials if t.status in ("finished", "stopped early") and t.best(metric, mode) is not None]
    if not scored:
        return None
    return max(scored, key=lambda t: t.best(metric, mode) if mode == "max" else -t.best(metric, mode))


def _best_table(doc: Document, uri: str, trials: list[TrialRow], metric: str, mode: str,
                space: dict[str, Any]) -> None:
    best = _best_trial(trials, metric, mode)
    doc.heading("Best configuration", 3)
    if best is None:
        doc.text("No trial has finished yet.")
        return
    rows = [[key, best.params.get(key), _describe(space.get(key, {}))] for key in space]
    rows.append([f"{metric} (best epoch)", best.best(metric, mode), f"trial {best.number} ({best.trial_id})"])
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
    if "choice" in dim:
        return "choice {" + ", ".join(map(str, dim["choice"])) + "}"
    return "-"


def _trials_table(doc: Document, trials: list[TrialRow], metric: str, mode: str, keys: list[str]) -> None:
    doc.heading("All trials", 3)
    columns = ["trial", "status", "epochs", f"{metric} (best epoch)", f"{metric} (last epoch)", *keys]
    rows = [
        [t.number, t.status, len(t.curve), t.best(metric, mode), t.last(metric), *[t.params.get(k) for k in keys]]
        for t in trials
    ]
    doc.table(Table(columns, rows))


def _sweep_plots(doc: Document, trials: list[TrialRow], metric: str, mode: str, space: dict[str, Any],
                 write_png: WritePng, prefix: str) -> None:
    curves = {f"trial {t.number}": {e: m[metric] for e, m in t.curve.items() if metric in m} for t in trials}
    stopped = [f"trial {t.number}" for t in trials if t.status == "stopped early"]
    if not any(curves.values()):
        return
    doc.heading("Plots", 3)
    name = f"{prefix}_learning_curves.png"
    write_png(name, plots.learning_curves_png(curves, metric=metric, stopped=stopped))
    doc.image(Image(name, f"{metric} per epoch for every trial (dashed: stopped early by ASHA)"))
    scored = [t for t in trials if t.best(metric, mode) is not None and t.status != "failed"]
    keys = [k for k in space if all(k in t.params for t in scored)]
    if len(scored) < 2 or not keys:
        return
    params = {k: [t.params[k] for t in scored] for k in keys}
    values = [float(t.best(metric, mode)) for t in scored]
    log_params = [k for k, d in space.items() if "loguniform" in d or d.get("log")]
    name = f"{prefix}_metric_vs_params.png"
    write_png(name, plots.metric_vs_params_png(params, values, metric=metric, log_params=log_params))
    doc.image(Image(name, f"{metric} (best epoch) of each trial against each hyperparameter"))
    name = f"{prefix}_parallel_coordinates.png"
    write_png(name, plots.parallel_coordinates_png(params, values, metric=metric, log_params=log_params))
    doc.image(Image(name, "parallel coordinates: one line per trial, coloured by the objective; each axis "
                          "scaled to its range (log10 for log-scale parameters)"))
