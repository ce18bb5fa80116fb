"""Experiment tracking with MLflow for ``affectlab train``, ``cv`` and ``sweep``.

Tracking is **off** unless asked for. It is on when any of these holds (and ``--no-mlflow`` is
not given):

* ``tracking.mlflow_uri`` is set in the experiment's ``base`` section,
* the ``MLFLOW_TRACKING_URI`` environment variable is set (MLflow's own convention),
* the command got ``--mlflow``.

Where runs go (first that applies): ``tracking.mlflow_uri``, then ``MLFLOW_TRACKING_URI``, then
the **embedded store** under the output directory: an SQLite database
``<out>/mlruns/mlflow.db`` with artifacts in ``<out>/mlruns/artifacts/`` (a local ``--out`` only;
for ``s3://`` outputs name a tracking server). A tracking server (``http(s)://...``), another
database (``postgresql://...``) or ``databricks`` is used as MLflow uses it. MLflow 3 refuses its
old file store (``./mlruns`` directories) unless ``MLFLOW_ALLOW_FILE_STORE=true``; SQLite is
its recommended local store. When affectlab creates an experiment in an SQLite store its
artifacts go beside the database (``artifacts/``), not into the working directory.

What is logged, through MLflow's client API (:class:`mlflow.tracking.MlflowClient`), after the
training ends (``train``, ``cv``) and live through Ray's
:class:`ray.air.integrations.mlflow.MLflowLoggerCallback` for sweep trials:

* **params**: the resolved config, flattened to dotted keys (``training.lr``,
  ``model.kwargs.hidden``; lists and mappings as JSON). Configs never hold credentials (a
  ``tracking.mlflow_uri`` with a password is rejected), and nothing from the environment is
  logged, so ``AWS_*`` secrets cannot reach the store;
* **metrics**: every numeric column of the per-epoch history with ``step`` = epoch (and the
  time each epoch ended), then ``best_val_*``, ``test_*`` and ``baseline_*`` of the kept weights;
* **artifacts**: ``config.yaml``, ``result.json`` and ``history.parquet``; for CV the tables,
  ``folds.parquet`` and ``timing.json``; for a sweep ``sweep.json``, ``summary.json`` and
  ``best_config.yaml``; and the report
  (``affectlab report``) of an output whose run is found by its ``affectlab.out`` tag.

Run layout: ``train`` is one run; ``cv`` is a parent run with one nested run per training
(``mlflow.parentRunId``); ``sweep`` is a parent run whose trials are nested runs written by Ray's
callback (params: the trial's sampled hyperparameters; metrics: what the trial reports each
epoch, ``step`` = Tune's ``training_iteration``).
"""

from __future__ import annotations

import json
import math
import os
import tempfile
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from affectlab import storage
from affectlab.errors import ConfigError

if TYPE_CHECKING:
    from mlflow.tracking import MlflowClient

    from affectlab.training.config import ExperimentConfig
    from affectlab.training.run import TrainResult

__all__ = [
    "ENV_VAR",
    "Tracker",
    "Tracking",
    "embedded_uri",
    "flatten",
    "log_cv",
    "log_report",
    "log_train",
    "open_tracker",
    "redact",
    "report_tracking",
    "resolve_tracking",
    "sweep_callback",
    "track_sweep",
    "tracking_line",
]

ENV_VAR = "MLFLOW_TRACKING_URI"
EMBEDDED_DIR = "mlruns"
EMBEDDED_DB = "mlflow.db"
ARTIFACTS_DIR = "artifacts"
TAG_OUT = "affectlab.out"
TAG_VERB = "affectlab.verb"
PARENT_TAG = "mlflow.parentRunId"  # mlflow.utils.mlflow_tags.MLFLOW_PARENT_RUN_ID
MAX_PARAM_LENGTH = 6000  # mlflow.utils.validation.MAX_PARAM_VAL_LENGTH


@dataclass(frozen=True)
class Tracking:
    """Where and under which experiment the runs of one command go.

    Attributes:
        uri: The MLflow tracking URI.
        experiment: The MLflow experiment name (None: no experiment is created; searches span
            every experiment, as ``affectlab report`` does).
        source: Where the URI came from: ``tracking.mlflow_uri``, ``MLFLOW_TRACKING_URI`` or
            ``--mlflow`` (the embedded store); named in errors.
        out: The affectlab output the runs describe (absolute path or URI; the ``affectlab.out`` tag).
    """

    uri: str
    experiment: str | None
    source: str
    out: str

    @property
    def artifact_location(self) -> str | None:
        """Artifact root for experiments affectlab creates: beside the database for SQLite, else the store's default."""
        if not self.uri.startswith("sqlite:///"):
            return None
        db = self.uri[len("sqlite:///"):]
        if not db or db == ":memory:":
            return None
        return Path(os.path.abspath(db)).parent.joinpath(ARTIFACTS_DIR).as_uri()


def _output_id(out: str) -> str:
    """The ``affectlab.out`` tag of an output: the URI as given when remote, else the absolute path."""
    return out.rstrip("/") if storage.is_remote(out) else storage.filesystem(out)[1]


def embedded_uri(out: str) -> str:
    """The embedded store of a local output directory: ``sqlite:///<out>/mlruns/mlflow.db``.

    Raises:
        ConfigError: ``out`` is remote (an SQLite store needs a local file).
    """
    if storage.is_remote(out):
        raise ConfigError(
            f"--mlflow: the embedded MLflow store lives under a local --out, not {out!r}; set "
            f"tracking.mlflow_uri or {ENV_VAR} to a tracking server (http://host:5000) or a local sqlite:///path.db"
        )
    return "sqlite:///" + os.path.join(storage.filesystem(out)[1], EMBEDDED_DIR, EMBEDDED_DB)


def resolve_tracking(config: ExperimentConfig, out: str, *, enable: bool | None = None,
                     environ: Mapping[str, str] | None = None) -> Tracking | None:
    """Decide whether and where to track (see the module docstring for the precedence).

    Args:
        config: The experiment's base config (``tracking`` section and ``name``).
        out: The command's output directory (path or URI).
        enable: ``--mlflow`` (True), ``--no-mlflow`` (False) or neither (None).
        environ: The environment (default: ``os.environ``).

    Returns:
        The :class:`Tracking`, or None when tracking is off.

    Raises:
        ConfigError: ``--mlflow`` alone with a remote ``out``.
    """
    if enable is False:
        return None
    env = os.environ if environ is None else environ
    experiment = config.tracking.experiment or config.name
    if config.tracking.mlflow_uri:
        return Tracking(config.tracking.mlflow_uri, experiment, "tracking.mlflow_uri", _output_id(out))
    if env.get(ENV_VAR, "").strip():
        return Tracking(env[ENV_VAR].strip(), experiment, ENV_VAR, _output_id(out))
    if enable:
        return Tracking(embedded_uri(out), experiment, "--mlflow", _output_id(out))
    return None


def flatten(mapping: Mapping[str, Any], prefix: str = "") -> dict[str, str]:
    """Dotted-key params of a nested mapping: ``{"training": {"lr": 1e-4}}`` -> ``{"training.lr": "0.0001"}``.

    Strings stay as they are, other scalars and lists are JSON; an empty mapping is ``{}``.
    Values longer than MLflow's limit (6000 characters) are cut and end with ``...``.
    """
    params: dict[str, str] = {}
    for key, value in mapping.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            params.update(flatten(value, prefix=f"{name}."))
            continue
        text = value if isinstance(value, str) else json.dumps(value, default=str)
        params[name] = text if len(text) <= MAX_PARAM_LENGTH else text[: MAX_PARAM_LENGTH - 3] + "..."
    return params


def _now_ms() -> int:
    return int(time.time() * 1000)


class Tracker:
    """An MLflow client bound to one tracking URI and experiment (created on first use).

    Use :func:`open_tracker`, which turns store errors into :class:`ConfigError` naming the
    setting at fault.
    """

    def __init__(self, tracking: Tracking) -> None:
        from mlflow.tracking import MlflowClient

        self.tracking = tracking
        self.client: MlflowClient = MlflowClient(tracking_uri=tracking.uri)
        self.experiment_id = self._experiment_id(tracking.experiment) if tracking.experiment else None

    def _experiment_id(self, name: str) -> str:
        from mlflow.exceptions import MlflowException

        found = self.client.get_experiment_by_name(name)
        if found is not None:
            return found.experiment_id
        try:
            return self.client.create_experiment(name, artifact_location=self.tracking.artifact_location)
        except MlflowException:  # created meanwhile by another process
            found = self.client.get_experiment_by_name(name)
            if found is None:
                raise
            return found.experiment_id

    def start_run(self, name: str, *, verb: str, params: Mapping[str, str] | None = None,
                  tags: Mapping[str, str] | None = None, parent_run_id: str | None = None,
                  start_ms: int | None = None) -> str:
        """Create a run (nested under ``parent_run_id`` if given) with params and tags; returns its id."""
        from mlflow.entities import Param

        if self.experiment_id is None:
            raise ValueError("this tracker has no experiment to create runs in")
        all_tags = {TAG_VERB: verb, TAG_OUT: self.tracking.out, **(tags or {})}
        if parent_run_id:
            all_tags[PARENT_TAG] = parent_run_id
        run = self.client.create_run(self.experiment_id, start_time=start_ms, tags=all_tags, run_name=name)
        run_id = run.info.run_id
        if params:
            self.client.log_batch(run_id, params=[Param(k, v) for k, v in params.items()])
        return run_id

    def log_history(self, run_id: str, history: Sequence[Mapping[str, Any]], *, start_ms: int | None = None) -> None:
        """Every numeric column of the per-epoch rows as metrics with ``step`` = the row's ``epoch``.

        Each metric's timestamp is ``start_ms`` plus the row's ``elapsed_s`` when both are known.
        """
        from mlflow.entities import Metric

        now = _now_ms()
        metrics = []
        for row in history:
            step = int(row["epoch"])
            elapsed = row.get("elapsed_s")
            stamp = start_ms + int(1000 * float(elapsed)) if start_ms is not None and _is_number(elapsed) else now
            metrics.extend(Metric(key, float(value), stamp, step) for key, value in row.items()
                           if key != "epoch" and _is_number(value))
        if metrics:
            self.client.log_batch(run_id, metrics=metrics)

    def log_metrics(self, run_id: str, metrics: Mapping[str, Any], *, step: int = 0) -> None:
        """Numeric ``metrics`` at one ``step`` (non-numeric values are skipped)."""
        from mlflow.entities import Metric

        now = _now_ms()
        batch = [Metric(key, float(value), now, step) for key, value in metrics.items() if _is_number(value)]
        if batch:
            self.client.log_batch(run_id, metrics=batch)

    def log_files(self, run_id: str, files: Mapping[str, str], *, artifact_path: str | None = None) -> None:
        """Copy output files (paths or ``s3://`` URIs, keyed by artifact name) into the run's artifacts.

        Missing files are skipped.
        """
        with tempfile.TemporaryDirectory(prefix="affectlab-mlflow-") as tmp:
            staged = 0
            for name, uri in files.items():
                if not storage.exists(uri) or storage.is_dir(uri):
                    continue
                local = os.path.join(tmp, name)
                os.makedirs(os.path.dirname(local), exist_ok=True)
                with open(local, "wb") as f:
                    f.write(storage.read_bytes(uri))
                staged += 1
            if staged:
                self.client.log_artifacts(run_id, tmp, artifact_path)

    def end_run(self, run_id: str, *, status: str = "FINISHED", end_ms: int | None = None) -> None:
        """Mark the run terminated (``FINISHED`` or ``FAILED``)."""
        self.client.set_terminated(run_id, status=status, end_time=end_ms)

    def log_training(self, *, name: str, verb: str, config: Mapping[str, Any], history: Sequence[Mapping[str, Any]],
                     summary: Mapping[str, Any], files: Mapping[str, str], parent_run_id: str | None = None,
                     wall_s: float | None = None) -> str:
        """One training as a finished run: params, per-epoch and final metrics, output files.

        Args:
            name: Run name (the config's name).
            verb: ``train`` or ``cv``, the ``affectlab.verb`` tag.
            config: The resolved config (``model_dump(mode="json")``), logged as params.
            history: The per-epoch rows (key ``epoch``).
            summary: :meth:`affectlab.training.run.TrainResult.summary`.
            files: Artifact name -> output file (path or URI).
            parent_run_id: Nest the run under this run.
            wall_s: How long the training took (sets the run's start time before now).

        Returns:
            The run id.
        """
        end = _now_ms()
        start = end - int(1000 * wall_s) if wall_s is not None else None
        tags = {"affectlab.task": str(summary.get("target", {}).get("task", "")),
                "affectlab.model": str(summary.get("model", "")), "affectlab.runner": str(summary.get("runner", "")),
                "affectlab.stop_reason": str(summary.get("stop_reason", ""))}
        run_id = self.start_run(name, verb=verb, params=flatten(config), tags=tags, parent_run_id=parent_run_id,
                                start_ms=start)
        try:
            self.log_history(run_id, history, start_ms=start)
            last = max((int(r["epoch"]) for r in history), default=0)
            final = {f"best_{k}": v for k, v in summary.get("val", {}).items()}
            final.update(summary.get("test", {}))
            final.update(summary.get("baseline", {}))
            if history and "best_epoch" not in history[-1]:
                final["best_epoch"] = summary.get("best_epoch")
            self.log_metrics(run_id, final, step=last)
            self.log_files(run_id, files)
        except Exception:
            self.end_run(run_id, status="FAILED")
            raise
        self.end_run(run_id, end_ms=end)
        return run_id


def _is_number(value: Any) -> bool:
    if isinstance(value, bool):
        return False
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return True


def open_tracker(tracking: Tracking) -> Tracker:
    """Connect to the store and get (or create) the experiment, before any training runs.

    Raises:
        ConfigError: The store refuses the URI (e.g. MLflow 3's file store, an unknown scheme,
            an unreachable server), naming the setting it came from.
    """
    if tracking.source == "--mlflow":
        os.makedirs(os.path.dirname(tracking.uri[len("sqlite:///"):]), exist_ok=True)
    try:
        return Tracker(tracking)
    except Exception as exc:  # any store failure (MlflowException, SQLAlchemy, network) becomes a config error
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ConfigError(f"{tracking.source} ({redact(tracking.uri)}): MLflow cannot use this tracking store: "
                          f"{first}") from exc


def tracking_line(tracking: Tracking) -> str:
    """One line for the CLI: experiment, store (password redacted) and where the URI came from."""
    return f"experiment {tracking.experiment!r} in {redact(tracking.uri)} (from {tracking.source})"


def report_tracking(uri: str, *, enable: bool | None = None, environ: Mapping[str, str] | None = None) -> Tracking | None:
    """Tracking for ``affectlab report URI``: where to find the runs of the output ``uri``.

    ``MLFLOW_TRACKING_URI`` when set, else (``--mlflow``) the embedded store ``<uri>/mlruns``;
    None when neither (or ``--no-mlflow``). No experiment is named: runs are found by their
    ``affectlab.out`` tag in every experiment.

    Raises:
        ConfigError: ``--mlflow`` alone with a remote ``uri``.
    """
    if enable is False:
        return None
    env = os.environ if environ is None else environ
    if env.get(ENV_VAR, "").strip():
        return Tracking(env[ENV_VAR].strip(), None, ENV_VAR, _output_id(uri))
    if enable:
        return Tracking(embedded_uri(uri), None, "--mlflow", _output_id(uri))
    return None


def embedded_store_exists(tracking: Tracking) -> bool:
    """False for an embedded store (``--mlflow``) whose database was never created; True otherwise."""
    return tracking.source != "--mlflow" or os.path.exists(tracking.uri[len("sqlite:///"):])


def redact(uri: str) -> str:
    """``uri`` with any password replaced by ``***`` (for messages)."""
    from urllib.parse import urlsplit, urlunsplit

    try:
        parts = urlsplit(uri)
        if parts.password is None:
            return uri
        host = parts.hostname or ""
        if parts.port:
            host = f"{host}:{parts.port}"
        return urlunsplit(parts._replace(netloc=f"{parts.username or ''}:***@{host}"))
    except ValueError:
        return "<unparseable URI>"


def _output_files(out: str, names: Iterable[str]) -> dict[str, str]:
    return {name: storage.join(out, name) for name in names}


def log_train(tracker: Tracker, result: TrainResult) -> str:
    """Log one ``affectlab train`` (a finished :class:`~affectlab.training.run.TrainResult`); returns the run id.

    The artifacts are the outputs ``train`` wrote under ``result.out`` (``config.yaml``,
    ``result.json``, ``history.parquet``).
    """
    return tracker.log_training(
        name=result.config.name, verb="train", config=result.config.model_dump(mode="json"), history=result.history,
        summary=result.summary(), files=_output_files(result.out, ("config.yaml", "result.json", "history.parquet")),
        wall_s=result.wall_s,
    )


def log_cv(tracker: Tracker, base: ExperimentConfig, cv_out: str, runs: Sequence[str], *,
           axes: Mapping[str, Any], wall_s: float) -> str:
    """Log a finished CV grid: a parent run and one nested run per training; returns the parent's id.

    Args:
        tracker: The open tracker.
        base: The experiment's base config (the parent's params, with ``cv.*`` axes).
        cv_out: ``<out>/cv`` (tables, ``folds.parquet``, ``runs/<name>/``).
        runs: The trainings' names (directories under ``runs/``).
        axes: The grid axes (``folds``, ``aus``, ``kinds``, ``archs``, ``feature_sets``).
        wall_s: The grid's wall time.
    """
    import yaml

    params = flatten(base.model_dump(mode="json"))
    params.update(flatten({"cv": dict(axes)}))
    end = _now_ms()
    parent = tracker.start_run(f"{base.name}-cv", verb="cv", params=params, start_ms=end - int(1000 * wall_s))
    status = "FAILED"
    try:
        for name in runs:
            run_dir = storage.join(cv_out, "runs", name)
            config = yaml.safe_load(storage.read_text(storage.join(run_dir, "config.yaml")))["base"]
            summary = json.loads(storage.read_text(storage.join(run_dir, "result.json")))
            history = storage.read_parquet(storage.join(run_dir, "history.parquet")).to_pylist()
            tracker.log_training(name=name, verb="cv", config=config, history=history, summary=summary,
                                 files=_output_files(run_dir, ("config.yaml", "result.json", "history.parquet")),
                                 parent_run_id=parent, wall_s=summary.get("wall_s"))
        tracker.log_metrics(parent, _cv_metrics(cv_out))
        tables = ("folds.parquet", "summary.parquet", "table1.md", "table2.md", "table1.parquet", "table2.parquet",
                  "timing.json")
        tracker.log_files(parent, _output_files(cv_out, tables))
        status = "FINISHED"
    finally:
        tracker.end_run(parent, status=status, end_ms=end if status == "FINISHED" else None)
    return parent


def _cv_metrics(cv_out: str) -> dict[str, float]:
    """The LOSO means of ``summary.parquet`` (one key per grid cell when the grid has several)."""
    uri = storage.join(cv_out, "summary.parquet")
    if not storage.exists(uri):
        return {}
    rows = storage.read_parquet(uri).to_pylist()
    metrics: dict[str, float] = {}
    for row in rows:
        suffix = "" if len(rows) == 1 else "/" + "/".join(str(row[k]) for k in ("au", "kind", "arch", "feature_set"))
        for key in ("mean_uar", "std_uar", "folds", "mean_uar_two_class", "folds_two_class"):
            value = row.get(key)
            if _is_number(value) and not math.isnan(float(value)):
                metrics[f"{key.replace('uar', 'test_uar')}{suffix}"] = float(value)
    return metrics


def start_sweep_run(tracker: Tracker, base: ExperimentConfig, *, resume: bool) -> str:
    """The parent run of a sweep, its params the base config; on ``resume`` the newest sweep run of the output."""
    if resume:
        found = find_runs(tracker, verb="sweep")
        if found:
            tracker.client.update_run(found[0], status="RUNNING")
            return found[0]
    return tracker.start_run(f"{base.name}-sweep", verb="sweep", params=flatten(base.model_dump(mode="json")))


def sweep_callback(tracker: Tracker, parent_run_id: str) -> Any:
    """Ray's :class:`~ray.air.integrations.mlflow.MLflowLoggerCallback`, nesting every trial under the sweep's run.

    The callback runs on the driver: it creates one run per trial (params: the trial's config,
    metrics: each reported result with ``step`` = ``training_iteration``). The experiment already
    exists (:class:`Tracker` created it with its artifact location), so the callback reuses it.
    """
    from ray.air.integrations.mlflow import MLflowLoggerCallback

    return MLflowLoggerCallback(
        tracking_uri=tracker.tracking.uri, experiment_name=tracker.tracking.experiment,
        tags={PARENT_TAG: parent_run_id, TAG_VERB: "sweep-trial", TAG_OUT: tracker.tracking.out},
        save_artifact=False,  # a trial directory holds checkpoints: too big to copy per trial
    )


@contextmanager
def track_sweep(tracking: Tracking | None, base: ExperimentConfig, *, out: str, resume: bool) -> Iterator[list[Any]]:
    """Track one run of a sweep: yields the Tune callbacks to add (none when ``tracking`` is None).

    Opens the store (a bad URI fails here, before Ray work), starts (or, on ``resume``, reopens)
    the sweep's parent run, and when the block ends attaches ``sweep.json``, ``summary.json`` and
    ``best_config.yaml`` and ends the run (``FAILED`` if the block raised).
    """
    if tracking is None:
        yield []
        return
    tracker = open_tracker(tracking)
    parent = start_sweep_run(tracker, base, resume=resume)
    try:
        yield [sweep_callback(tracker, parent)]
    except BaseException:
        tracker.end_run(parent, status="FAILED")
        raise
    try:
        tracker.log_files(parent, _output_files(out, ("sweep.json", "summary.json", "best_config.yaml")))
    finally:
        tracker.end_run(parent)


def find_runs(tracker: Tracker, *, verb: str | None = None) -> list[str]:
    """Top-level affectlab runs of ``tracker.tracking.out`` in its experiment, newest first."""
    clauses = [f"tags.`{TAG_OUT}` = '{_quote(tracker.tracking.out)}'"]
    if verb:
        clauses.append(f"tags.`{TAG_VERB}` = '{_quote(verb)}'")
    experiments = ([tracker.experiment_id] if tracker.experiment_id is not None
                   else [e.experiment_id for e in tracker.client.search_experiments()])
    if not experiments:
        return []
    runs = tracker.client.search_runs(experiments, " and ".join(clauses), order_by=["attributes.start_time DESC"])
    return [r.info.run_id for r in runs if PARENT_TAG not in r.data.tags]


def _quote(value: str) -> str:
    return value.replace("\\", "\\\\").replace("'", "\\'")


def log_report(tracker: Tracker, report_dir: str, *, run_id: str | None = None) -> str | None:
    """Log a report directory (``affectlab report``'s output) under ``report/`` of a run.

    Args:
        tracker: The open tracker (its ``out`` names the output the report describes).
        report_dir: The report directory (path or URI).
        run_id: The run to attach to (default: the newest top-level run of the output).

    Returns:
        The run id, or None when no run of the output exists in the experiment.
    """
    target = run_id or next(iter(find_runs(tracker)), None)
    if target is None:
        return None
    files = storage.list_files(report_dir)
    base = report_dir.rstrip("/")
    named = {f[len(base):].lstrip("/").lstrip(os.sep): f for f in files}
    tracker.log_files(target, named, artifact_path="report")
    return target
