"""MLflow tracking: precedence of the settings, params flattening and logging into a real local store.

The store tests write a real SQLite MLflow store in a temporary directory and read everything
back through :class:`mlflow.tracking.MlflowClient`; nothing is mocked.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from affectlab.errors import ConfigError
from affectlab.tracking import (
    ENV_VAR,
    Tracking,
    embedded_uri,
    flatten,
    log_report,
    open_tracker,
    redact,
    report_tracking,
    resolve_tracking,
)
from affectlab.training.config import ExperimentConfig, parse_experiment


def _config(**tracking: str) -> ExperimentConfig:
    base = {"name": "exp1", "data": {"features": "/data/pre"}, "scaling": {"runner": "in_process"}}
    if tracking:
        base["tracking"] = dict(tracking)
    return parse_experiment({"base": base}).base


# --- precedence -------------------------------------------------------------------------------


def test_tracking_is_off_unless_asked_for(tmp_path: Path) -> None:
    assert resolve_tracking(_config(), str(tmp_path), environ={}) is None
    assert not (tmp_path / "mlruns").exists()


def test_config_uri_beats_the_environment_which_beats_the_embedded_store(tmp_path: Path) -> None:
    out = str(tmp_path / "run")
    env = {ENV_VAR: "http://env-server:5000"}
    from_config = resolve_tracking(_config(mlflow_uri="http://cfg:5000"), out, environ=env)
    assert from_config is not None and from_config.uri == "http://cfg:5000" and from_config.source == "tracking.mlflow_uri"
    from_env = resolve_tracking(_config(), out, environ=env, enable=True)
    assert from_env is not None and from_env.uri == "http://env-server:5000" and from_env.source == ENV_VAR
    embedded = resolve_tracking(_config(), out, environ={}, enable=True)
    assert embedded is not None and embedded.source == "--mlflow"
    assert embedded.uri == "sqlite:///" + os.path.join(out, "mlruns", "mlflow.db")
    assert embedded.artifact_location == Path(out, "mlruns", "artifacts").as_uri()
    assert embedded.experiment == "exp1" and embedded.out == out


def test_no_mlflow_wins_over_every_setting(tmp_path: Path) -> None:
    config = _config(mlflow_uri="http://cfg:5000")
    assert resolve_tracking(config, str(tmp_path), environ={ENV_VAR: "http://x"}, enable=False) is None
    assert report_tracking(str(tmp_path), environ={ENV_VAR: "http://x"}, enable=False) is None


def test_experiment_name_defaults_to_the_config_name() -> None:
    named = resolve_tracking(_config(mlflow_uri="sqlite:///x.db", experiment="au-study"), "/tmp/o", environ={})
    assert named is not None and named.experiment == "au-study"


def test_embedded_store_needs_a_local_output() -> None:
    with pytest.raises(ConfigError, match=r"--mlflow.*s3://bucket/run.*tracking.mlflow_uri"):
        resolve_tracking(_config(), "s3://bucket/run", environ={}, enable=True)
    with pytest.raises(ConfigError, match="s3://bucket/run"):
        embedded_uri("s3://bucket/run")


def test_a_password_in_the_uri_is_rejected_naming_the_key() -> None:
    with pytest.raises(ConfigError, match=r"tracking\.mlflow_uri.*password.*MLFLOW_TRACKING_PASSWORD"):
        _config(mlflow_uri="https://alice:hunter2@mlflow.example")
    with pytest.raises(ConfigError, match=r"tracking\.mlflow_url"):
        parse_experiment({"base": {"data": {"features": "x"}, "tracking": {"mlflow_url": "http://x"}}})
    assert redact("https://alice:hunter2@mlflow.example:5000/p") == "https://alice:***@mlflow.example:5000/p"
    assert redact("http://mlflow.example") == "http://mlflow.example"


def test_where_runs_are_logged_is_not_part_of_what_is_trained() -> None:
    from affectlab.training.runners import fingerprint

    tracked, plain = _config(mlflow_uri="http://cfg:5000", experiment="e"), _config()
    assert tracked.tracking.mlflow_uri == "http://cfg:5000"
    assert "tracking" not in tracked.model_dump(mode="json")  # config.yaml, params, derived configs
    assert tracked.model_dump(mode="json") == plain.model_dump(mode="json")
    assert fingerprint(tracked) == fingerprint(plain)  # a resume with other tracking settings is the same training


def test_flatten_gives_dotted_keys_and_json_values() -> None:
    params = flatten({"training": {"lr": 1e-4, "amp": False}, "model": {"kwargs": {}}, "data": {"test_subjects": ["s01"],
                      "label_set": None, "features": "s3://b/pre"}})
    assert params == {"training.lr": "0.0001", "training.amp": "false", "model.kwargs": "{}",
                      "data.test_subjects": '["s01"]', "data.label_set": "null", "data.features": "s3://b/pre"}
    assert len(flatten({"k": "x" * 7000})["k"]) == 6000


# --- a real local store -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One SQLite store for this module (creating its tables takes seconds)."""
    return tmp_path_factory.mktemp("mlflow") / "store"


def _tracking(store: Path, experiment: str, out: Path) -> Tracking:
    return Tracking("sqlite:///" + str(store / "mlflow.db"), experiment, "tracking.mlflow_uri", str(out))


def test_a_training_reads_back_through_mlflows_client(store: Path, tmp_path: Path) -> None:
    from mlflow.tracking import MlflowClient

    store.mkdir(exist_ok=True)
    out = tmp_path / "run"
    out.mkdir()
    (out / "config.yaml").write_text("base: {name: exp1}\n")
    (out / "result.json").write_text(json.dumps({"best_epoch": 2}))
    config = _config().model_dump(mode="json")
    history = [{"epoch": e, "train_loss": 1.0 / e, "val_uar": 0.5 + 0.1 * e, "elapsed_s": 0.5 * e} for e in (1, 2, 3)]
    summary = {"val": {"val_uar": 0.7}, "test": {"test_uar": 0.65}, "baseline": {"baseline_uar": 0.5},
               "best_epoch": 2, "model": "enc_interatt_dec", "runner": "in_process",
               "target": {"task": "au"}, "stop_reason": "max_epochs"}
    tracker = open_tracker(_tracking(store, "unit-train", out))
    run_id = tracker.log_training(name="exp1", verb="train", config=config, history=history, summary=summary,
                                  files={"config.yaml": str(out / "config.yaml"), "result.json": str(out / "result.json"),
                                         "history.parquet": str(out / "missing.parquet")}, wall_s=2.0)

    client = MlflowClient(tracking_uri="sqlite:///" + str(store / "mlflow.db"))
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED" and run.info.run_name == "exp1"
    assert run.data.params["training.lr"] == "0.0001" and run.data.params["data.features"] == "/data/pre"
    assert run.data.tags["affectlab.out"] == str(out) and run.data.tags["affectlab.verb"] == "train"
    assert [(m.step, m.value) for m in sorted(client.get_metric_history(run_id, "val_uar"), key=lambda m: m.step)] == \
        [(1, pytest.approx(0.6)), (2, pytest.approx(0.7)), (3, pytest.approx(0.8))]
    assert run.data.metrics["best_val_uar"] == pytest.approx(0.7)
    assert run.data.metrics["test_uar"] == pytest.approx(0.65)
    assert {f.path for f in client.list_artifacts(run_id)} == {"config.yaml", "result.json"}  # missing file skipped
    experiment = client.get_experiment(run.info.experiment_id)
    assert experiment.artifact_location == (store / "artifacts").as_uri()  # beside the database, not in the cwd
    assert any((store / "artifacts").rglob("config.yaml"))


def test_a_report_is_attached_to_the_newest_run_of_its_output(store: Path, tmp_path: Path) -> None:
    from mlflow.tracking import MlflowClient

    store.mkdir(exist_ok=True)
    out = tmp_path / "run"
    report = out / "report"
    report.mkdir(parents=True)
    (report / "index.html").write_text("<html></html>")
    (report / "curve.png").write_bytes(b"\x89PNG")
    tracker = open_tracker(_tracking(store, "unit-report", out))
    older = tracker.start_run("a", verb="train")
    tracker.end_run(older)
    newer = tracker.start_run("b", verb="train")
    tracker.end_run(newer)
    other = open_tracker(_tracking(store, "unit-report", tmp_path / "elsewhere"))
    assert log_report(other, str(report)) is None  # no run records that output

    finder = open_tracker(Tracking(tracker.tracking.uri, None, ENV_VAR, str(out)))  # as `affectlab report` does
    assert log_report(finder, str(report)) == newer
    client = MlflowClient(tracking_uri=tracker.tracking.uri)
    assert {f.path for f in client.list_artifacts(newer, "report")} == {"report/index.html", "report/curve.png"}
    assert client.list_artifacts(older) == []


def test_a_store_mlflow_refuses_is_a_config_error_naming_the_source(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MLFLOW_ALLOW_FILE_STORE", raising=False)  # MLflow 3 refuses its old file store by default
    tracking = Tracking(str(tmp_path / "mlruns"), "x", "tracking.mlflow_uri", str(tmp_path))
    with pytest.raises(ConfigError, match=r"tracking\.mlflow_uri .*mlruns.*MLflow cannot use"):
        open_tracker(tracking)


def test_a_sweep_run_fails_with_its_block_and_a_resume_reopens_it(store: Path, tmp_path: Path) -> None:
    from mlflow.tracking import MlflowClient

    from affectlab.tracking import track_sweep

    store.mkdir(exist_ok=True)
    out = tmp_path / "sweep"
    out.mkdir()
    (out / "sweep.json").write_text("{}")
    tracking = _tracking(store, "unit-sweep", out)
    with track_sweep(None, _config(), out=str(out), resume=False) as callbacks:
        assert callbacks == []  # tracking off: no callback for Tune
    with pytest.raises(RuntimeError, match="driver died"):
        with track_sweep(tracking, _config(), out=str(out), resume=False) as callbacks:
            assert [type(c).__name__ for c in callbacks] == ["MLflowLoggerCallback"]
            raise RuntimeError("driver died")
    client = MlflowClient(tracking_uri=tracking.uri)
    (first,) = client.search_runs([client.get_experiment_by_name("unit-sweep").experiment_id])
    assert first.info.status == "FAILED" and first.data.tags["affectlab.verb"] == "sweep"

    with track_sweep(tracking, _config(), out=str(out), resume=True):
        assert client.get_run(first.info.run_id).info.status == "RUNNING"  # the same parent run, reopened
    resumed = client.get_run(first.info.run_id)
    assert resumed.info.status == "FINISHED"
    assert {f.path for f in client.list_artifacts(first.info.run_id)} == {"sweep.json"}
    assert len(client.search_runs([first.info.experiment_id])) == 1
