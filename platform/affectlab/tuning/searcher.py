"""The sweep's Optuna study, driven through Optuna's public ask-and-tell interface from Ray Tune.

Ray Tune runs the trials; Optuna decides what to try and what to stop. Three pieces, all on
public interfaces (``optuna.Study.ask`` / ``tell``, ``optuna.Trial.report`` / ``should_prune``,
Tune's ``Searcher`` and ``FIFOScheduler`` extension points):

* :class:`StudyDriver` holds the study (persisted in its ``JournalStorage``), the Optuna trial of
  every running Tune trial, and each trial's per-epoch curve. It applies the **objective rule**
  and asks the study's pruner (Optuna's ``SuccessiveHalvingPruner``, i.e. ASHA) whether to stop.
* :class:`StudySearcher` (a Tune ``Searcher``) asks the study for the next configuration and
  tells it the outcome when the trial ends.
* :class:`StudyScheduler` (a Tune ``FIFOScheduler``) sees every epoch's result first, hands it
  to the driver, and stops the trial when the pruner says so.

**The objective rule** (:func:`kept_value`): a trial is worth the metric of the weights its
training keeps. Every epoch the training reports ``best_epoch``, the epoch whose weights its
early-stopping rule would restore now (:class:`~affectlab.training.early_stopping.EarlyStopping`:
the best epoch of a recent window, chosen on ``training.monitor``); the objective after epoch
``e`` is the sweep metric *of epoch* ``best_epoch``, looked up in the trial's own curve. That is
neither the last epoch's value nor the best value over all epochs, and it is the same rule for
in-process trials and for trials that run a ``TorchTrainer`` (both report ``epoch``,
``best_epoch`` and the metric every epoch). Optuna gets the objective after every epoch as the
intermediate value of that step (the pruner compares trials on it) and after the last epoch as
the trial's value.

**Resume.** The study in its journal is the whole state: finished and pruned trials, their
intermediate values (the pruner's rungs), the sampler's history. A resumed sweep opens the same
journal and carries on; nothing is read from Tune's experiment state or from private attributes.

**Grid searches** (``tune.search: grid``) use :class:`SweepGridSampler`, Optuna's
``GridSampler``: the study's first ``n`` trials take the ``n`` combinations in the sampler's
seeded order, later ones (a resume) the combinations no trial has taken yet; a combination whose
trial failed or was interrupted is queued again by the resumed run
(:func:`affectlab.tuning.state.requeue_failed`), so each runs until it finishes and never after.

**Duplicates.** In a discrete space TPE often proposes a configuration that was already trained.
Training is deterministic for a given configuration and seed, so :meth:`StudyDriver.ask` tells
Optuna the earlier result for such a proposal at once (user attribute ``duplicate_of``: it never
counts as a trial of the sweep) and asks again, a bounded number of times.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import optuna
from ray.tune.schedulers import FIFOScheduler, TrialScheduler
from ray.tune.search import Searcher

__all__ = [
    "DUPLICATE_ATTR",
    "EPOCHS_ATTR",
    "KEPT_EPOCH_ATTR",
    "TUNE_ID_ATTR",
    "Objective",
    "StudyDriver",
    "StudyScheduler",
    "StudySearcher",
    "SweepGridSampler",
    "is_duplicate",
    "kept_value",
]

DUPLICATE_ATTR = "duplicate_of"  # user attribute: number of the trial whose result this repeats
TUNE_ID_ATTR = "tune_trial_id"  # user attribute: the Tune trial id (its outputs: <out>/trials/<id>)
KEPT_EPOCH_ATTR = "kept_epoch"  # user attribute: the epoch whose weights the training kept
EPOCHS_ATTR = "epochs"  # user attribute: epochs the trial trained


def is_duplicate(trial: Any) -> bool:
    """True for study entries that stand for an earlier trial's result (not trained)."""
    return DUPLICATE_ATTR in trial.user_attrs


class SweepGridSampler(optuna.samplers.GridSampler):
    """Optuna's ``GridSampler`` for a study driven by ask-and-tell from Tune.

    The one change: telling the trial that completes the grid does not call ``Study.stop``
    (``GridSampler.after_trial`` does, and outside ``Study.optimize`` that raises
    ``RuntimeError``, Optuna's documented ask-and-tell caveat). A sweep ends when Tune has run
    its number of trials, the number of combinations.

    Args:
        grid: Searched key -> its values (:attr:`affectlab.tuning.space.Sweep.grid`).
        seed: Fixes the (shuffled) order in which the combinations are taken.
    """

    def __init__(self, grid: Mapping[str, Sequence[Any]], seed: int = 0) -> None:
        super().__init__({key: list(values) for key, values in grid.items()}, seed=seed)

    def after_trial(self, study: Any, trial: Any, state: Any, values: Sequence[float] | None) -> None:
        """Nothing: the number of Tune trials, not ``Study.stop``, ends a grid search."""


@dataclass(frozen=True)
class Objective:
    """A trial's objective after one epoch: the metric of the weights the training keeps."""

    epoch: int  # the epoch just reported
    kept_epoch: int  # the epoch whose weights the training keeps after it
    value: float  # the sweep metric of ``kept_epoch``


def _epoch_of(result: Mapping[str, Any]) -> int:
    epoch = result.get("epoch", result.get("training_iteration"))
    if not isinstance(epoch, (int, float)) or isinstance(epoch, bool) or epoch < 1:
        raise ValueError(f"a trial result has no valid 'epoch' (got {epoch!r}); the training reporter "
                         f"must report the 1-based epoch with every result")
    return int(epoch)


def kept_value(curve: Mapping[int, float], result: Mapping[str, Any], metric: str) -> Objective:
    """The objective after the epoch of ``result`` (see the module docstring).

    Args:
        curve: The trial's metric by epoch, including the epoch of ``result``.
        result: One epoch's report (``epoch``, ``best_epoch``, the metric...).
        metric: The sweep metric (``tune.metric``).

    Raises:
        ValueError: ``result`` lacks ``best_epoch``, or names an epoch the curve does not hold.
    """
    epoch = _epoch_of(result)
    kept = result.get("best_epoch")
    if not isinstance(kept, (int, float)) or isinstance(kept, bool):
        raise ValueError(
            f"epoch {epoch}: the result has no 'best_epoch' (got {kept!r}); the sweep's objective is "
            f"{metric} of the epoch whose weights the training keeps, which the training must report"
        )
    kept = int(kept)
    if kept not in curve:
        raise ValueError(f"epoch {epoch}: best_epoch={kept} was never reported with {metric} "
                         f"(reported epochs: {sorted(curve)})")
    return Objective(epoch=epoch, kept_epoch=kept, value=float(curve[kept]))


@dataclass
class _Running:
    """Driver-side record of one Tune trial."""

    ot_trial: Any  # optuna.Trial from study.ask()
    curve: dict[int, float] = field(default_factory=dict)
    objective: Objective | None = None
    pruned: bool = False


class StudyDriver:
    """The sweep's Optuna study seen from the Tune driver: ask, observe each epoch, tell.

    Args:
        study: The Optuna study (its pruner decides early stops; ``NopPruner`` for none).
        space: Searched keys -> Optuna distributions.
        metric: The sweep metric (a key of every epoch's result).
        mode: ``"max"`` or ``"min"``.
        max_t: The trial's epoch budget: no trial is stopped at or after it (it ends by itself
            and must be allowed to write its outputs).
        max_retries: Proposals to try before accepting a duplicate (a fully explored space).
    """

    def __init__(self, study: Any, space: Mapping[str, Any], *, metric: str, mode: str, max_t: int,
                 max_retries: int = 20) -> None:
        if mode not in ("max", "min"):
            raise ValueError(f"mode: must be 'max' or 'min', got {mode!r}")
        self.study, self.space = study, dict(space)
        self.metric, self.mode, self.max_t, self.max_retries = metric, mode, int(max_t), max_retries
        self.duplicates = 0
        self.running: dict[str, _Running] = {}
        self.pruned: set[str] = set()
        self.objectives: dict[str, Objective] = {}  # last objective of every trial seen by this run

    # -- asking ----------------------------------------------------------------------------
    def ask(self, trial_id: str) -> dict[str, Any]:
        """A new configuration for Tune trial ``trial_id`` (an untried one when possible)."""
        ot_trial = self.study.ask(self.space)
        for _ in range(self.max_retries):
            twin = self._finished_twin(ot_trial.params)
            if twin is None:
                break
            ot_trial.set_user_attr(DUPLICATE_ATTR, twin.number)
            self.study.tell(ot_trial, twin.value)
            self.duplicates += 1
            ot_trial = self.study.ask(self.space)
        ot_trial.set_user_attr(TUNE_ID_ATTR, trial_id)
        self.running[trial_id] = _Running(ot_trial)
        return dict(ot_trial.params)

    def _finished_twin(self, params: Mapping[str, Any]) -> Any:
        from optuna.trial import TrialState

        for trial in self.study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
            if trial.params == params and trial.value is not None and not is_duplicate(trial):
                return trial
        return None

    # -- observing -------------------------------------------------------------------------
    def observe(self, trial_id: str, result: Mapping[str, Any]) -> bool:
        """Record one epoch's result; True when the pruner stops the trial now.

        A result for an epoch already seen (Tune repeats a finished trial's last result) changes
        nothing.
        """
        run = self.running.get(trial_id)
        if run is None:  # not one of ours (e.g. a result after the trial was told)
            return False
        epoch = _epoch_of(result)
        if epoch in run.curve:
            return False
        value = result.get(self.metric)
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            raise ValueError(f"trial {trial_id} epoch {epoch}: the result has no number for the sweep metric "
                             f"{self.metric!r} (got {value!r}); reported keys: {sorted(result)}")
        run.curve[epoch] = float(value)
        run.objective = kept_value(run.curve, result, self.metric)
        self.objectives[trial_id] = run.objective
        run.ot_trial.report(run.objective.value, step=epoch)
        if epoch >= self.max_t or not run.ot_trial.should_prune():
            return False
        run.pruned = True
        self.pruned.add(trial_id)
        return True

    def objective(self, trial_id: str) -> Objective | None:
        """The latest objective of a trial of this run (None before its first result)."""
        return self.objectives.get(trial_id)

    # -- telling ---------------------------------------------------------------------------
    def tell(self, trial_id: str, *, error: bool = False) -> None:
        """Tell the study how trial ``trial_id`` ended: FAIL (error or no result), PRUNED (its value
        is the last intermediate value) or COMPLETE with the objective of its last epoch."""
        from optuna.trial import TrialState

        run = self.running.pop(trial_id, None)
        if run is None:
            return
        objective = run.objective
        if objective is not None:
            run.ot_trial.set_user_attr(KEPT_EPOCH_ATTR, objective.kept_epoch)
            run.ot_trial.set_user_attr(EPOCHS_ATTR, objective.epoch)
        if error or objective is None or math.isnan(objective.value):
            self.study.tell(run.ot_trial, state=TrialState.FAIL)
        elif run.pruned:
            self.study.tell(run.ot_trial, state=TrialState.PRUNED)
        else:
            self.study.tell(run.ot_trial, objective.value)


class StudySearcher(Searcher):
    """Tune ``Searcher`` that asks the study for configurations and tells it the outcomes.

    Its state is the study journal (see :mod:`affectlab.tuning.state`), so ``save``/``restore``
    store nothing: a resumed sweep opens the journal instead of Tune's searcher checkpoint.
    """

    def __init__(self, driver: StudyDriver) -> None:
        super().__init__(metric=driver.metric, mode=driver.mode)
        self.driver = driver

    def set_search_properties(self, metric: str | None, mode: str | None, config: dict, **spec: Any) -> bool:
        """The space and objective are the driver's; nothing to take from the Tuner."""
        return True

    def suggest(self, trial_id: str) -> dict[str, Any] | None:
        """Ask the study for the next configuration."""
        return self.driver.ask(trial_id)

    def on_trial_complete(self, trial_id: str, result: dict | None = None, error: bool = False) -> None:
        """Tell the study how the trial ended."""
        self.driver.tell(trial_id, error=error)

    def save(self, checkpoint_path: str) -> None:
        """Nothing to save: the study journal is the state (written as the sweep goes)."""

    def restore(self, checkpoint_path: str) -> None:
        """Nothing to restore: a resumed sweep opens the study journal."""


class StudyScheduler(FIFOScheduler):
    """Tune scheduler that hands every epoch's result to the driver and stops pruned trials.

    Trials run in submission order (FIFO); the stop decisions are the study pruner's.
    """

    def __init__(self, driver: StudyDriver) -> None:
        super().__init__()
        self.driver = driver

    def on_trial_result(self, tune_controller: Any, trial: Any, result: dict) -> str:
        """STOP when the study's pruner stops the trial after this epoch, else CONTINUE."""
        if self.driver.observe(trial.trial_id, result):
            return TrialScheduler.STOP
        return TrialScheduler.CONTINUE
