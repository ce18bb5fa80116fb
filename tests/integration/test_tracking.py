"""`train`, `cv` and `report` logging to a real local MLflow store, read back through MlflowClient.

Each test runs the real command (in-process runner, tiny corpus and model) and then opens the
store with :class:`mlflow.tracking.MlflowClient`: runs, params, per-epoch metrics (step =
epoch) and artifacts. The negative control runs the same training with tracking off and finds
no store.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

import pyarrow.parquet as pq
import pytest

from affectlab.cli import main
from speech_au_data import SUBJECTS, speech_au_preprocessed

if TYPE_CHECKING:
    from mlflow.entities import Run
    from mlflow.tracking import MlflowClient

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(__file__)))
AU_FILE = os.path.join(ROOT, "search_spaces", "au_003.yaml")
SENTINEL = "sentinel-secret-4f1c9a"


def _tiny(pre: str) -> list[str]:
    sets = [f"data.features={pre}", "training.max_epochs=3", "training.prev_rounds=3", "model.name=stacked",
            "model.kwargs.hidden=8", "data.max_steps=40"]
    return [arg for item in sets for arg in ("--set", item)]


@pytest.fixture
def no_tracking_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tracking settings of the machine must not leak into these tests."""
    for key in ("MLFLOW_TRACKING_URI", "MLFLOW_EXPERIMENT_NAME", "MLFLOW_EXPERIMENT_ID"):
        monkeypatch.delenv(key, raising=False)


def _client(uri: str) -> MlflowClient:
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=uri)


def _steps(client: MlflowClient, run_id: str, key: str) -> list[int]:
    return sorted(m.step for m in client.get_metric_history(run_id, key))


def _no_secret(run: Run) -> None:
    text = json.dumps({"params": run.data.params, "tags": run.data.tags})
    assert SENTINEL not in text
    assert not any(k.upper().startswith("AWS") for k in run.data.params)


@pytest.mark.slow
def test_train_with_mlflow_logs_params_epochs_and_artifacts_then_the_report(
        tmp_path_factory, ray_local, tmp_path: Path, no_tracking_env, monkeypatch: pytest.MonkeyPatch) -> None:
    pre = speech_au_preprocessed(tmp_path_factory)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SENTINEL)  # must never reach the store
    out = tmp_path / "run"
    main(["train", AU_FILE, "--out", str(out), "--runner", "in_process", "--mlflow", *_tiny(pre),
          "--set", "data.test_subjects=[s01]"])

    db = out / "mlruns" / "mlflow.db"
    assert db.exists()  # the embedded store under --out
    client = _client(f"sqlite:///{db}")
    experiment = client.get_experiment_by_name("au_003")
    assert experiment is not None and experiment.artifact_location == (out / "mlruns" / "artifacts").as_uri()
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.info.status == "FINISHED" and run.info.run_name == "au_003"
    assert run.data.tags["affectlab.out"] == str(out) and run.data.tags["affectlab.verb"] == "train"
    params = run.data.params
    assert params["training.lr"] == "0.003" and params["model.name"] == "stacked"
    assert params["data.features"] == pre and params["scaling.runner"] == "in_process"
    _no_secret(run)

    history = pq.read_table(out / "history.parquet").to_pylist()
    epochs = [int(r["epoch"]) for r in history]
    assert _steps(client, run.info.run_id, "val_loss") == epochs == list(range(1, len(history) + 1))
    logged = {m.step: m.value for m in client.get_metric_history(run.info.run_id, "train_loss")}
    assert logged == {int(r["epoch"]): pytest.approx(r["train_loss"]) for r in history}
    result = json.loads((out / "result.json").read_text())
    assert run.data.metrics["test_uar"] == pytest.approx(result["test"]["test_uar"])
    assert run.data.metrics["best_val_uar"] == pytest.approx(result["val"]["val_uar"])
    assert {f.path for f in client.list_artifacts(run.info.run_id)} == {"config.yaml", "result.json", "history.parquet"}
    copied = client.download_artifacts(run.info.run_id, "config.yaml", str(tmp_path / "dl"))
    assert Path(copied).read_text() == (out / "config.yaml").read_text()

    # the report of that output joins the run when it is written
    main(["report", str(out), "--mlflow"])
    names = {f.path for f in client.list_artifacts(run.info.run_id, "report")}
    assert "report/index.html" in names and "report/index.md" in names


@pytest.mark.slow
def test_train_without_tracking_creates_no_store(tmp_path_factory, ray_local, tmp_path: Path, no_tracking_env) -> None:
    pre = speech_au_preprocessed(tmp_path_factory)
    out = tmp_path / "run"
    main(["train", AU_FILE, "--out", str(out), "--runner", "in_process", *_tiny(pre)])
    assert (out / "result.json").exists()  # the training ran and wrote its outputs
    assert not (out / "mlruns").exists()
    assert not list(tmp_path.rglob("*.db"))


@pytest.mark.slow
def test_cv_logs_a_parent_run_with_one_nested_run_per_training(tmp_path_factory, ray_local, tmp_path: Path,
                                                              no_tracking_env) -> None:
    pre = speech_au_preprocessed(tmp_path_factory)
    store = tmp_path / "store" / "mlflow.db"
    out = tmp_path / "cv-out"
    main(["cv", AU_FILE, "--folds", "loso", "--out", str(out), "--aus", "AU12", "--kinds", "occurrence",
          "--set", f"tracking.mlflow_uri=sqlite:///{store}", "--set", "tracking.experiment=loso", *_tiny(pre)])

    assert not (out / "mlruns").exists()  # the configured store, not the embedded one
    client = _client(f"sqlite:///{store}")
    experiment = client.get_experiment_by_name("loso")
    runs = client.search_runs([experiment.experiment_id])
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(parents) == 1 and len(children) == SUBJECTS
    parent = parents[0]
    assert parent.info.status == "FINISHED" and parent.data.tags["affectlab.verb"] == "cv"
    assert parent.data.params["cv.aus"] == '["AU12"]' and parent.data.params["model.name"] == "stacked"
    assert {"folds.parquet", "table1.md", "table2.md", "summary.parquet", "timing.json"} <= \
        {f.path for f in client.list_artifacts(parent.info.run_id)}
    folds = pq.read_table(out / "cv" / "folds.parquet").to_pylist()
    mean = sum(r["uar"] for r in folds) / len(folds)
    assert parent.data.metrics["mean_test_uar"] == pytest.approx(mean)

    by_name = {r.info.run_name: r for r in children}
    assert set(by_name) == {r["run"] for r in folds}
    for row in folds:
        child = by_name[row["run"]]
        assert child.data.tags["mlflow.parentRunId"] == parent.info.run_id
        assert child.data.params["data.test_subjects"] == json.dumps([row["test_subject"]])
        assert _steps(client, child.info.run_id, "val_loss") == list(range(1, row["epochs"] + 1))
        assert child.data.metrics["test_uar"] == pytest.approx(row["uar"])
        assert {"config.yaml", "result.json", "history.parquet"} <= {f.path for f in client.list_artifacts(child.info.run_id)}


def _sweep_file(tmp_path: Path, pre: str) -> str:
    import yaml

    data = yaml.safe_load(Path(AU_FILE).read_text())
    data["base"]["data"].update({"features": pre, "max_steps": 40})
    data["base"]["model"] = {"name": "stacked", "kwargs": {"hidden": 8}}
    data["base"]["training"].update({"max_epochs": 3, "prev_rounds": 2, "patience": 2, "last_top_results": 2})
    data["base"]["scaling"]["runner"] = "in_process"
    data["space"] = {"training.lr": {"loguniform": [0.005, 0.05]}}
    data["tune"] = {"metric": "val_uar", "mode": "max", "num_samples": 3, "seed": 0, "startup_trials": 2}
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return str(path)


@pytest.mark.slow
def test_sweep_nests_every_trial_under_a_parent_run_via_rays_callback(
        tmp_path_factory, ray_local, tmp_path: Path, no_tracking_env, monkeypatch: pytest.MonkeyPatch) -> None:
    pre = speech_au_preprocessed(tmp_path_factory)
    store = tmp_path / "store"
    store.mkdir()
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{store / 'mlflow.db'}")  # MLflow's own convention
    out = tmp_path / "sweep-out"
    main(["sweep", _sweep_file(tmp_path, pre), "--out", str(out)])

    assert not (out / "mlruns").exists()
    client = _client(f"sqlite:///{store / 'mlflow.db'}")
    experiment = client.get_experiment_by_name("au_003")
    runs = client.search_runs([experiment.experiment_id])
    (parent,) = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    trials = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
    assert parent.info.status == "FINISHED" and parent.data.tags["affectlab.verb"] == "sweep"
    assert parent.data.params["model.name"] == "stacked" and parent.data.params["training.max_epochs"] == "3"
    artifacts = {f.path for f in client.list_artifacts(parent.info.run_id)}
    assert {"best_config.yaml", "sweep.json", "summary.json", "report"} <= artifacts
    assert "report/index.html" in {f.path for f in client.list_artifacts(parent.info.run_id, "report")}

    summary = json.loads((out / "summary.json").read_text())
    assert len(trials) >= summary["finished"] >= 1  # one MLflow run per Tune trial
    lrs = set()
    for trial in trials:
        assert trial.info.status == "FINISHED" and trial.data.tags["affectlab.verb"] == "sweep-trial"
        lrs.add(float(trial.data.params["training.lr"]))
        steps = _steps(client, trial.info.run_id, "val_uar")
        assert steps == list(range(1, len(steps) + 1)) and 1 <= len(steps) <= 3  # step = epoch (training_iteration)
    assert len(lrs) == len(trials)  # each run holds its own trial's sampled learning rate
    best = summary["best_params"]["training.lr"]
    assert any(trial.data.params["training.lr"] == str(best) or
               float(trial.data.params["training.lr"]) == pytest.approx(best) for trial in trials)
