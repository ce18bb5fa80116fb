"""Best-over-checkpoints selection and ``--checkpoints`` parsing (seed 002's table procedure)."""

from __future__ import annotations

import pandas as pd
import pytest

from affectlab.errors import ConfigError
from affectlab.training.gan_evaluate import best_over_checkpoints, select_checkpoints

AVAILABLE = [(1000, "c/iteration=000001000.pt"), (2000, "c/iteration=000002000.pt"), (3000, "c/iteration=000003000.pt")]


def test_each_metric_is_maximised_separately_and_mse_and_loss_minimised() -> None:
    frame = pd.DataFrame({"iteration": [1000, 2000, 3000], "au_mean_f1": [0.2, 0.7, 0.5],
                          "real_pct": [0.9, 0.1, 0.4], "mse_valence": [0.3, 0.2, 0.25], "loss": [0.5, 0.6, 0.4]})
    best = best_over_checkpoints(frame)
    assert best["au_mean_f1"] == {"value": 0.7, "iteration": 2000}
    assert best["real_pct"] == {"value": 0.9, "iteration": 1000}  # not the F1's checkpoint
    assert best["mse_valence"] == {"value": 0.2, "iteration": 2000}
    assert best["loss"] == {"value": 0.4, "iteration": 3000}
    assert set(best_over_checkpoints(frame, ["au_mean_f1", "absent"])) == {"au_mean_f1"}


def test_ties_give_the_first_iteration() -> None:
    best = best_over_checkpoints(pd.DataFrame({"iteration": [5, 10], "ccc_valence": [0.8, 0.8]}))
    assert best["ccc_valence"]["iteration"] == 5


def test_select_checkpoints() -> None:
    assert select_checkpoints(AVAILABLE, "all") == AVAILABLE
    assert select_checkpoints(AVAILABLE, "last") == AVAILABLE[-1:]
    assert select_checkpoints(AVAILABLE, "best", 2000) == [AVAILABLE[1]]
    assert select_checkpoints(AVAILABLE, "3000,1000") == [AVAILABLE[2], AVAILABLE[0]]


@pytest.mark.parametrize(("which", "best", "message"), [("best", 1500, "best iteration 1500"),
                                                         ("1000,4000", None, r"\[4000\]"),
                                                         ("newest", None, "all, best, last")])
def test_select_checkpoints_errors_name_the_choices(which: str, best: int | None, message: str) -> None:
    with pytest.raises(ConfigError, match=message) as info:
        select_checkpoints(AVAILABLE, which, best)
    assert "available" in str(info.value) or "use all" in str(info.value)
