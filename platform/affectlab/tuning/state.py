"""A sweep's durable state: its output layout, the Optuna study and the trial ledger.

Layout of a sweep output ``<out>`` (a local path or ``s3://`` URI)::

    <out>/sweep.json            what was asked: the sweep file (resolved), samples, fingerprint
    <out>/optuna/study.journal  Optuna JournalStorage: every trial's params, values, state
    <out>/ledger.jsonl          every trial event and per-epoch result (learning curves)
    <out>/tune/part-NNN/        Ray Tune's experiment directory of each (resumed) run
    <out>/trials/<trial_id>/    what each trial's training wrote
    <out>/summary.json          best trial and counts, written at the end
    <out>/best_config.yaml      the best configuration as a config `affectlab train` accepts

The Optuna study is the source of truth for resuming: trials it holds as finished (COMPLETE or
PRUNED) are never run again, trials it holds as running were interrupted and are queued to run
again first, the TPE sampler sees the whole history and the pruner (ASHA) sees every trial's
per-epoch objective, so its rungs survive the interruption. In a grid search, combinations whose
trial failed are queued again as well (:func:`requeue_failed`). Nothing is taken from Tune's own
experiment state: each (resumed) run is a new Tune experiment that the study drives. Optuna's
journal is an append-only local file; for ``s3://`` outputs it (and the ledger) live in a local
cache directory and are uploaded after every finished trial and at the end
(``~/.cache/affectlab/sweeps/<hash of the URI>/``).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass
from typing import Any

from affectlab import storage
from affectlab.errors import ConfigError, StorageError

__all__ = ["StudyHistory", "SweepPaths", "best_trial", "check_output", "next_part", "open_study", "prepare_history",
           "read_ledger", "requeue_failed", "write_spec"]

STUDY_NAME = "affectlab-sweep"


@dataclass(frozen=True)
class SweepPaths:
    """Where a sweep's files are: the output URI and the local working copies."""

    out: str
    local_dir: str  # the out dir itself when local; a cache directory for s3:// outputs

    @classmethod
    def for_output(cls, out: str) -> SweepPaths:
        """Paths for the sweep output ``out``."""
        if storage.is_remote(out):
            digest = hashlib.sha256(out.rstrip("/").encode()).hexdigest()[:16]
            cache = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
            return cls(out=out, local_dir=os.path.join(cache, "affectlab", "sweeps", digest))
        return cls(out=out, local_dir=storage.filesystem(out)[1])

    @property
    def remote(self) -> bool:
        return storage.is_remote(self.out)

    @property
    def journal(self) -> str:
        return os.path.join(self.local_dir, "optuna", "study.journal")

    @property
    def ledger(self) -> str:
        return os.path.join(self.local_dir, "ledger.jsonl")

    @property
    def spec_uri(self) -> str:
        return storage.join(self.out, "sweep.json")

    @property
    def tune_dir(self) -> str:
        return storage.join(self.out, "tune")

    def trial_dir(self, trial_id: str) -> str:
        return storage.join(self.out, "trials", trial_id)

    def pull(self) -> None:
        """Fetch the journal and ledger of an s3:// sweep into the local cache (resume)."""
        if not self.remote:
            return
        for rel, local in (("optuna/study.journal", self.journal), ("ledger.jsonl", self.ledger)):
            uri = storage.join(self.out, *rel.split("/"))
            os.makedirs(os.path.dirname(local), exist_ok=True)
            if storage.exists(uri):  # the uploaded copy is the published state
                with open(local, "wb") as f:
                    f.write(storage.read_bytes(uri))

    def reset_local(self) -> None:
        """Forget a cached journal and ledger (a new s3:// sweep must not inherit an old one)."""
        if self.remote:
            for local in (self.journal, self.ledger):
                if os.path.exists(local):
                    os.remove(local)

    def push(self) -> None:
        """Upload the journal and ledger of an s3:// sweep (a no-op for local outputs)."""
        if not self.remote:
            return
        for rel, local in (("optuna/study.journal", self.journal), ("ledger.jsonl", self.ledger)):
            if os.path.exists(local):
                with open(local, "rb") as f:
                    storage.write_bytes(storage.join(self.out, *rel.split("/")), f.read())


def check_output(out: str, *, resume: bool) -> None:
    """Fail fast (before any Ray work) when ``out`` cannot take a new sweep, or has none to resume.

    Raises:
        StorageError: A new sweep's output already holds a sweep, or a resume finds none.
    """
    exists = storage.exists(storage.join(out, "sweep.json"))
    if exists and not resume:
        raise StorageError(f"{out} already holds a sweep; pass --resume to continue it or choose another --out")
    if resume and not exists:
        raise StorageError(f"{out}: no sweep to resume (no sweep.json); run without --resume first")


def write_spec(paths: SweepPaths, spec: dict[str, Any], *, resume: bool) -> dict[str, Any]:
    """Record what the sweep is (new sweep) or check it against the recorded one (resume).

    Returns:
        The spec in force: for a resume, the recorded one with ``num_samples`` updated.

    Raises:
        StorageError: A new sweep's output already holds a sweep, or a resume finds none.
        ConfigError: A resume's sweep file differs from the one the sweep started with.
    """
    check_output(paths.out, resume=resume)
    if not resume:
        storage.write_text(paths.spec_uri, json.dumps(spec, indent=2, sort_keys=True))
        return spec
    recorded = json.loads(storage.read_text(paths.spec_uri))
    if recorded.get("fingerprint") != spec["fingerprint"]:
        changed = [k for k in ("base", "space", "tune") if recorded.get(k) != spec.get(k)]
        raise ConfigError(
            f"{spec['source']}: differs from the sweep being resumed in {paths.out} "
            f"(changed: {', '.join(changed) or 'settings'}); resume with the original file "
            f"or start a new sweep in another --out"
        )
    recorded["num_samples"] = spec["num_samples"]
    recorded.setdefault("resumed_at", []).append(time.strftime("%Y-%m-%dT%H:%M:%S"))
    storage.write_text(paths.spec_uri, json.dumps(recorded, indent=2, sort_keys=True))
    return recorded


def open_study(paths: SweepPaths, *, direction: str, pruner: Any = None) -> tuple[Any, Any]:
    """Create or load the sweep's Optuna study in its journal file.

    Args:
        paths: The sweep's paths (the journal is ``paths.journal``).
        direction: ``"maximize"`` or ``"minimize"``.
        pruner: The Optuna pruner that stops trials early (not persisted: pass it on every
            open); default ``NopPruner`` (no early stopping).

    Returns:
        ``(study, storage)``: the study and its ``JournalStorage``.
    """
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    os.makedirs(os.path.dirname(paths.journal), exist_ok=True)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    store = JournalStorage(JournalFileBackend(paths.journal))
    study = optuna.create_study(study_name=STUDY_NAME, storage=store, direction=direction,
                                pruner=pruner or optuna.pruners.NopPruner(), load_if_exists=True)
    return study, store


@dataclass
class StudyHistory:
    """What earlier runs of a sweep left: finished and re-queued trials, the best objective."""

    finished: int = 0
    requeued: int = 0
    total_trials: int = 0
    best_value: float | None = None
    retried: int = 0  # grid searches: failed combinations queued again (requeue_failed)


def prepare_history(study: Any) -> StudyHistory:
    """Settle trials an interrupted driver left running and summarise the history.

    Trials the study holds as RUNNING when no driver runs were interrupted: each is marked FAIL
    and, if Tune had started it, its parameters are enqueued, so the next run evaluates them
    first. A trial killed inside ``ask`` (before it was handed to Tune, with none or only some of
    its parameters sampled) never trained: it is failed and not queued again. COMPLETE and PRUNED
    trials count towards the requested number of samples and are never run again; FAIL trials
    (interrupted, or a training error) do not count. The intermediate values of every trial stay
    in the study, so the pruner's rungs are what they were before the interruption.
    """
    from optuna.trial import TrialState

    from affectlab.tuning.searcher import TUNE_ID_ATTR, is_duplicate

    history = StudyHistory(total_trials=len(study.trials))
    for trial in study.get_trials(deepcopy=False):
        if trial.state == TrialState.RUNNING:
            study.tell(trial.number, state=TrialState.FAIL)
            if trial.params and TUNE_ID_ATTR in trial.user_attrs:
                study.enqueue_trial(trial.params, skip_if_exists=False)
                history.requeued += 1
        elif trial.state in (TrialState.COMPLETE, TrialState.PRUNED) and not is_duplicate(trial):
            history.finished += 1  # (a duplicate stands for an earlier trial's result: not trained)
    best = best_trial(study)
    history.best_value = None if best is None else float(best.value)
    return history


def requeue_failed(study: Any) -> int:
    """Grid searches: queue again every combination that no trial has finished and none waits
    for, but a trial has tried (it failed, or its driver was interrupted).

    Optuna's ``GridSampler`` counts a failed trial's combination as visited and would not offer
    it again; a resumed grid search runs it (first, like an interrupted trial), and no
    combination that finished (COMPLETE or PRUNED) runs again. Call after
    :func:`prepare_history`, whose re-queued interrupted trials count as waiting.

    Returns:
        The number of combinations queued.
    """
    from optuna.trial import TrialState

    trials = study.get_trials(deepcopy=False)
    finished = [t.params for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
    # a queued trial's parameters: where Study.enqueue_trial keeps them (its skip_if_exists reads them there too)
    waiting = [t.system_attrs.get("fixed_params", {}) for t in trials if t.state == TrialState.WAITING]
    queued = 0
    for trial in trials:
        if trial.state == TrialState.FAIL and trial.params and trial.params not in finished + waiting:
            study.enqueue_trial(dict(trial.params), skip_if_exists=False)
            waiting.append(dict(trial.params))
            queued += 1
    return queued


def best_trial(study: Any) -> Any:
    """The best trial that ran its whole epoch budget (COMPLETE, not a duplicate), or None.

    Trials the pruner stopped (PRUNED) are not candidates: their value is the objective after
    fewer epochs than the budget, which the configuration (``training.max_epochs``) does not
    describe. (This is Optuna's own rule for ``study.best_trial``.)
    """
    import math

    from optuna.trial import TrialState

    from affectlab.tuning.searcher import is_duplicate

    scored = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))
              if not is_duplicate(t) and t.value is not None and not math.isnan(t.value)]
    if not scored:
        return None
    sign = 1.0 if study.direction.name == "MAXIMIZE" else -1.0
    return max(scored, key=lambda t: (sign * t.value, -t.number))  # ties: the earliest trial


def read_ledger(path: str) -> list[dict[str, Any]]:
    """Read ledger events (a torn last line from a killed driver is skipped)."""
    if not os.path.exists(path):
        return []
    events = []
    with open(path, encoding="utf-8") as f:
        for line in f:
            try:
                events.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return events


def next_part(paths: SweepPaths) -> str:
    """Name of the next Tune experiment directory under ``<out>/tune`` (``part-001``...)."""
    fs, base = storage.filesystem(paths.tune_dir)
    import pyarrow.fs as pafs

    if fs.get_file_info(base).type == pafs.FileType.NotFound:
        return "part-001"
    names = [i.base_name for i in fs.get_file_info(pafs.FileSelector(base)) if i.base_name.startswith("part-")]
    numbers = [int(n.split("-")[1]) for n in names if n.split("-")[1].isdigit()]
    return f"part-{max(numbers, default=0) + 1:03d}"
