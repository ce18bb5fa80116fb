"""``affectlab sweep SPACE --out URI [--samples N] [--resume]``: Optuna + ASHA on Ray Tune."""

from __future__ import annotations

import click

from affectlab.cli.common import mlflow_option, num_cpus_option, set_option, verbose_option


@click.command("sweep")
@click.argument("space")
@click.option("--out", required=True, help="Output directory or s3:// URI of the sweep.")
@click.option("--samples", type=click.IntRange(min=1), default=None,
              help="Number of trials in all (default: tune.num_samples; on --resume: as recorded).")
@click.option("--resume", is_flag=True,
              help="Continue the sweep in --out: finished trials are kept, interrupted ones run again.")
@click.option("--report/--no-report", "make_report", default=True, show_default=True,
              help="Write the report (OUT/report/) at the end.")
@set_option
@mlflow_option
@num_cpus_option
@verbose_option
def command(space: str, out: str, samples: int | None, resume: bool, make_report: bool,
            overrides: tuple[str, ...], mlflow: bool | None, num_cpus: int | None, verbose: bool) -> None:
    """Search SPACE (search_spaces/<experiment>.yaml: base, space, tune) with Optuna's TPE,
    stopping poor trials early with ASHA, or run every point of a grid (tune.search: grid,
    Optuna's GridSampler); every trial trains like `affectlab train`.

    Progress is printed as trials start and finish; at the end the best configuration is
    written to OUT/best_config.yaml and a report to OUT/report/. --set overrides keys of the
    base config (e.g. --set data.features=out/demo) or of the sweep (--set tune.seed=3).

    With --mlflow (or tracking.mlflow_uri / MLFLOW_TRACKING_URI) the sweep is logged to MLflow:
    a parent run (base config, best_config.yaml, report) with every trial nested under it,
    logged live by Ray Tune's MLflowLoggerCallback.
    """
    from affectlab.runtime import ray_session
    from affectlab.tracking import resolve_tracking, tracking_line
    from affectlab.tuning import load_sweep, run_sweep

    from affectlab.tuning.state import check_output

    sweep = load_sweep(space, overrides)  # every config problem is reported before Ray starts
    check_output(out, resume=resume)
    tracking = resolve_tracking(sweep.base, out, enable=mlflow)
    with ray_session(num_cpus=num_cpus, verbose=verbose):
        summary = run_sweep(sweep, out=out, samples=samples, resume=resume, echo=click.echo, verbose=verbose,
                            tracking=tracking)
    click.echo(
        f"sweep: {summary.finished}/{summary.requested} trials finished "
        f"({summary.ran_now} run now, {summary.epochs_now} epochs)"
    )
    if make_report:
        from affectlab.reporting import write_report

        index = write_report(out)
        click.echo(f"report: {index}")
        if tracking is not None:
            from affectlab import storage
            from affectlab.tracking import log_report, open_tracker

            log_report(open_tracker(tracking), storage.join(out, "report"))
    if tracking is not None:
        click.echo(f"mlflow: {tracking_line(tracking)}")
