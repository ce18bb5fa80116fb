"""Early stopping of seed 003 (Section II-C and IV-C): patience against a moving average.

The paper's text, and how each part is read here (epochs are counted from 1):

* "The prev_rounds parameter controls the number of epochs the model trains before starting
  to activate the patience": epochs ``1 .. prev_rounds`` are a warm-up that never counts as
  bad.
* "It also controls the number of last epochs the model looks back to calculate the average
  result of these rounds to compare this value to the result of the actual epoch": from epoch
  ``e = prev_rounds + 1`` on, the value of epoch e is compared with the mean of the values of
  the ``prev_rounds`` epochs before it (``e - prev_rounds .. e - 1``). Better than that mean
  (by more than ``min_delta``) resets the bad-epoch counter; otherwise it grows by one. A NaN
  value is never better. (With ``prev_rounds = 0`` the reference is the best earlier value,
  i.e. classic early stopping.)
* "The patience parameter describes the number of epochs the model does not improve over
  before stopping": stop when the counter reaches ``patience``.
* "The summation of patience and prev_rounds is also equal to the minimum number of epochs":
  holds by construction; the earliest stop is after epoch ``prev_rounds + patience``.
* Training also stops after ``max_epochs`` (100 in the paper).
* "last_top_results describes the number of epochs for the look back to select the best
  performing epoch" / "we store a running total of the best result": the reported best epoch
  is the best among the *last* ``last_top_results`` epochs (a running window), not the best
  of the whole run: an early spike on a strongly imbalanced task cannot be picked after the
  model has moved on. Ties go to the earliest epoch of the window. A trainer that wants to
  restore the best weights therefore needs the checkpoints of the last ``last_top_results``
  epochs (see :attr:`EarlyStopping.window`).
"""

from __future__ import annotations

import math
from typing import Any

from affectlab.errors import ConfigError

__all__ = ["EarlyStopping"]

MODES = ("max", "min")


class EarlyStopping:
    """Patience against the average of previous rounds, best epoch from the last results.

    Args:
        patience: Bad epochs (after the warm-up) that stop training (paper: 5).
        prev_rounds: Warm-up epochs and the length of the moving average (paper: 15).
        last_top_results: Look-back window for choosing the best epoch (paper: 10).
        mode: ``"max"`` for scores such as UAR, ``"min"`` for losses.
        max_epochs: Hard limit on epochs (paper: 100).
        min_delta: Margin by which a value must beat the reference to count as better.

    Raises:
        ConfigError: A parameter is out of range (every problem listed).
    """

    def __init__(
        self,
        patience: int = 5,
        prev_rounds: int = 15,
        last_top_results: int = 10,
        mode: str = "max",
        *,
        max_epochs: int = 100,
        min_delta: float = 0.0,
    ) -> None:
        problems = []
        for key, value, low in (("patience", patience, 1), ("prev_rounds", prev_rounds, 0),
                                ("last_top_results", last_top_results, 1), ("max_epochs", max_epochs, 1)):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                problems.append(f"{key}={value!r}: must be an integer >= {low}")
        if mode not in MODES:
            problems.append(f"mode={mode!r}: must be one of {', '.join(MODES)}")
        if not (isinstance(min_delta, int | float) and min_delta >= 0):
            problems.append(f"min_delta={min_delta!r}: must be a number >= 0")
        if problems:
            raise ConfigError("early stopping: " + "; ".join(problems))
        self.patience, self.prev_rounds, self.last_top_results = patience, prev_rounds, last_top_results
        self.mode, self.max_epochs, self.min_delta = mode, max_epochs, float(min_delta)
        self.history: list[float] = []
        self.bad_epochs = 0
        self.stop_reason: str | None = None

    @property
    def epoch(self) -> int:
        """Number of epochs seen so far."""
        return len(self.history)

    def _better(self, value: float, reference: float) -> bool:
        if math.isnan(value):
            return False
        if self.mode == "max":
            return value > reference + self.min_delta
        return value < reference - self.min_delta

    def _reference(self) -> float | None:
        """What the newest value is compared with (None: nothing to compare yet)."""
        earlier = [v for v in self.history[:-1] if not math.isnan(v)]
        if self.prev_rounds == 0:
            if not earlier:
                return None
            return max(earlier) if self.mode == "max" else min(earlier)
        window = self.history[-1 - self.prev_rounds : -1]
        valid = [v for v in window if not math.isnan(v)]
        return sum(valid) / len(valid) if valid else None

    def update(self, value: float) -> bool:
        """Record the validation value of the epoch that just ended.

        Returns:
            True when training should stop (see :attr:`stop_reason`).
        """
        self.history.append(float(value))
        if self.epoch > self.prev_rounds:
            reference = self._reference()
            value = self.history[-1]
            improved = not math.isnan(value) if reference is None else self._better(value, reference)
            self.bad_epochs = 0 if improved else self.bad_epochs + 1
        if self.bad_epochs >= self.patience:
            self.stop_reason = f"no improvement over the previous-rounds average for {self.bad_epochs} epochs"
        elif self.epoch >= self.max_epochs:
            self.stop_reason = f"reached max_epochs={self.max_epochs}"
        return self.stop_reason is not None

    @property
    def window(self) -> list[tuple[int, float]]:
        """The last ``last_top_results`` epochs as ``(epoch, value)`` pairs (1-based epochs)."""
        start = max(0, self.epoch - self.last_top_results)
        return [(start + i + 1, v) for i, v in enumerate(self.history[start:])]

    @property
    def best_epoch(self) -> int | None:
        """1-based epoch of the best value within :attr:`window` (None if all NaN / empty)."""
        candidates = [(e, v) for e, v in self.window if not math.isnan(v)]
        if not candidates:
            return None
        sign = 1.0 if self.mode == "max" else -1.0
        return max(candidates, key=lambda ev: (sign * ev[1], -ev[0]))[0]

    @property
    def best(self) -> float | None:
        """The best value within :attr:`window` (None if all NaN / empty)."""
        epoch = self.best_epoch
        return None if epoch is None else self.history[epoch - 1]

    def state_dict(self) -> dict[str, Any]:
        """Serialisable state (for checkpoints and resumed trials)."""
        return {"history": list(self.history), "bad_epochs": self.bad_epochs, "stop_reason": self.stop_reason}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` output."""
        self.history = [float(v) for v in state["history"]]
        self.bad_epochs = int(state["bad_epochs"])
        self.stop_reason = state.get("stop_reason")
