"""Options shared by several verbs."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

__all__ = ["mlflow_option", "num_cpus_option", "set_option", "verbose_option"]


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
