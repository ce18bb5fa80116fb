"""The searcher answers proposals of already-trained configurations from their results."""

from __future__ import annotations

import optuna

from affectlab.tuning.searcher import DedupOptunaSearch, is_duplicate


def test_duplicates_are_answered_from_earlier_results_and_not_counted() -> None:
    space = {"arch": optuna.distributions.CategoricalDistribution(["a", "b"])}
    search = DedupOptunaSearch(space=space, metric="m", mode="max", max_retries=30,
                               sampler=optuna.samplers.RandomSampler(seed=0))
    first = search.suggest("t1")
    search.on_trial_complete("t1", {"m": 0.5})
    second = search.suggest("t2")
    assert second != first  # the only untried configuration
    search.on_trial_complete("t2", {"m": 0.7})
    third = search.suggest("t3")  # everything tried: after the retries a duplicate is accepted
    assert third in (first, second)
    study = search._ot_study  # noqa: SLF001 - inspect what Optuna was told
    trained = [t for t in study.trials if not is_duplicate(t) and t.state.is_finished()]
    answered = [t for t in study.trials if is_duplicate(t)]
    assert [t.params for t in trained] == [first, second]
    assert all(t.value == (0.5 if t.params == first else 0.7) for t in answered)
    assert search.duplicates == len(answered)
