"""Options shared by several verbs."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

__all__ = ["check_split", "mlflow_option", "num_cpus_option", "set_option", "split_option", "split_overrides",
           "verbose_option"]


def set_option(func: Callable[..., Any]) -> Callable[..., Any]:
    """``--set KEY.SUB=VALUE`` (repeatable) config overrides."""
    return click.option(
        "--set",
        "overrides",
        multiple=True,
        metavar="KEY.SUB=VALUE",
        help="Override a config value (repeatable), e.g. --set training.lr=1e-3.",
    )(func)


def num_cpus_option(func: Callable[..., Any]) -> Callable[..., Any]:
    """``--num-cpus`` for the embedded local Ray."""
    return click.option(
        "--num-cpus",
        type=click.IntRange(min=1),
        default=None,
        help="CPUs for the embedded local Ray (default: all). Ignored when RAY_ADDRESS is set.",
    )(func)


def verbose_option(func: Callable[..., Any]) -> Callable[..., Any]:
    """``--verbose`` to show Ray's INFO logs."""
    return click.option("--verbose", "-v", is_flag=True, help="Show Ray's INFO logs and worker output.")(
        func
    )


def mlflow_option(func: Callable[..., Any]) -> Callable[..., Any]:
    """``--mlflow/--no-mlflow``: MLflow tracking on (embedded store unless a URI is configured) or off."""
    return click.option(
        "--mlflow/--no-mlflow",
        "mlflow",
        default=None,
        help="Log to MLflow. On by itself when tracking.mlflow_uri or MLFLOW_TRACKING_URI is set (that store is "
             "used); --mlflow alone uses the embedded store OUT/mlruns/mlflow.db; --no-mlflow turns tracking off.",
    )(func)


def split_option(func: Callable[..., Any]) -> Callable[..., Any]:
    """``--split NAME``: a subject split named in the dataset card (``data.task: emotion``)."""
    return click.option(
        "--split",
        default=None,
        metavar="NAME",
        help="Use the dataset card's split NAME (its `splits:`, stored by `affectlab preprocess`) as "
             "data.emotion.split, e.g. --split seed001.",
    )(func)


def split_overrides(split: str | None) -> list[str]:
    """The ``--set`` item that ``--split NAME`` stands for (none without it)."""
    return [f"data.emotion.split={split}"] if split else []


def check_split(split: str | None, task: str) -> None:
    """``--split`` names a card split of an emotion task; elsewhere it is an error (not ignored).

    Raises:
        click.UsageError: ``--split`` with a task other than ``emotion``.
    """
    if split and task != "emotion":
        raise click.UsageError(f"--split {split}: card splits apply to data.task: emotion; this config's task is "
                               f"{task!r} (its subjects are set by data.test_subjects and data.validation)")
