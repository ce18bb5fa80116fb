"""Early stopping of seed 003: warm-up, moving-average patience, best of the last results."""

from __future__ import annotations

import math

import pytest

from affectlab.errors import ConfigError
from affectlab.training.early_stopping import EarlyStopping


def _run(stopper: EarlyStopping, values: list[float]) -> int | None:
    """Feed values until a stop; return the 1-based epoch of the stop (None if never)."""
    for epoch, value in enumerate(values, start=1):
        if stopper.update(value):
            return epoch
    return None


def test_minimum_epochs_is_prev_rounds_plus_patience() -> None:
    falling = [1.0 - 0.01 * i for i in range(100)]  # UAR gets worse every epoch
    assert _run(EarlyStopping(5, 15, 10, "max"), falling) == 20
    assert _run(EarlyStopping(3, 4, 2, "max"), falling) == 7


def test_improving_runs_to_max_epochs() -> None:
    stopper = EarlyStopping(5, 15, 10, "max", max_epochs=100)
    assert _run(stopper, [0.01 * i for i in range(200)]) == 100
    assert stopper.stop_reason == "reached max_epochs=100"


def test_compares_with_the_average_of_previous_rounds() -> None:
    stopper = EarlyStopping(patience=2, prev_rounds=3, last_top_results=10, mode="max")
    # epochs 1-3 warm-up; epoch 4: 0.55 > mean(0.9, 0.1, 0.5) = 0.5 -> good although below the best
    for value in (0.9, 0.1, 0.5, 0.55):
        assert not stopper.update(value)
    assert stopper.bad_epochs == 0
    assert not stopper.update(0.3)  # mean(0.1, 0.5, 0.55) = 0.383 -> bad 1
    assert stopper.bad_epochs == 1
    assert not stopper.update(0.5)  # mean(0.5, 0.55, 0.3) = 0.45 -> good, counter resets
    assert stopper.bad_epochs == 0
    assert not stopper.update(0.4)  # mean(0.55, 0.3, 0.5) = 0.45 -> bad 1
    assert stopper.update(0.4)  # mean(0.3, 0.5, 0.4) = 0.4, not strictly better -> bad 2: stop
    assert "2 epochs" in stopper.stop_reason


def test_best_is_chosen_among_the_last_results() -> None:
    stopper = EarlyStopping(patience=5, prev_rounds=2, last_top_results=3, mode="max")
    for value in (0.99, 0.2, 0.3, 0.5, 0.4):
        stopper.update(value)
    assert stopper.best_epoch == 4 and stopper.best == 0.5  # the early 0.99 left the window
    assert stopper.window == [(3, 0.3), (4, 0.5), (5, 0.4)]
    stopper.update(0.5)
    assert stopper.best_epoch == 4  # ties go to the earliest epoch of the window


def test_min_mode_for_losses() -> None:
    stopper = EarlyStopping(patience=2, prev_rounds=2, last_top_results=5, mode="min")
    assert _run(stopper, [1.0, 0.8, 0.6, 0.5, 0.7, 0.8, 0.9]) == 6
    assert stopper.best == 0.5


def test_prev_rounds_zero_is_classic_early_stopping() -> None:
    stopper = EarlyStopping(patience=2, prev_rounds=0, last_top_results=100, mode="max")
    assert _run(stopper, [0.5, 0.6, 0.55, 0.59, 0.7]) == 4


def test_nan_never_improves_and_is_never_best() -> None:
    stopper = EarlyStopping(patience=2, prev_rounds=1, last_top_results=4, mode="max")
    assert not stopper.update(0.5)
    assert not stopper.update(math.nan)
    assert stopper.update(math.nan)
    assert stopper.best == 0.5
    all_nan = EarlyStopping(patience=1, prev_rounds=0, last_top_results=2)
    assert all_nan.update(math.nan) and all_nan.best is None and all_nan.best_epoch is None


def test_state_round_trip() -> None:
    first = EarlyStopping(patience=3, prev_rounds=2, last_top_results=3)
    for value in (0.5, 0.4, 0.3, 0.2):
        first.update(value)
    second = EarlyStopping(patience=3, prev_rounds=2, last_top_results=3)
    second.load_state_dict(first.state_dict())
    assert second.update(0.1) == first.update(0.1) is True
    assert second.best == first.best


def test_bad_parameters_listed() -> None:
    with pytest.raises(ConfigError) as err:
        EarlyStopping(patience=0, prev_rounds=-1, last_top_results=1, mode="maximum")
    message = str(err.value)
    assert "patience=0" in message and "prev_rounds=-1" in message and "max, min" in message
