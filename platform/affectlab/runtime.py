"""Connect to Ray: an in-process local cluster by default, ``RAY_ADDRESS`` when set.

The embedded default starts a local Ray inside the calling process with the dashboard bound to
127.0.0.1, a CPU budget from ``--num-cpus`` and quiet logs. With ``RAY_ADDRESS`` set (as it is
inside ``ray job submit``), commands connect to that cluster instead and never start one.

Credentials: Ray workers get AWS credentials the way any AWS SDK client does, through the default
chain: their environment, ``~/.aws`` profiles, or an instance role. The embedded Ray is started
inside the affectlab command, after its environment is set, so its workers inherit the command's
``AWS_*`` variables. affectlab never hands credentials to Ray in ``runtime_env.env_vars``: Ray
shows those in ``ray list tasks --detail``, the state API and the dashboard, and its runtime-env
agent logs them. A Ray that was started before (``ray start``, a notebook's ``ray.init``, a
cluster) keeps the environment it was started with: its processes (every node's, on a cluster)
must have had the credentials in their environment, profiles or role when they started.
"""

from __future__ import annotations

import functools
import logging
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

__all__ = ["RayTarget", "ensure_ray", "quiet_tune_output", "ray_session", "where_ray_runs"]


@dataclass(frozen=True)
class RayTarget:
    """Where Ray work will run: ``mode`` is ``"local"`` (embedded) or ``"cluster"``."""

    mode: str
    address: str | None
    num_cpus: int | None


def where_ray_runs(num_cpus: int | None = None) -> RayTarget:
    """Describe where :func:`ray_session` would run, without starting anything."""
    address = os.environ.get("RAY_ADDRESS") or None
    if address:
        return RayTarget("cluster", address, None)
    return RayTarget("local", None, num_cpus or os.cpu_count())


_pending: Callable[[], None] | None = None  # a lazy ray_session's deferred start, until ensure_ray()


@contextmanager
def ray_session(
    *, num_cpus: int | None = None, verbose: bool = False, dashboard: bool | None = None, lazy: bool = False
) -> Iterator[RayTarget]:
    """Start (or join) Ray for the duration of a ``with`` block and shut it down after.

    If Ray is already initialised in this process (e.g. a test fixture), it is reused and left
    running; its workers have the environment of the moment it was started (see the module
    docstring on credentials).

    Args:
        num_cpus: CPUs for the embedded local cluster (default: all); ignored on a cluster.
        verbose: Show Ray's INFO logs and worker output.
        dashboard: Start the dashboard (on 127.0.0.1 only); None lets Ray decide.
        lazy: Start (or join) Ray only when code inside the block calls :func:`ensure_ray`, so
            a command with nothing to do (a resume of a finished output) never pays Ray's
            start-up of several seconds.

    Yields:
        The :class:`RayTarget` in use.
    """
    import ray

    global _pending
    target = where_ray_runs(num_cpus)
    if ray.is_initialized():
        yield target
        return
    if not lazy:
        _start(target, verbose, dashboard)
    else:
        _pending = functools.partial(_start, target, verbose, dashboard)
    try:
        yield target
    finally:
        _pending = None
        if ray.is_initialized():
            ray.shutdown()


def ensure_ray() -> None:
    """Start the Ray of an enclosing lazy :func:`ray_session` if it has not started yet.

    Without a lazy session this does nothing: Ray is either running already or the caller
    runs outside any session (where Ray's own auto-init applies).
    """
    import ray

    global _pending
    if _pending is not None and not ray.is_initialized():
        start, _pending = _pending, None
        start()


def _start(target: RayTarget, verbose: bool, dashboard: bool | None) -> None:
    import ray

    level = logging.INFO if verbose else logging.WARNING
    os.environ.setdefault("RAY_DEDUP_LOGS", "1")
    if target.mode == "cluster":
        ray.init(address=target.address, logging_level=level, log_to_driver=verbose)
    else:
        ray.init(
            num_cpus=target.num_cpus,
            include_dashboard=dashboard,
            dashboard_host="127.0.0.1",
            logging_level=level,
            log_to_driver=verbose,
            configure_logging=True,
        )
    _quiet_ray_data(verbose)


def _quiet_ray_data(verbose: bool) -> None:
    """Keep Ray Data's progress bars but drop its INFO chatter unless verbose."""
    try:
        from ray.data import DataContext
    except ImportError:  # pragma: no cover - ray[data] is a dependency
        return
    ctx = DataContext.get_current()
    ctx.enable_progress_bars = True
    if hasattr(ctx, "print_on_execution_start"):
        ctx.print_on_execution_start = verbose
    logging.getLogger("ray.data").setLevel(logging.INFO if verbose else logging.WARNING)


@contextmanager
def quiet_tune_output() -> Iterator[None]:
    """Silence Tune's own tables (affectlab prints its own progress and summaries).

    Ray 2.60's new output engine prints its experiment box even at ``verbose=0``; the legacy
    reporter at ``verbose=0`` prints nothing. Read by Tune at ``fit()`` time in this process.
    """
    saved = os.environ.get("RAY_AIR_NEW_OUTPUT")
    os.environ["RAY_AIR_NEW_OUTPUT"] = "0"
    try:
        yield
    finally:
        if saved is None:
            os.environ.pop("RAY_AIR_NEW_OUTPUT", None)
        else:
            os.environ["RAY_AIR_NEW_OUTPUT"] = saved
