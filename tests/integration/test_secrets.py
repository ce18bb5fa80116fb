"""Secrets stay secret: AWS credentials reach the Ray workers through their environment (the AWS
default chain), never through ``runtime_env.env_vars``, which Ray shows in its state API and
dashboard and writes to its logs.

A sentinel secret is set in the environment of a subprocess that runs ``affectlab preprocess``,
``affectlab train`` (Ray Train workers) and ``affectlab report`` against the local S3 server on an
embedded local Ray with its own temp dir. The run must succeed, and the sentinel must appear
nowhere in Ray's state API (tasks, actors, jobs, with detail), in any file of that Ray session
(logs included), in the outputs on S3 or on disk, or in the commands' output. Negative controls
show the same searches do find a secret where one is put: a task given one in
``runtime_env.env_vars`` (what the old code did) and a file the test writes it into.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

# Runs in the subprocess: the CLI verbs inside one embedded Ray session (the same ray_session the
# verbs use; they join it), so that Ray's state API can be read after them, before shutdown.
SCRIPT = '''
import json, os, sys
import ray
from ray.util.state import list_actors, list_jobs, list_tasks
from affectlab.cli import main
from affectlab.runtime import ray_session

card, pre, run, state_dir, control = sys.argv[1:6]
train_sets = sys.argv[6:]


def dump(name):
    # this session's address: other Ray clusters may run on the host (auto-detection would refuse)
    address = ray.get_runtime_context().gcs_address
    common = {"address": address, "detail": True, "raise_on_missing_output": False}
    state = {
        "tasks": [t if isinstance(t, dict) else t.__dict__ for t in list_tasks(limit=10000, **common)],
        "actors": [a if isinstance(a, dict) else a.__dict__ for a in list_actors(limit=10000, **common)],
        "jobs": [j if isinstance(j, dict) else j.__dict__ for j in list_jobs(**common)],
    }
    with open(os.path.join(state_dir, name), "w") as f:
        json.dump(state, f, default=str)


with ray_session(num_cpus=2, dashboard=True):
    main(["preprocess", card, "--out", pre, "--audio", "egemaps"])
    main(["train", *train_sets, "--out", run])
    main(["report", run])
    dump("state.json")
    # negative control: a value handed to a task in runtime_env.env_vars, the way credentials
    # used to travel; the state API must show it
    @ray.remote(num_cpus=0)
    def probe():
        return os.environ.get("AFFECTLAB_CONTROL")
    assert ray.get(probe.options(runtime_env={"env_vars": {"AFFECTLAB_CONTROL": control}}).remote()) == control
    dump("control_state.json")
'''


def files_containing(root: Path, needle: str) -> list[str]:
    """Regular files under ``root`` whose bytes contain ``needle`` (sockets, links skipped)."""
    found = []
    data = needle.encode()
    for path in root.rglob("*"):
        if path.is_symlink() or not path.is_file():
            continue
        try:
            if data in path.read_bytes():
                found.append(str(path))
        except OSError:
            continue
    return found


def s3_objects_containing(bucket: str, needle: str) -> tuple[int, list[str]]:
    """(objects read, keys whose bytes contain ``needle``) for every object in ``bucket``."""
    import pyarrow.fs as pafs

    from affectlab import storage

    fs, base = storage.filesystem(bucket)
    infos = [i for i in fs.get_file_info(pafs.FileSelector(base, recursive=True)) if i.type == pafs.FileType.File]
    found = []
    for info in infos:
        with fs.open_input_stream(info.path) as f:
            if needle.encode() in f.read():
                found.append(info.path)
    return len(infos), found


@pytest.fixture
def ray_temp() -> Iterator[Path]:
    """A short, private Ray temp dir (Unix socket paths must stay under ~107 bytes)."""
    path = Path(tempfile.mkdtemp(prefix="alsec-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_a_sentinel_secret_appears_nowhere_in_ray_state_logs_or_outputs(
        s3_bucket: str, tmp_path: Path, ray_temp: Path) -> None:
    from affectlab import storage
    from affectlab.data.synth import generate

    sentinel = f"sentinel-{uuid.uuid4().hex}"
    control = f"control-{uuid.uuid4().hex}"
    card = generate("speech-au", str(tmp_path / "corpus"), subjects=4, items=3, seed=0, overwrite=True,
                    min_duration_s=2.0, max_duration_s=3.0)
    pre, run = f"{s3_bucket}/pre", f"{s3_bucket}/run"
    train_sets = [str(REPO / "search_spaces" / "au_003.yaml"), "--runner", "ray_train",
                  *[a for item in (f"data.features={pre}", "model.name=stacked", "model.kwargs.hidden=8",
                                   "training.max_epochs=2", "training.prev_rounds=1") for a in ("--set", item)]]
    script = tmp_path / "run_verbs.py"
    script.write_text(textwrap.dedent(SCRIPT))
    state_dir = tmp_path / "state"
    state_dir.mkdir()
    env = {**os.environ, "PYTHONPATH": str(REPO / "platform"), "RAY_TMPDIR": str(ray_temp),
           "AWS_SECRET_ACCESS_KEY": sentinel, "AWS_SESSION_TOKEN": f"{sentinel}-token"}
    env.pop("RAY_ADDRESS", None)
    assert env["AWS_ENDPOINT_URL"].startswith("http://127.0.0.1:")  # the local S3 server, nothing else

    started = time.perf_counter()
    proc = subprocess.run([sys.executable, str(script), card, pre, run, str(state_dir), control, *train_sets],
                          env=env, cwd=tmp_path, capture_output=True, text=True, timeout=800)
    print(f"preprocess + train + report with a sentinel secret: {time.perf_counter() - started:.1f} s")
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-6000:]

    # the run did its work on S3, with the workers' credentials from their environment
    assert storage.exists(f"{pre}/_SUCCESS.json")
    result = json.loads(storage.read_text(f"{run}/result.json"))
    assert result["runner"] == "ray_train" and result["epochs"] == 2
    assert storage.exists(f"{run}/report/index.html")

    # Ray's state API: tasks, actors and jobs of the run, with detail
    state_text = (state_dir / "state.json").read_text()
    state = json.loads(state_text)
    names = {t.get("name") for t in state["tasks"]} | {a.get("class_name") for a in state["actors"]}
    assert any("MapBatches" in str(n) or "_run_block" in str(n) for n in names), names  # preprocessing tasks
    assert any("RayTrainWorker" in str(n) for n in names), names  # Ray Train's workers
    assert state["jobs"]
    assert sentinel not in state_text

    # every file of this run's Ray session (logs of every process included)
    sessions = [p for p in (ray_temp / "ray").glob("session_*") if p.is_dir() and not p.is_symlink()]
    assert len(sessions) == 1, sessions
    logs = [p for p in (sessions[0] / "logs").rglob("*") if p.is_file()]
    assert len(logs) > 10 and any(p.name.startswith("raylet") for p in logs)
    assert files_containing(ray_temp, sentinel) == []

    # outputs (S3 and local), the commands' output
    n_objects, leaked = s3_objects_containing(s3_bucket, sentinel)
    assert n_objects > 10 and leaked == []
    assert files_containing(tmp_path, sentinel) == []
    assert sentinel not in output

    # negative controls: the same searches find a secret where one is put
    control_state = (state_dir / "control_state.json").read_text()
    assert control in control_state  # runtime_env.env_vars are visible in the state API ...
    assert any(Path(p).name.startswith("runtime_env_agent") for p in files_containing(ray_temp, control))  # ... and logged
    planted = tmp_path / "planted" / "leak.log"
    planted.parent.mkdir()
    planted.write_text(f"AWS_SECRET_ACCESS_KEY={sentinel}\n")
    assert files_containing(tmp_path, sentinel) == [str(planted)]
    storage.write_text(f"{s3_bucket}/planted.txt", sentinel)
    assert s3_objects_containing(s3_bucket, sentinel)[1] == [f"{s3_bucket.removeprefix('s3://')}/planted.txt"]
