"""`ray job submit` against a real local Ray head, with token authentication as a user sets it up.

The head is started with the venv's ``ray start --head --block`` in its own process group, with
an isolated HOME (so ``ray get-auth-token --generate`` writes the token there, not into the
user's ~/.ray), its own --temp-dir and free ports for everything that would otherwise use a fixed
default (dashboard agent, Ray client server). It is stopped by signalling that process (which
shuts down its Ray processes) and then killing its process group; never with ``ray stop``, which
stops every Ray cluster on the machine, including other users' and other tests'.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
RAY = str(VENV_BIN / "ray")
PYTHON = str(Path(sys.executable).absolute())  # the job must run the venv's Python, not the system's

pytestmark = [pytest.mark.slow, pytest.mark.timeout(600)]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Head:
    """A running head node: its dashboard (job server) address and the client environment."""

    address: str
    env: dict[str, str]
    temp_dir: Path


def _wait_for(path: Path, text: str, proc: subprocess.Popen, timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if path.exists() and text in path.read_text(errors="replace"):
            return
        if proc.poll() is not None:
            raise RuntimeError(f"ray start exited with {proc.returncode}:\n{path.read_text(errors='replace')[-3000:]}")
        time.sleep(1)
    raise TimeoutError(f"ray start did not come up in {timeout_s} s:\n{path.read_text(errors='replace')[-3000:]}")


def _stop(proc: subprocess.Popen, temp_dir: Path) -> None:
    """Stop the head started by this test, and nothing else."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)  # `ray start --block` drains and stops its processes
        try:
            proc.wait(timeout=5)  # then stop the rest hard: a test cluster need not drain
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)  # anything left in the head's own process group
    except ProcessLookupError:
        pass
    proc.wait(timeout=30)
    # Ray processes that left the group are still recognisable by this test's unique temp dir.
    marker = str(temp_dir)
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if marker in cmdline:
            try:
                os.kill(int(entry.name), signal.SIGKILL)
            except ProcessLookupError:
                pass


@pytest.fixture(scope="module")
def ray_head(tmp_path_factory: pytest.TempPathFactory, s3_server: str) -> Iterator[Head]:
    """A local Ray head with token authentication (Ray's default since 2.59 for local clusters).

    It starts after the local S3 server, so its environment (which the jobs' drivers and workers
    inherit, as on a real cluster whose nodes carry their credentials) reaches that server.
    """
    root = tmp_path_factory.mktemp("ray-head")
    home = root / "home"
    home.mkdir()
    temp_dir = Path("/tmp") / f"affectlab-jobs-{uuid.uuid4().hex[:8]}"  # short: Ray's socket paths are long
    env = {**os.environ, "HOME": str(home), "RAY_AUTH_MODE": "token"}
    for key in ("RAY_ADDRESS", "RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH"):
        env.pop(key, None)
    # As a user does once: create the cluster token (written to $HOME/.ray/auth_token).
    subprocess.run([RAY, "get-auth-token", "--generate"], env=env, check=True, capture_output=True, timeout=120)
    assert (home / ".ray" / "auth_token").stat().st_size > 0
    dashboard = _free_port()
    log = root / "ray-start.log"
    cmd = [
        RAY, "start", "--head", "--block", "--num-cpus", "2", "--disable-usage-stats",
        "--port", str(_free_port()), "--dashboard-host", "127.0.0.1", "--dashboard-port", str(dashboard),
        "--dashboard-agent-listen-port", str(_free_port()), "--ray-client-server-port", str(_free_port()),
        "--temp-dir", str(temp_dir),
    ]
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        _wait_for(log, "block forever", proc, timeout_s=180)
        yield Head(address=f"http://127.0.0.1:{dashboard}", env=env, temp_dir=temp_dir)
    finally:
        _stop(proc, temp_dir)
        shutil.rmtree(temp_dir, ignore_errors=True)


def _ray_job(head: Head, verb: str, *args: str, timeout_s: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [RAY, "job", verb, "--address", head.address, *args], env=head.env, cwd=REPO,
        capture_output=True, text=True, timeout=timeout_s,
    )


def _submit(head: Head, job_id: str, entrypoint: list[str], deadline_s: float = 120) -> None:
    """Submit without waiting; retry while the head's job agent is still starting."""
    deadline = time.monotonic() + deadline_s
    while True:
        done = _ray_job(head, "submit", "--no-wait", "--submission-id", job_id,
                        "--runtime-env", "jobs/runtime_env.yaml", "--", *entrypoint)
        if done.returncode == 0:
            return
        if "No available agent" not in done.stderr + done.stdout or time.monotonic() > deadline:
            raise AssertionError(f"ray job submit failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
        time.sleep(3)


def _wait_job(head: Head, job_id: str, timeout_s: float) -> str:
    deadline = time.monotonic() + timeout_s
    status = ""
    while time.monotonic() < deadline:
        done = _ray_job(head, "status", job_id)
        status = done.stdout + done.stderr
        for final, text in (("SUCCEEDED", "succeeded"), ("FAILED", "failed"), ("STOPPED", "was stopped")):
            if f"'{job_id}' {text}" in status:  # what `ray job status` prints for a finished job
                return final
        time.sleep(3)
    _ray_job(head, "stop", job_id)
    raise TimeoutError(f"job {job_id} still running after {timeout_s} s:\n{status[-2000:]}")


def test_client_without_token_is_refused(ray_head: Head) -> None:
    env = {k: v for k, v in ray_head.env.items() if k != "RAY_AUTH_MODE"}
    env["HOME"] = str(Path(ray_head.env["HOME"]).parent)  # no token here
    done = subprocess.run([RAY, "job", "list", "--address", ray_head.address], env=env, cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode != 0
    assert "auth" in (done.stdout + done.stderr).lower()


def _job_succeeds(head: Head, entrypoint: list[str], timeout_s: float) -> str:
    """Submit a job, wait for it and return its logs; fail with them unless it SUCCEEDED."""
    job_id = f"affectlab-test-{uuid.uuid4().hex[:8]}"
    _submit(head, job_id, entrypoint)
    status = _wait_job(head, job_id, timeout_s=timeout_s)
    logs = _ray_job(head, "logs", job_id).stdout
    assert status == "SUCCEEDED", logs[-4000:]
    return logs


def test_preprocess_cv_and_sweep_jobs_write_to_s3(ray_head: Head, s3_bucket: str, tmp_path: Path) -> None:
    """The three cluster-wide verbs as jobs, chained through S3 as a user's pipeline is."""
    from affectlab import storage
    from affectlab.data.synth import generate
    from speech_au_data import sweep_file

    card = generate("speech-au", str(tmp_path / "corpus"), subjects=3, items=3, seed=5,
                    min_duration_s=2.0, max_duration_s=3.0)
    pre = f"{s3_bucket}/pre"
    _job_succeeds(ray_head, [PYTHON, "jobs/preprocess.py", card, "--out", pre, "--audio", "egemaps", "--no-progress"],
                  timeout_s=420)
    assert storage.exists(f"{pre}/_SUCCESS.json")
    assert len(_published_rows(pre)) == 9

    cv = f"{s3_bucket}/cv"
    _job_succeeds(ray_head, [
        PYTHON, "jobs/cv.py", "search_spaces/au_003.yaml", "--folds", "loso", "--out", cv,
        "--aus", "AU12", "--kinds", "occurrence", "--archs", "stacked", "--set", f"data.features={pre}",
        "--set", "training.max_epochs=2", "--set", "training.prev_rounds=2", "--set", "model.kwargs.hidden=8",
    ], timeout_s=420)
    folds = storage.read_parquet(f"{cv}/cv/folds.parquet").to_pandas()
    assert sorted(folds["test_subject"]) == ["s01", "s02", "s03"]
    assert storage.exists(f"{cv}/cv/table1.md")

    sweep = f"{s3_bucket}/sweep"
    _job_succeeds(ray_head, [PYTHON, "jobs/sweep.py", sweep_file(tmp_path, pre, samples=2, epochs=2),
                             "--out", sweep, "--no-report"], timeout_s=420)
    summary = json.loads(storage.read_text(f"{sweep}/summary.json"))
    assert summary["finished"] == 2 and storage.exists(f"{sweep}/best_config.yaml")


def _published_rows(out: str) -> list[str]:
    """sample_ids of every published egemaps part file (what a reader sees), duplicates kept."""
    from affectlab import storage

    ids: list[str] = []
    for path in storage.list_files(f"{out}/features/egemaps"):
        if path.endswith(".parquet") and "/version=" in path:
            ids += storage.read_parquet(path, columns=["sample_id"]).column("sample_id").to_pylist()
    return ids


def test_stopped_preprocess_job_resumes_when_resubmitted(ray_head: Head, s3_bucket: str, tmp_path: Path) -> None:
    """`ray job stop` mid-extraction, then the same job submitted again: it skips what the
    stopped job committed and ends with exactly one row per recording."""
    from affectlab import storage
    from audio_corpus import write_csv_corpus

    n_files = 24
    card = write_csv_corpus(tmp_path / "corpus", n_files)
    out = f"{s3_bucket}/stopped"
    entrypoint = [PYTHON, "jobs/preprocess.py", card, "--out", out, "--audio", "egemaps", "--batch-size", "1",
                  "--num-workers", "1", "--no-progress"]
    job_id = f"affectlab-test-{uuid.uuid4().hex[:8]}"
    _submit(ray_head, job_id, entrypoint)
    deadline = time.monotonic() + 300
    while not _published_rows(out) and time.monotonic() < deadline:
        time.sleep(0.5)
    stop = _ray_job(ray_head, "stop", job_id)
    assert stop.returncode == 0, stop.stdout + stop.stderr
    assert _wait_job(ray_head, job_id, timeout_s=120) == "STOPPED"

    committed = _published_rows(out)
    assert 1 <= len(committed) < n_files, f"{len(committed)} rows committed: stop came too late to test a resume"
    assert len(set(committed)) == len(committed)
    assert not storage.exists(f"{out}/_SUCCESS.json")

    logs = _job_succeeds(ray_head, entrypoint, timeout_s=420)
    assert f"ok {n_files - len(committed)}  skipped {len(committed)}  failed 0" in logs, logs[-3000:]
    final = _published_rows(out)
    assert sorted(final) == [f"c{i:02d}" for i in range(n_files)]  # one row each: none lost, none twice
    assert storage.list_files(f"{out}/_staging", include_hidden=True) == []
