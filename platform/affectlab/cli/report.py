"""``affectlab report URI``: Markdown + static HTML with tables and PNG plots."""

from __future__ import annotations

import click


@click.command("report")
@click.argument("uri")
@click.option("--out", default=None, help="Where to write the report (default: URI/report).")
def command(uri: str, out: str | None) -> None:
    """Write a report of the run, CV or sweep output in URI (or of a directory holding several,
    like the demo's): best configuration and every trial, the CV tables, learning curves,
    metric against each hyperparameter, parallel coordinates and confusion matrices.
    """
    from affectlab.reporting import write_report

    index = write_report(uri, out=out)
    click.echo(f"report: {index}")
    click.echo(f"        {index[: -len('index.html')]}index.md")
