"""Sweeps on a real local Ray: Optuna TPE + ASHA over a small real PyTorch trainable, and resume
after the driver is killed (SIGKILL) without re-running finished trials."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import optuna
import pytest
from optuna.trial import TrialState

REPO = Path(__file__).resolve().parents[2]

# A real (tiny) training: an MLP on a fixed synthetic task, one report per epoch. The sweep
# machinery sees exactly what it sees with affectlab's own training: train(config, out=, reporter=).
TRAINABLE = '''
import os, time
import torch

def train(config, *, out, reporter):
    torch.manual_seed(config.training.seed)
    torch.set_num_threads(1)
    g = torch.Generator().manual_seed(0)
    x = torch.randn(256, 6, generator=g)
    y = (x[:, 0] + x[:, 1] * x[:, 2] > 0).long()
    hidden = int(config.model.kwargs.get("hidden", 8))
    net = torch.nn.Sequential(torch.nn.Linear(6, hidden), torch.nn.Tanh(), torch.nn.Linear(hidden, 2))
    opt = torch.optim.SGD(net.parameters(), lr=config.training.lr)
    for epoch in range(1, config.training.max_epochs + 1):
        for _ in range(10):
            opt.zero_grad()
            loss = torch.nn.functional.cross_entropy(net(x[:192]), y[:192])
            loss.backward()
            opt.step()
        with torch.no_grad():
            acc = (net(x[192:]).argmax(1) == y[192:]).float().mean().item()
        reporter({"epoch": epoch, "val_uar": acc, "val_loss": float(loss)}, None)
        time.sleep(float(os.environ.get("EPOCH_SLEEP", "0")))
'''

SWEEP = {
    "base": {
        "data": {"features": "/nonexistent/preprocessed"},
        "model": {"name": "stacked", "kwargs": {"hidden": 8}},
        "training": {"max_epochs": 4, "lr": 0.1},
        "scaling": {"runner": "in_process"},
    },
    "space": {"training.lr": {"loguniform": [1e-3, 1.0]}, "model.kwargs.hidden": {"int": [4, 32], "step": 4}},
    "tune": {"num_samples": 4, "seed": 0, "startup_trials": 2, "asha": {"grace_period": 1, "reduction_factor": 2}},
}

SCRIPT = '''
import json, sys
from affectlab.runtime import ray_session
from affectlab.tuning import parse_sweep, run_sweep
{trainable}
if __name__ == "__main__":
    out, samples, resume = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "resume"
    sweep = parse_sweep(json.loads(sys.argv[4]), source="test-sweep")
    with ray_session(num_cpus=2):
        summary = run_sweep(sweep, out=out, samples=samples, resume=resume, train_fn=train)
    print("SUMMARY", json.dumps(summary.__dict__))
'''


def study_trials(out: Path) -> list:
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    storage = JournalStorage(JournalFileBackend(str(out / "optuna" / "study.journal")))
    return optuna.load_study(study_name="affectlab-sweep", storage=storage).get_trials()


def ledger(out: Path) -> list[dict]:
    events = []
    for line in (out / "ledger.jsonl").read_text().splitlines():
        try:
            events.append(json.loads(line))
        except json.JSONDecodeError:
            pass
    return events


@pytest.mark.slow
def test_sweep_runs_trials_and_writes_results(ray_local: None, tmp_path: Path) -> None:
    from affectlab.tuning import parse_sweep, run_sweep

    namespace: dict = {}
    exec(TRAINABLE, namespace)  # noqa: S102 - the test's own trainable, shipped to trial processes by value
    lines: list[str] = []
    sweep = parse_sweep(SWEEP, source="test-sweep")
    out = tmp_path / "sweep"
    summary = run_sweep(sweep, out=str(out), train_fn=namespace["train"], echo=lines.append)
    assert summary.finished == summary.requested == 4 and summary.ran_now == 4
    trials = study_trials(out)
    assert [t.state for t in trials] == [TrialState.COMPLETE] * 4
    assert summary.best_value == max(t.value for t in trials)
    events = ledger(out)
    assert sum(e["event"] == "start" for e in events) == 4
    assert sum(e["event"] == "result" for e in events) == summary.epochs_now >= 4
    assert any("started: model.kwargs.hidden=" in line for line in lines)
    assert lines[-1].startswith("[sweep] done: 4/4 trials; best val_uar_best=")
    # the objective is the best epoch so far: what the training keeps of a configuration
    results = [e for e in events if e["event"] == "result"]
    assert all(e["metrics"]["val_uar_best"] >= e["metrics"]["val_uar"] for e in results)
    best = (out / "best_config.yaml").read_text()
    from affectlab.training.config import parse_experiment
    from affectlab.config import parse_yaml

    config = parse_experiment(parse_yaml(best)).base
    assert config.training.lr == pytest.approx(summary.best_params["training.lr"])
    # each trial's processes wrote nothing else: a new sweep into the same output is refused
    from affectlab.errors import StorageError

    with pytest.raises(StorageError, match="already holds a sweep"):
        run_sweep(sweep, out=str(out), train_fn=namespace["train"], echo=None)


def _run_script(tmp_path: Path, out: Path, samples: int, mode: str, **popen: object) -> subprocess.Popen:
    script = tmp_path / "sweep_script.py"
    script.write_text(textwrap.dedent(SCRIPT).format(trainable=TRAINABLE))
    env = {**os.environ, "PYTHONPATH": str(REPO / "platform"), "EPOCH_SLEEP": "0.4"}
    env.pop("RAY_ADDRESS", None)
    return subprocess.Popen([sys.executable, str(script), str(out), str(samples), mode, json.dumps(SWEEP)],
                            env=env, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            **popen)


@pytest.mark.slow
@pytest.mark.timeout(400)
def test_resume_after_the_driver_is_killed(tmp_path: Path) -> None:
    out = tmp_path / "sweep"
    samples = 5
    proc = _run_script(tmp_path, out, samples, "new", start_new_session=True)
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and proc.poll() is None:
            finished = [t for t in study_trials(out) if t.state == TrialState.COMPLETE] if (out / "optuna").exists() else []
            if len(finished) >= 2:
                break
            time.sleep(0.5)
        assert proc.poll() is None, "the sweep ended before it could be interrupted:\n" + proc.stdout.read()
        os.killpg(proc.pid, signal.SIGKILL)  # the driver dies at once, mid-sweep
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
    before = study_trials(out)
    done_before = {t.number: t.params for t in before if t.state == TrialState.COMPLETE}
    assert 2 <= len(done_before) < samples

    resumed = _run_script(tmp_path, out, samples, "resume")
    output, _ = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, output[-4000:]
    assert f"resuming: {len(done_before)} trial(s) already finished" in output

    after = study_trials(out)
    complete = [t for t in after if t.state == TrialState.COMPLETE]
    assert len(complete) == samples  # ends with the requested number of trials
    for number, params in done_before.items():  # finished trials are kept as they were ...
        assert after[number].state == TrialState.COMPLETE and after[number].params == params
    events = ledger(out)
    second_run = [e for e in events if e["event"] == "start" and e["part"] == "part-002"]
    assert len(second_run) == samples - len(done_before)
    for event in second_run:  # ... and never started again
        assert event["params"] not in list(done_before.values())
    summary = json.loads((out / "summary.json").read_text())
    assert summary["finished"] == samples and summary["ran_now"] == samples - len(done_before)


@pytest.mark.slow
def test_sweep_to_s3_keeps_the_journal_local_and_uploads_it(ray_local: None, s3_bucket: str, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    from affectlab import storage
    from affectlab.reporting import write_report
    from affectlab.tuning import parse_sweep, run_sweep

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    namespace: dict = {}
    exec(TRAINABLE, namespace)  # noqa: S102 - see above
    data = json.loads(json.dumps(SWEEP))
    data["tune"]["num_samples"] = 2
    out = f"{s3_bucket}/sweeps/one"
    summary = run_sweep(parse_sweep(data, source="test-sweep"), out=out, train_fn=namespace["train"], echo=None)
    assert summary.finished == 2
    for name in ("sweep.json", "optuna/study.journal", "ledger.jsonl", "summary.json", "best_config.yaml"):
        assert storage.exists(storage.join(out, name)), name
    local = list((tmp_path / "cache" / "affectlab" / "sweeps").glob("*/optuna/study.journal"))
    assert len(local) == 1 and storage.read_bytes(storage.join(out, "optuna/study.journal")) == local[0].read_bytes()
    index = write_report(out)
    assert index == f"{out}/report/index.html" and "## Sweep" in storage.read_text(f"{out}/report/index.md")
