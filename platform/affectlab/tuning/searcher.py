"""Optuna search for Tune that does not train the same configuration twice.

In a discrete space (choices, stepped ranges) TPE often proposes a configuration that was
already trained. Training is deterministic for a given configuration and seed, so a second run
would only repeat the first: :class:`DedupOptunaSearch` gives Optuna the earlier result for such
a proposal at once (marked with the ``duplicate_of`` user attribute, so it never counts as a
trial of the sweep) and asks again, a bounded number of times.
"""

from __future__ import annotations

from typing import Any

from ray.tune.search.optuna import OptunaSearch

__all__ = ["DUPLICATE_ATTR", "DedupOptunaSearch", "is_duplicate"]

DUPLICATE_ATTR = "duplicate_of"


def is_duplicate(trial: Any) -> bool:
    """True for study entries that stand for an earlier trial's result (not trained)."""
    return DUPLICATE_ATTR in trial.user_attrs


class DedupOptunaSearch(OptunaSearch):
    """``OptunaSearch`` that answers proposals of already-finished configurations itself.

    Args:
        max_retries: Proposals to try before accepting a duplicate (a fully explored space).
        **kwargs: Passed to :class:`~ray.tune.search.optuna.OptunaSearch`.
    """

    def __init__(self, *, max_retries: int = 20, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.max_retries = max_retries
        self.duplicates = 0

    def suggest(self, trial_id: str) -> dict | None:
        config = super().suggest(trial_id)
        for _ in range(self.max_retries):
            ot_trial = self._ot_trials[trial_id]
            twin = self._finished_twin(ot_trial.params)
            if twin is None:
                return config
            ot_trial.set_user_attr(DUPLICATE_ATTR, twin.number)
            self._ot_study.tell(ot_trial, twin.value)
            self.duplicates += 1
            del self._ot_trials[trial_id]
            config = super().suggest(trial_id)
        return config

    def _finished_twin(self, params: dict[str, Any]) -> Any:
        from optuna.trial import TrialState

        for trial in self._ot_study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
            if trial.params == params and trial.value is not None and not is_duplicate(trial):
                return trial
        return None
