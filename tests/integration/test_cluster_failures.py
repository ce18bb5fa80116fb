"""Training and sweeps under failure on a real 3-node Ray cluster (issue 15, part 3).

Both tests run on the ``ray_cluster`` fixture: a head without CPUs and two worker nodes with one
logical CPU each, every node its own raylet and object store, the driver joined through
``RAY_ADDRESS``.

* **A lost training node.** ``run_ray_train_datasets`` trains the tiny two-player "game" task
  (the one of ``test_train_ddp``) with 2 Ray Train workers of 1 CPU each: they can only land on
  the two worker nodes, one each (checked on the worker group's placement group in the GCS). After the first checkpoint the
  node of one worker is removed without a graceful shutdown (raylet, object store and worker
  processes killed) and a fresh node is added; Ray Train V2's ``FailureConfig(max_failures)``
  restarts the worker group on the surviving and the new node, which restores the last
  checkpoint and ends with the whole round budget. Ray Train's storage is a bucket on the local
  S3 server (what a real cluster would use; the nodes reach it through the AWS_* environment they
  inherit). Restoring from a local storage directory after a SIGKILLed worker is
  ``test_train_ddp``'s test (the same game task and runner on one node).
* **A killed sweep driver.** ``affectlab sweep`` runs as a separate process that joins the
  cluster through the inherited ``RAY_ADDRESS``, as a user's job would, with a small TPE sweep of
  real trainings (the speech-au corpus, preprocessed on the cluster). Once a trial has finished
  the driver process is killed with SIGKILL; ``affectlab sweep --resume`` completes the sweep:
  finished trials are not started again, the trials interrupted mid-training run again first, the
  sweep ends with exactly the planned trials, and
  no placement group is left behind (counted in the GCS's placement group table,
  ``ray.util.placement_group_table()``, before the first run and after the resumed one: Ray
  removes the killed driver's trial groups once it notices the driver's death). Not
  ``ray.util.state.list_placement_groups``: that goes through the dashboard's API server, which
  this cluster does not run (``include_dashboard=False``).

Node operations (``remove_node``/``add_node``) run in the test's main thread (see the fixture);
the training runs in a background thread.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import optuna
import pytest
import yaml
from optuna.trial import TrialState

from affectlab import storage
from affectlab.training.runners import run_ray_train_datasets
from game_data import INFO, game_config, game_datasets
from speech_au_data import speech_au_preprocessed

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
# -- 1. a training worker's node is lost mid-run ---------------------------------------------

def _live_placement_groups() -> dict[str, dict[str, Any]]:
    """The cluster's placement groups that are not removed, by id, as the GCS holds them.

    ``ray.util.placement_group_table()`` (Ray's GCS state, DeveloperAPI): the state-API
    functions of ``ray.util.state`` go through the dashboard's API server, which the
    ``ray_cluster`` fixture does not start (``include_dashboard=False``).
    """
    import ray.util

    return {pg_id: pg for pg_id, pg in ray.util.placement_group_table().items() if pg["state"] != "REMOVED"}


def _train_worker_nodes() -> list[str]:
    """Node ids of the bundles of the created Ray Train worker group (one 1-CPU bundle per worker;
    each worker runs in its bundle)."""
    groups = [pg for pg in _live_placement_groups().values()
              if pg["state"] == "CREATED" and pg["bundles"]
              and all(b == {"CPU": 1.0} for b in pg["bundles"].values()) and len(pg["bundles"]) == 2]
    assert len(groups) == 1, groups
    return sorted(groups[0]["bundles_to_node_id"].values())


def _checkpoints(run_uri: str) -> list[str]:
    """The checkpoint directories (``epoch=NNNN``) a Ray Train run has written so far (local or S3)."""
    import pyarrow.fs as pafs

    fs, path = storage.filesystem(run_uri)
    infos = fs.get_file_info(pafs.FileSelector(path, allow_not_found=True))
    return sorted(i.base_name for i in infos if i.type == pafs.FileType.Directory and i.base_name.startswith("epoch="))


def _registered_checkpoints(run_uri: str) -> list[str]:
    """The checkpoints Ray Train has registered (its controller's ``checkpoint_manager_snapshot.json``
    names them): those a restarted worker group restores from. A checkpoint directory alone may
    still be uploading or not yet reported."""
    snapshot = storage.join(run_uri, "checkpoint_manager_snapshot.json")
    if not storage.exists(snapshot):
        return []
    text = storage.read_text(snapshot)
    return [name for name in _checkpoints(run_uri) if name in text]


@pytest.mark.timeout(300)
def test_training_loses_a_worker_node_and_restores_from_the_last_checkpoint(
        ray_cluster: Any, tmp_path: Path, request: pytest.FixtureRequest) -> None:
    cluster = ray_cluster
    config = game_config(max_iterations=1600, eval_every=200, max_failures=3)
    budget, rounds = config.training.max_iterations, config.training.max_iterations // config.training.eval_every
    out = request.getfixturevalue("s3_bucket") + "/train"
    run_dir = storage.join(out, "ray", "game")
    outcome: dict[str, Any] = {}

    def train() -> None:
        try:
            outcome["value"] = run_ray_train_datasets(config, game_datasets(4096)[0], INFO, out=out)
        except BaseException as exc:  # noqa: BLE001 - re-raised in the main thread
            outcome["error"] = exc

    started = time.monotonic()
    thread = threading.Thread(target=train, daemon=True)
    thread.start()
    while not _registered_checkpoints(run_dir):
        assert thread.is_alive(), f"the training ended before its first checkpoint: {outcome}"
        assert time.monotonic() - started < 180, "no checkpoint within 180 s"
        time.sleep(0.05)
    nodes = _train_worker_nodes()
    worker_nodes = {n.node_id: n for n in cluster.worker_nodes}
    assert len(nodes) == 2 and len(set(nodes)) == 2 and set(nodes) <= set(worker_nodes), (nodes, worker_nodes)
    done_before = _registered_checkpoints(run_dir)
    victim = worker_nodes[nodes[0]]
    cluster.remove_node(victim, allow_graceful=False)  # raylet, object store and the worker: gone
    lost_at = time.monotonic()
    new_node = cluster.add_node(**cluster.worker_node_args)  # somewhere for the restarted group to go
    print(f"first checkpoint after {lost_at - started:.1f} s; lost node {nodes[0][:8]} with {done_before}")
    restarted: list[str] = []
    while thread.is_alive() and not restarted and time.monotonic() - lost_at < 120:
        try:
            restarted = _train_worker_nodes()
        except AssertionError:  # no (single) created worker group at this moment
            pass
        if restarted == nodes:  # the old group, not yet torn down
            restarted = []
        time.sleep(0.1)
    print(f"restarted worker group on {[n[:8] for n in restarted]} after {time.monotonic() - lost_at:.1f} s")
    # the group came back on the surviving node and the new one (unless the run ended before we looked)
    assert not restarted or sorted(restarted) == sorted([nodes[1], new_node.node_id]), (restarted, nodes)

    thread.join(timeout=240)
    assert not thread.is_alive(), "the training did not finish within 240 s of the node loss"
    if "error" in outcome:
        raise outcome["error"]
    output, result = outcome["value"]
    print(f"finished {time.monotonic() - lost_at:.1f} s after the node loss; resumed from round {output.resumed_from}")
    assert done_before and done_before[-1] != f"epoch={rounds:04d}", done_before  # lost before the end
    assert output.resumed_from is not None and output.resumed_from >= int(done_before[-1].split("=")[1])
    assert [row["epoch"] for row in output.history] == list(range(1, rounds + 1))
    assert [row["iteration"] for row in output.history] == list(range(200, budget + 1, 200))
    assert output.history[-1]["iteration"] == budget
    assert output.history[-1]["val_distance"] < 0.25
    assert _checkpoints(run_dir)[-1] == f"epoch={rounds:04d}"
    assert result.error is None


# -- 2. a sweep driver killed with SIGKILL, resumed ------------------------------------------

def _sweep_file(tmp_path: Path, pre: str, *, samples: int, epochs: int, concurrent: int) -> str:
    """A small TPE sweep of real trainings (au_003's base: AU17 from eGeMAPS LLDs, a tiny MLP)."""
    data = yaml.safe_load((REPO / "search_spaces" / "au_003.yaml").read_text())
    data["base"]["data"]["features"] = pre
    data["base"]["model"] = {"name": "stacked", "kwargs": {"hidden": 8, "dropout": 0.1}}
    data["base"]["training"].update({"max_epochs": epochs, "prev_rounds": 2, "patience": 2, "last_top_results": 2})
    data["space"] = {"training.lr": {"loguniform": [0.005, 0.05]}, "model.kwargs.hidden": {"choice": [8, 16]}}
    data["tune"] = {"metric": "val_uar", "mode": "max", "num_samples": samples, "seed": 0, "startup_trials": 2,
                    "max_concurrent": concurrent}
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return str(path)


def _study_trials(out: Path) -> list[optuna.trial.FrozenTrial]:
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    if not (out / "optuna" / "study.journal").exists():
        return []
    storage = JournalStorage(JournalFileBackend(str(out / "optuna" / "study.journal")))
    try:
        return optuna.load_study(study_name="affectlab-sweep", storage=storage).get_trials()
    except KeyError:  # the study is not created yet
        return []


def _finished(trials: list[optuna.trial.FrozenTrial]) -> list[optuna.trial.FrozenTrial]:
    return [t for t in trials if "duplicate_of" not in t.user_attrs
            and t.state in (TrialState.COMPLETE, TrialState.PRUNED)]


def _ledger(out: Path) -> list[dict]:
    events = []
    for line in (out / "ledger.jsonl").read_text().splitlines():
        try:
            events.append(json.loads(line))
        except json.JSONDecodeError:  # a line cut by the kill
            pass
    return events


def _sweep_cli(space: str, out: Path, *extra: str, **popen: Any) -> subprocess.Popen:
    """``affectlab sweep`` as its own driver process, joined to the cluster by the inherited RAY_ADDRESS."""
    assert os.environ.get("RAY_ADDRESS"), "the ray_cluster fixture sets RAY_ADDRESS"
    env = {**os.environ, "PYTHONPATH": str(REPO / "platform")}
    command = [str(Path(sys.executable).parent / "affectlab"), "sweep", space, "--out", str(out), "--no-report", *extra]
    return subprocess.Popen(command, env=env, cwd=out.parent, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, **popen)


@pytest.mark.timeout(400)
def test_sweep_driver_killed_resumes_without_rerunning_finished_trials_or_leaking_placement_groups(
        ray_cluster: Any, tmp_path_factory: pytest.TempPathFactory, tmp_path: Path) -> None:
    t0 = time.monotonic()
    pre = speech_au_preprocessed(tmp_path_factory)  # preprocessed on this cluster (cached per session)
    print(f"corpus ready in {time.monotonic() - t0:.1f} s")
    samples, concurrent = 4, 2
    space = _sweep_file(tmp_path, pre, samples=samples, epochs=6, concurrent=concurrent)
    out = tmp_path / "sweep"
    groups_before = set(_live_placement_groups())

    started = time.monotonic()
    proc = _sweep_cli(space, out, start_new_session=True)
    killed, orphaned = False, set()
    try:
        while time.monotonic() - started < 180 and proc.poll() is None:
            if _finished(_study_trials(out)):
                orphaned = {i for i in _live_placement_groups() if i not in groups_before}  # its trials' groups
                os.killpg(proc.pid, signal.SIGKILL)  # the driver dies at once; its trials are orphaned
                killed = True
                break
            time.sleep(0.2)
        assert killed, "the sweep ended (or stalled) before a trial finished:\n" + (
            proc.stdout.read() if proc.poll() is not None else "(still running)")
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
    killed_at = time.monotonic()
    print(f"driver killed {killed_at - started:.1f} s after its start, holding {len(orphaned)} trial placement "
          f"group(s)")
    assert orphaned  # the trials held placement groups when the driver died: the count can see a leak
    while orphaned & set(_live_placement_groups()) and time.monotonic() - killed_at < 30:
        time.sleep(0.2)  # Ray removes a dead driver's (non-detached) groups once it sees the driver die
    assert not orphaned & set(_live_placement_groups()), "the killed driver's placement groups outlived it by 30 s"
    print(f"the killed driver's placement groups removed {time.monotonic() - killed_at:.1f} s after the kill")
    trials_before = _study_trials(out)
    finished_before = {t.number: t for t in _finished(trials_before)}
    assert 1 <= len(finished_before) < samples
    # the trials Tune was training when the driver died (one killed inside `ask` never trained)
    interrupted = [t.params for t in trials_before
                   if t.state == TrialState.RUNNING and "tune_trial_id" in t.user_attrs]
    results_before = {p: p.stat().st_mtime_ns for p in (out / "trials").glob("*/result.json")}
    trial_dirs_before = set((out / "trials").iterdir()) if (out / "trials").exists() else set()

    resumed_at = time.monotonic()
    resumed = _sweep_cli(space, out, "--resume")
    output, _ = resumed.communicate(timeout=240)
    print(f"resume: {time.monotonic() - resumed_at:.1f} s")
    assert resumed.returncode == 0, output[-4000:]
    assert f"resuming: {len(finished_before)} trial(s) already finished" in output, output[-4000:]

    # the planned number of trials, finished ones kept as they were
    after = _study_trials(out)
    assert len(_finished(after)) == samples
    by_number = {t.number: t for t in after}
    for number, trial in finished_before.items():
        assert by_number[number].state == trial.state and by_number[number].value == trial.value
    # finished trials never started again: the resumed run started exactly the others
    events = _ledger(out)
    second = [e for e in events if e["event"] == "start" and e["part"] == "part-002"]
    assert len(second) == samples - len(finished_before), second
    finished_params = [t.params for t in finished_before.values()]
    assert not [e for e in second if e["params"] in finished_params]
    assert len({e["trial_id"] for e in second}) == len(second)
    first_wave = [e["params"] for e in second[:concurrent]]  # started together: their ledger order is a race
    assert all(p in first_wave for p in interrupted), (interrupted, first_wave)  # the interrupted ones run first
    assert not {e["trial_id"] for e in second} & {p.name for p in trial_dirs_before}  # new trial dirs only
    for path, mtime in results_before.items():  # the finished trials' outputs are untouched
        assert path.stat().st_mtime_ns == mtime
    summary = json.loads((out / "summary.json").read_text())
    assert summary["finished"] == samples and summary["requested"] == samples
    assert summary["ran_now"] == samples - len(finished_before)

    # no placement group left: the killed driver's trial groups are removed once Ray sees it died
    deadline = time.monotonic() + 30
    while True:
        leaked = {i: pg for i, pg in _live_placement_groups().items() if i not in groups_before}
        if not leaked or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert not leaked, leaked
    print(f"placement groups: {len(groups_before)} before, {len(orphaned)} at the kill, "
          f"{len(_live_placement_groups())} after; {len(finished_before)} trial(s) finished and "
          f"{len(interrupted)} interrupted at the kill; "
          f"total {time.monotonic() - t0:.1f} s")
