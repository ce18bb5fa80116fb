"""The study driver: the objective rule (metric of the kept weights), ASHA through Optuna's pruner,
duplicates answered from earlier results, and the outcome told to the study."""

from __future__ import annotations

from types import SimpleNamespace

import optuna
import pytest
from optuna.trial import TrialState
from ray.tune.schedulers import TrialScheduler

from affectlab.tuning.searcher import (
    EPOCHS_ATTR,
    KEPT_EPOCH_ATTR,
    TUNE_ID_ATTR,
    StudyDriver,
    StudyScheduler,
    StudySearcher,
    is_duplicate,
    kept_value,
)

LR = {"lr": optuna.distributions.FloatDistribution(0.1, 1.0)}


def study(pruner: optuna.pruners.BasePruner | None = None, direction: str = "maximize") -> optuna.Study:
    return optuna.create_study(direction=direction, pruner=pruner or optuna.pruners.NopPruner(),
                               sampler=optuna.samplers.RandomSampler(seed=0))


def results(values: list[float], kept: list[int]) -> list[dict]:
    """Per-epoch reports as the training sends them: epoch, the metric, best_epoch."""
    return [{"epoch": e + 1, "val_uar": v, "best_epoch": k, "val_loss": 1.0 - v} for e, (v, k) in
            enumerate(zip(values, kept, strict=True))]


def test_the_objective_is_the_metric_of_the_kept_epoch_not_the_last_nor_the_max() -> None:
    # the early-stopping rule keeps epoch 3 at the end (a window that no longer holds epoch 2,
    # the best value overall); the last epoch is worse than epoch 3
    values, kept = [0.5, 0.9, 0.7, 0.6, 0.65], [1, 2, 2, 3, 3]
    curve: dict[int, float] = {}
    objectives = []
    for result in results(values, kept):
        curve[result["epoch"]] = result["val_uar"]
        objectives.append(kept_value(curve, result, "val_uar"))
    assert [o.value for o in objectives] == [0.5, 0.9, 0.9, 0.7, 0.7]
    final = objectives[-1]
    assert (final.epoch, final.kept_epoch, final.value) == (5, 3, 0.7)
    assert final.value not in (values[-1], max(values))


def test_the_objective_follows_the_kept_epoch_for_another_monitor() -> None:
    # early stopping on val_loss, the sweep on val_uar: the objective is val_uar of the epoch
    # whose weights the loss-based rule keeps
    curve = {1: 0.6, 2: 0.8}
    assert kept_value(curve, {"epoch": 2, "val_uar": 0.8, "best_epoch": 1}, "val_uar").value == 0.6


@pytest.mark.parametrize("result, match", [
    ({"epoch": 1, "val_uar": 0.5}, "no 'best_epoch'"),
    ({"epoch": 2, "val_uar": 0.5, "best_epoch": 7}, "best_epoch=7 was never reported"),
    ({"val_uar": 0.5, "best_epoch": 1}, "no valid 'epoch'"),
])
def test_a_result_without_what_the_rule_needs_is_an_error_naming_it(result: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        kept_value({1: 0.5}, result, "val_uar")


def test_the_driver_tells_optuna_the_kept_value_and_records_the_kept_epoch() -> None:
    s = study()
    driver = StudyDriver(s, LR, metric="val_uar", mode="max", max_t=5)
    params = driver.ask("t1")
    assert set(params) == {"lr"}
    for result in results([0.5, 0.9, 0.7, 0.6, 0.65], [1, 2, 2, 3, 3]):
        assert driver.observe("t1", result) is False
    assert driver.observe("t1", results([0.5], [1])[0]) is False  # Tune repeats a last result: ignored
    driver.tell("t1")
    (trial,) = s.get_trials()
    assert trial.state == TrialState.COMPLETE and trial.value == 0.7
    assert trial.intermediate_values == {1: 0.5, 2: 0.9, 3: 0.9, 4: 0.7, 5: 0.7}
    assert trial.user_attrs == {TUNE_ID_ATTR: "t1", KEPT_EPOCH_ATTR: 3, EPOCHS_ATTR: 5}


def test_a_missing_metric_is_an_error_naming_it() -> None:
    driver = StudyDriver(study(), LR, metric="val_ccc", mode="max", max_t=5)
    driver.ask("t1")
    with pytest.raises(ValueError, match="no number for the sweep metric 'val_ccc'"):
        driver.observe("t1", results([0.5], [1])[0])


def test_asha_stops_a_worse_trial_at_the_rung_and_never_at_the_budget() -> None:
    pruner = optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=2)
    driver = StudyDriver(study(pruner), LR, metric="val_uar", mode="max", max_t=4)
    scheduler = StudyScheduler(driver)
    good, bad = SimpleNamespace(trial_id="good"), SimpleNamespace(trial_id="bad")
    driver.ask("good")
    for result in results([0.8, 0.85, 0.9, 0.9], [1, 2, 3, 3]):
        assert scheduler.on_trial_result(None, good, result) == TrialScheduler.CONTINUE
    driver.tell("good")
    driver.ask("bad")
    assert scheduler.on_trial_result(None, bad, results([0.3], [1])[0]) == TrialScheduler.STOP  # rung 1
    assert driver.pruned == {"bad"}
    driver.tell("bad")
    trials = driver.study.get_trials()
    assert [t.state for t in trials] == [TrialState.COMPLETE, TrialState.PRUNED]
    assert trials[1].value == 0.3  # Optuna keeps a pruned trial's last intermediate value
    # a trial that is worse at every rung still ends by itself at its budget (max_t)
    late = StudyDriver(study(pruner), LR, metric="val_uar", mode="max", max_t=1)
    late.ask("a")
    late.observe("a", results([0.9], [1])[0])
    late.tell("a")
    late.ask("b")
    assert late.observe("b", results([0.1], [1])[0]) is False


def test_searcher_and_scheduler_are_tune_extension_points_over_the_driver() -> None:
    driver = StudyDriver(study(direction="minimize"), LR, metric="val_uar", mode="min", max_t=3)
    searcher = StudySearcher(driver)
    assert searcher.metric == "val_uar" and searcher.mode == "min"
    assert searcher.set_search_properties("other", "max", {}) is True  # the driver's settings stand
    config = searcher.suggest("t1")
    searcher.on_trial_complete("t1", None, error=True)  # a failed trial
    assert driver.study.get_trials()[0].state == TrialState.FAIL and "lr" in config
    searcher.suggest("t2")
    searcher.on_trial_complete("t2")  # ended before any result: nothing to score
    assert driver.study.get_trials()[1].state == TrialState.FAIL


def test_duplicates_are_answered_from_earlier_results_and_not_counted() -> None:
    space = {"arch": optuna.distributions.CategoricalDistribution(["a", "b"])}
    driver = StudyDriver(study(), space, metric="m", mode="max", max_t=1, max_retries=30)
    first = driver.ask("t1")
    driver.observe("t1", {"epoch": 1, "m": 0.5, "best_epoch": 1})
    driver.tell("t1")
    second = driver.ask("t2")
    assert second != first  # the only untried configuration
    driver.observe("t2", {"epoch": 1, "m": 0.7, "best_epoch": 1})
    driver.tell("t2")
    third = driver.ask("t3")  # everything tried: after the retries a duplicate is accepted
    assert third in (first, second)
    trials = driver.study.get_trials()
    trained = [t for t in trials if not is_duplicate(t) and t.state.is_finished()]
    answered = [t for t in trials if is_duplicate(t)]
    assert [t.params for t in trained] == [first, second]
    assert answered and all(t.value == (0.5 if t.params == first else 0.7) for t in answered)
    assert driver.duplicates == len(answered)
