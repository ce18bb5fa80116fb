"""The generic loop with a task that owns its step: the two-player game (known equilibrium),
iteration budgets, update-rate schedules, separate losses, checkpoints and resume."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch

from affectlab.errors import ConfigError, RegistryError
from affectlab.training.config import ExperimentConfig, TrainingSettings, load_experiment
from affectlab.training.loop import BatchStream, fit
from affectlab.training.tasks import DataInfo, GameTask, build_task, task_model_problem, task_spec

MU = np.array([2.0, -4.0])


def _data(n: int = 64, seed: int = 0) -> np.ndarray:
    return (MU + np.random.default_rng(seed).normal(size=(n, 2))).astype(np.float32)


def _batches(data: np.ndarray, size: int, seed: int | None = None):
    order = np.arange(len(data)) if seed is None else np.random.default_rng(seed).permutation(len(data))
    for start in range(0, len(data), size):
        yield {"x": data[order[start : start + size]]}


class MemoryReporter:
    """Keeps every report; restores from a given state (a checkpoint read back as weights_only)."""

    def __init__(self, resume: dict | None = None) -> None:
        self.rows, self.states, self.resume = [], [], resume

    def restore(self):
        return self.resume

    def report(self, metrics, state) -> None:
        buf = io.BytesIO()
        torch.save(state, buf)
        buf.seek(0)
        self.rows.append(metrics)
        self.states.append(torch.load(buf, weights_only=True))  # every checkpoint loads weights_only


def _game(settings: TrainingSettings, reporter: MemoryReporter, data: np.ndarray, *, update_rate: int = 1, seed: int = 0):
    from affectlab.models import build_model

    torch.manual_seed(seed)
    task = GameTask(update_rate)
    modules = task.build_modules("quadratic_game", {"input_dim": 2})
    out = fit(task, modules, lambda epoch: _batches(data, 8, seed=epoch), lambda: _batches(data, 64),
              settings, reporter)
    return out, modules


def _settings(**kw) -> TrainingSettings:
    base = {"lr": 0.05, "max_iterations": 600, "eval_every": 100, "patience": 50, "prev_rounds": 50,
            "last_top_results": 1, "monitor": "val_distance"}
    return TrainingSettings(**{**base, **kw})


def test_game_reaches_its_known_equilibrium_with_two_optimizers() -> None:
    data = _data()
    reporter = MemoryReporter()
    out, modules = _game(_settings(), reporter, data)
    x, y = modules["x"]().detach().numpy(), modules["y"]().detach().numpy()
    target = data.mean(axis=0) / 2
    assert np.abs(x - target).max() < 0.15 and np.abs(y - target).max() < 0.15, (x, y, target)
    first, last = reporter.rows[0]["val_distance"], reporter.rows[-1]["val_distance"]
    assert last < 0.2 < first
    # the iteration budget: 6 rounds of 100 steps, the separate losses of both players logged
    assert [r["iteration"] for r in reporter.rows] == [100, 200, 300, 400, 500, 600]
    assert {"train_x_loss", "train_y_loss"} <= set(reporter.rows[0])


def test_equilibrium_claim_fails_for_a_wrong_target() -> None:
    """Negative control: the players settle at mu/2, not at mu (the check can fail)."""
    data = _data()
    _, modules = _game(_settings(), MemoryReporter(), data)
    assert np.abs(modules["x"]().detach().numpy() - data.mean(axis=0)).max() > 0.5


class AdamGame(GameTask):
    """The game with Adam, whose state counts each player's steps."""

    def configure_optimizers(self, modules, lr):
        return {name: torch.optim.Adam(modules[name].parameters(), lr=lr) for name in ("x", "y")}


def test_update_rate_schedules_the_second_player() -> None:
    """update_rate k: y steps on iterations that are multiples of k + 1, x on the others."""
    data = _data()
    for rate, y_steps in ((0, 12), (1, 6), (3, 3), (5, 2)):
        torch.manual_seed(0)
        task = AdamGame(rate)
        modules = task.build_modules("quadratic_game", {"input_dim": 2})
        reporter = MemoryReporter()
        fit(task, modules, lambda e: _batches(data, 8), lambda: _batches(data, 64),
            _settings(max_iterations=12, eval_every=12), reporter)
        steps = {n: int(o["state"][0]["step"]) if o["state"] else 0
                 for n, o in reporter.states[-1]["optimizers"].items()}
        assert steps == {"y": y_steps, "x": 12 - y_steps}, (rate, steps)
        assert ("train_x_loss" in reporter.rows[-1]) == (rate > 0)


def test_checkpoint_holds_every_module_and_optimizer_and_resume_matches_uninterrupted() -> None:
    data = _data()
    full = MemoryReporter()
    out_full, _ = _game(_settings(max_iterations=300, eval_every=50), full, data)
    state = full.states[2]  # after round 3 (iteration 150): a checkpoint from the middle of epoch 19
    assert set(state["modules"]) == {"x", "y"} and set(state["optimizers"]) == {"x", "y"}
    assert state["iteration"] == 150 and state["data_epoch"] == 19 and state["data_consumed"] == 6
    resumed = MemoryReporter(resume=state)
    out_resumed, modules = _game(_settings(max_iterations=300, eval_every=50), resumed, data, seed=123)
    assert out_resumed.resumed_from == 3
    assert [r["epoch"] for r in resumed.rows] == [4, 5, 6]
    for a, b in zip(full.rows[3:], resumed.rows, strict=True):
        assert a["val_distance"] == pytest.approx(b["val_distance"], abs=1e-6)
    assert [r["epoch"] for r in out_resumed.history] == [1, 2, 3, 4, 5, 6]


def test_batch_stream_cycles_and_resumes_inside_a_pass() -> None:
    passes = lambda epoch: iter([f"{epoch}.{i}" for i in range(3)])  # noqa: E731
    stream = BatchStream(passes)
    assert list(stream.steps(4)) == ["1.0", "1.1", "1.2", "2.0"]
    assert (stream.epoch, stream.consumed) == (2, 1)
    again = BatchStream(passes, epoch=2, consumed=1)
    assert list(again.steps(3)) == ["2.1", "2.2", "3.0"]
    assert list(BatchStream(passes, epoch=5, consumed=2).one_epoch()) == ["5.2"]
    with pytest.raises(RuntimeError, match="no batch"):
        list(BatchStream(lambda epoch: iter([])).steps(1))


def test_task_registry_names_task_and_model_when_they_do_not_fit() -> None:
    assert task_model_problem("au", "stacked") is None
    problem = task_model_problem("au", "f0_to_au")
    assert "data.task='au'" in problem and "model.name='f0_to_au'" in problem and "f0_to_au" in problem
    with pytest.raises(RegistryError, match="known: au, emotion, f0_to_au, game"):
        task_spec("gam")
    with pytest.raises(ConfigError, match="quadratic_game"):
        load_experiment("search_spaces/au_003.yaml", ["data.features=/x", "data.task=game"])
    config = ExperimentConfig.model_validate({"data": {"features": "/x", "task": "game"},
                                              "model": {"name": "quadratic_game"},
                                              "training": {"monitor": "val_distance"}})
    assert isinstance(build_task(config, DataInfo()), GameTask)
    with pytest.raises(ValueError, match="val_distance"):
        ExperimentConfig.model_validate({"data": {"features": "/x", "task": "game"}, "model": {"name": "quadratic_game"}})


def test_iteration_budget_settings() -> None:
    s = TrainingSettings(max_iterations=1050, eval_every=100)
    assert s.evaluation_interval == 100 and s.max_evaluations == 11
    assert TrainingSettings(max_iterations=1000).evaluation_interval == 100
    assert TrainingSettings(max_epochs=7).max_evaluations == 7 and TrainingSettings().evaluation_interval is None


def test_reduce_on_plateau_lowers_every_learning_rate_only_when_the_monitor_stalls() -> None:
    """training.lr_plateau: the game stalls near its equilibrium, so the rate halves there;
    without the setting (the negative control) it never changes. The scheduler state resumes."""
    data = _data()
    plateau = {"factor": 0.5, "patience": 0}
    reporter = MemoryReporter()
    _game(_settings(lr_plateau=plateau, max_iterations=1200), reporter, data)
    rates = [(r["lr_x"], r["lr_y"]) for r in reporter.rows]
    assert rates[0] == (0.05, 0.05)  # still improving after the first evaluation
    assert rates[-1][0] < 0.05 and rates[-1][0] == rates[-1][1]
    assert all(a >= b for a, b in zip(rates, rates[1:], strict=False))
    constant = MemoryReporter()
    _game(_settings(max_iterations=1200), constant, data)
    assert not any(k.startswith("lr_") for k in constant.rows[-1])
    # resume from round 6: the schedule continues where it was (same rates as uninterrupted)
    resumed = MemoryReporter(resume=reporter.states[5])
    _game(_settings(lr_plateau=plateau, max_iterations=1200), resumed, data)
    assert [(r["lr_x"], r["lr_y"]) for r in resumed.rows] == rates[6:]


def test_epoch_progress_prints_one_line_per_epoch_of_train_and_val_numbers() -> None:
    """The reporter behind `affectlab train`'s and `affectlab pipeline`'s progress lines."""
    from affectlab.training.run import epoch_progress

    lines: list[str] = []
    report = epoch_progress(lines.append, "stage 1/3 lm")
    report({"epoch": 2, "train_loss": 1.5, "val_loss": 2.25, "val_note": "text", "epoch_s": 3.0}, None)
    epoch_progress(lines.append)({"epoch": 3, "val_cer": 0.5}, None)
    assert lines == ["stage 1/3 lm: epoch 2: train_loss=1.5000 val_loss=2.2500", "epoch 3: val_cer=0.5000"]
    assert report.wants_checkpoints is False
