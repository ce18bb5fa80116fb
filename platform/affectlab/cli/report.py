"""``affectlab report URI``: Markdown + static HTML with tables and PNG plots."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from affectlab.tracking import Tracking


@click.command("report")
@click.argument("uri")
@click.option("--out", default=None, help="Where to write the report (default: URI/report).")
@click.option("--mlflow/--no-mlflow", "mlflow", default=None,
              help="Log the report to the newest MLflow run of URI. On by itself when MLFLOW_TRACKING_URI is set "
                   "(that store); --mlflow alone uses the embedded store URI/mlruns/mlflow.db; --no-mlflow: off.")
def command(uri: str, out: str | None, mlflow: bool | None) -> None:
    """Write a report of the run, CV or sweep output in URI (or of a directory holding several,
    like the demo's): best configuration and every trial, the CV tables, learning curves,
    metric against each hyperparameter, parallel coordinates and confusion matrices.

    With MLFLOW_TRACKING_URI set (or --mlflow: the embedded store URI/mlruns) the report is
    also logged, under report/, to the newest MLflow run that `affectlab train`, `cv` or
    `sweep` recorded for URI.
    """
    from affectlab import storage
    from affectlab.reporting import write_report
    from affectlab.tracking import report_tracking

    tracking = report_tracking(uri, enable=mlflow)  # a bad --mlflow fails before the report is written
    index = write_report(uri, out=out)
    click.echo(f"report: {index}")
    click.echo(f"        {index[: -len('index.html')]}index.md")
    if tracking is not None:
        _log_to_mlflow(tracking, out or storage.join(uri, "report"))


def _log_to_mlflow(tracking: Tracking, report_dir: str) -> None:
    """Attach the report directory to the newest run recorded for ``tracking.out``."""
    from affectlab.tracking import embedded_store_exists, log_report, open_tracker, redact

    if not embedded_store_exists(tracking):
        click.echo(f"mlflow: no store at {tracking.uri} (nothing was tracked for this output); report not logged",
                   err=True)
        return
    run_id = log_report(open_tracker(tracking), report_dir)
    if run_id is None:
        click.echo(f"mlflow: no run of {tracking.out} in {redact(tracking.uri)}; report not logged", err=True)
    else:
        click.echo(f"mlflow: report logged to run {run_id} in {redact(tracking.uri)}")
