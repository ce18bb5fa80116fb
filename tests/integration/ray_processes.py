"""Find and kill this test session's Ray Train worker processes from outside (SIGKILL), the way a
node's OOM killer or a lost machine would; no hook inside the training loop."""

from __future__ import annotations

import os
import random
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any


def _parent(pid: int) -> int:
    with open(f"/proc/{pid}/stat") as f:
        return int(f.read().rsplit(")", 1)[1].split()[1])


def _descends_from(pid: int, ancestor: int) -> bool:
    while pid > 1:
        if pid == ancestor:
            return True
        try:
            pid = _parent(pid)
        except (OSError, ValueError):
            return False
    return False


def train_workers() -> list[int]:
    """PIDs of this session's Ray Train worker processes (Ray titles them ``ray::RayTrainWorker...``;
    the raylet that started them is a child of this test process)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                title = f.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if title.startswith("ray::RayTrainWorker") and _descends_from(int(entry), os.getpid()):
            found.append(int(entry))
    return found


def checkpoints(run_dir: Path) -> list[str]:
    """The checkpoint directories (``epoch=NNNN``) a Ray Train run has registered so far: those its
    controller's ``checkpoint_manager_snapshot.json`` names, which a restarted worker group restores
    from (a directory alone may exist before Ray Train has registered it)."""
    snapshot = run_dir / "checkpoint_manager_snapshot.json"
    if not run_dir.exists() or not snapshot.exists():
        return []
    text = snapshot.read_text(errors="replace")
    return sorted(d for d in os.listdir(run_dir) if d.startswith("epoch=") and d in text)


def kill_a_worker_after_first_checkpoint(run_dir: Path, *, timeout_s: float = 300.0) -> list[str]:
    """Wait for the run's first checkpoint, wait a random 0-1 s more, SIGKILL one random worker.

    Returns:
        The checkpoints that existed at the moment of the kill.
    """
    deadline = time.monotonic() + timeout_s
    while not checkpoints(run_dir):
        if time.monotonic() > deadline:
            raise TimeoutError(f"no checkpoint appeared in {run_dir} within {timeout_s} s")
        time.sleep(0.05)
    time.sleep(random.Random().uniform(0.0, 1.0))
    workers = train_workers()
    if not workers:
        raise RuntimeError("no Ray Train worker process found to kill")
    done = checkpoints(run_dir)
    os.kill(random.Random().choice(workers), signal.SIGKILL)
    return done


def run_while_killing_a_worker(train: Callable[[], Any], run_dir: Path) -> tuple[Any, list[str]]:
    """Run ``train()`` in a thread, SIGKILL one of its workers after the first checkpoint
    (:func:`kill_a_worker_after_first_checkpoint`) and wait for it.

    Returns:
        What ``train()`` returned, and the checkpoints that existed at the kill.

    Raises:
        Whatever ``train()`` raised.
    """
    outcome: dict[str, Any] = {}

    def run() -> None:
        try:
            outcome["value"] = train()
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller's thread
            outcome["error"] = exc

    thread = threading.Thread(target=run)
    thread.start()
    done = kill_a_worker_after_first_checkpoint(run_dir)
    thread.join(timeout=600)
    if "error" in outcome:
        raise outcome["error"]
    if "value" not in outcome:
        raise TimeoutError("the training did not finish within 600 s of the kill")
    return outcome["value"], done
