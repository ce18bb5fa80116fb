"""The sweep's trial ledger, with readable progress (a Tune callback in the driver).

The ledger appends one JSON line per event (trial started, epoch result, finished / stopped
early / failed) to a local file, flushed at once, so that a killed driver loses at most the line
being written; it prints the same events as short lines instead of Ray's wide trial table.
Every result and end event carries the trial's objective (``objective``: the sweep metric of the
epoch whose weights the training keeps, and ``kept_epoch``; see
:mod:`affectlab.tuning.searcher`).
"""

from __future__ import annotations

import json
import math
import os
import time
from collections.abc import Callable, Mapping
from typing import Any

from ray.tune import Callback

from affectlab.tuning.searcher import StudyDriver

__all__ = ["SweepLedger", "format_params"]

# result keys that are Tune bookkeeping, not training metrics
_TUNE_KEYS = {
    "time_this_iter_s", "time_total_s", "timestamp", "pid", "hostname", "node_ip", "date",
    "time_since_restore", "iterations_since_restore", "checkpoint_dir_name", "done", "trial_id",
    "experiment_tag", "config", "should_checkpoint", "training_iteration",
}


def format_params(params: Mapping[str, Any]) -> str:
    """``training.lr=3.2e-04 model.kwargs.hidden=32``: compact, stable order."""
    parts = []
    for key in sorted(params):
        value = params[key]
        shown = f"{value:.3g}" if isinstance(value, float) else str(value)
        parts.append(f"{key}={shown}")
    return " ".join(parts)


class SweepLedger(Callback):
    """Writes every trial event to the ledger file and prints readable progress.

    Args:
        path: Local ledger file (appended to).
        part: Name of this run (``part-001``...), recorded with each event.
        metric: The sweep metric, shown in progress lines.
        mode: ``"max"`` or ``"min"``.
        total: Trials this sweep will have in all (for ``trial 3/12``).
        driver: The study driver: each trial's objective and whether the pruner stopped it.
        first_number: Number of the first trial started by this run.
        best: The best objective of earlier runs of the sweep (a resume), or None.
        echo: Where progress lines go (``print`` by default); None for silence.
        on_finish: Called after each finished trial (e.g. to upload the ledger and journal).
        verbose: Also print one line per epoch.
    """

    def __init__(
        self,
        path: str,
        *,
        part: str,
        metric: str,
        mode: str,
        total: int,
        driver: StudyDriver,
        first_number: int = 1,
        best: float | None = None,
        echo: Callable[[str], None] | None = print,
        on_finish: Callable[[], None] | None = None,
        verbose: bool = False,
    ) -> None:
        self.path, self.part, self.metric, self.mode = path, part, metric, mode
        self.total, self.next_number, self.driver = total, first_number, driver
        self.echo, self.on_finish, self.verbose = echo, on_finish, verbose
        self.numbers: dict[str, int] = {}
        self.best: tuple[float, int] | None = None if best is None or math.isnan(best) else (float(best), 0)
        self.epochs = 0
        self._last_status = time.monotonic()
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)

    # -- writing ---------------------------------------------------------------------------
    def _write(self, event: str, trial: Any, **fields: Any) -> None:
        record = {"event": event, "trial_id": trial.trial_id, "number": self.numbers.get(trial.trial_id),
                  "part": self.part, "time": time.time(), **fields}
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(record, default=_jsonable) + "\n")
            f.flush()
            os.fsync(f.fileno())

    def _say(self, text: str) -> None:
        if self.echo is not None:
            self.echo(text)

    def _better(self, value: float, than: float) -> bool:
        return value > than if self.mode == "max" else value < than

    def _objective_fields(self, trial_id: str) -> dict[str, Any]:
        objective = self.driver.objective(trial_id)
        if objective is None:
            return {}
        return {"objective": objective.value, "kept_epoch": objective.kept_epoch}

    # -- Tune callback hooks ---------------------------------------------------------------
    def on_trial_start(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        self.numbers[trial.trial_id] = self.next_number
        self.next_number += 1
        self._write("start", trial, params=dict(trial.config))
        self._say(f"[sweep] trial {self.numbers[trial.trial_id]}/{self.total} started: {format_params(trial.config)}")

    def on_trial_result(self, iteration: int, trials: list, trial: Any, result: dict, **info: Any) -> None:
        metrics = {k: v for k, v in result.items() if k not in _TUNE_KEYS and _is_number(v)}
        step = int(result.get("epoch", result.get("training_iteration", 0)))
        self.epochs += 1
        self._write("result", trial, iteration=step, metrics=metrics, **self._objective_fields(trial.trial_id))
        if self.verbose:
            shown = " ".join(f"{k}={v:.4g}" for k, v in sorted(metrics.items()) if k != "epoch")
            self._say(f"[sweep] trial {self.numbers.get(trial.trial_id)} epoch {step}: {shown}")
        self._maybe_status(trials)

    def on_trial_complete(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        objective = self.driver.objective(trial.trial_id)
        step = objective.epoch if objective else 0
        early = trial.trial_id in self.driver.pruned
        self._write("stopped" if early else "complete", trial, iteration=step, params=dict(trial.config),
                    **self._objective_fields(trial.trial_id))
        how = f"stopped early by ASHA after {step} epoch(s)" if early else f"finished after {step} epoch(s)"
        if objective is None:
            shown = "no metric"
        else:
            shown = f"{self.metric}={objective.value:.4f} (weights of epoch {objective.kept_epoch})"
            # only trials that ran their budget compete for the best (see sweep.run_sweep)
            if not early and not math.isnan(objective.value) and (
                    self.best is None or self._better(objective.value, self.best[0])):
                self.best = (objective.value, self.numbers.get(trial.trial_id, 0))
        self._say(f"[sweep] trial {self.numbers.get(trial.trial_id)}/{self.total} {how}: {shown}{self._best_text()}")
        self._finished()

    def on_trial_error(self, iteration: int, trials: list, trial: Any, **info: Any) -> None:
        error = getattr(trial, "error_file", None)
        self._write("error", trial, params=dict(trial.config), error_file=error)
        self._say(f"[sweep] trial {self.numbers.get(trial.trial_id)}/{self.total} FAILED (log: {error})")
        self._finished()

    def _finished(self) -> None:
        if self.on_finish is not None:
            self.on_finish()

    def _best_text(self) -> str:
        if self.best is None:
            return ""
        where = f"trial {self.best[1]}" if self.best[1] else "an earlier run"
        return f" (best so far {self.best[0]:.4f}, {where})"

    def _maybe_status(self, trials: list, every_s: float = 20.0) -> None:
        now = time.monotonic()
        if now - self._last_status < every_s:
            return
        self._last_status = now
        running = sum(1 for t in trials if t.status == "RUNNING")
        done = sum(1 for t in trials if t.status in ("TERMINATED", "ERROR"))
        self._say(f"[sweep] {running} running, {done} done in this run, {self.epochs} epochs{self._best_text()}")


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _jsonable(value: Any) -> Any:
    if hasattr(value, "item"):
        return value.item()
    return str(value)
