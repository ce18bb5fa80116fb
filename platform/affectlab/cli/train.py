"""``affectlab train EXPERIMENT.yaml --out URI``: train the experiment's ``base`` configuration."""

from __future__ import annotations

import json

import click

from affectlab.cli.common import (check_split, mlflow_option, num_cpus_option, set_option, split_option,
                                  split_overrides, verbose_option)


@click.command("train")
@click.argument("experiment")
@click.option("--out", required=True, help="Output directory or s3:// URI (history, result.json, best model, Ray run).")
@click.option("--runner", type=click.Choice(["ray_train", "in_process"]), default=None,
              help="Override scaling.runner (ray_train: TorchTrainer workers; in_process: no workers).")
@split_option
@set_option
@mlflow_option
@num_cpus_option
@verbose_option
def command(experiment: str, out: str, runner: str | None, split: str | None, overrides: tuple[str, ...],
            mlflow: bool | None, num_cpus: int | None, verbose: bool) -> None:
    """Train EXPERIMENT's base config (search_spaces/*.yaml) and report the best epoch's metrics.

    Keys of the base section can be overridden with --set, e.g. --set training.lr=1e-3
    --set scaling.num_workers=2. Running again with the same --out resumes from the last
    checkpoint of a ray_train run. With --mlflow (or tracking.mlflow_uri / MLFLOW_TRACKING_URI)
    the training is logged to MLflow: params, per-epoch metrics, config and result.
    """
    from affectlab.runtime import ray_session
    from affectlab.tracking import resolve_tracking, tracking_line
    from affectlab.training.config import load_experiment
    from affectlab.training.run import epoch_progress, train

    sets = [*overrides, *([f"scaling.runner={runner}"] if runner else []), *split_overrides(split)]
    config = load_experiment(experiment, sets).base
    check_split(split, config.data.task)
    tracking = resolve_tracking(config, out, enable=mlflow)
    with ray_session(num_cpus=num_cpus, verbose=verbose):
        result = train(config, out=out, reporter=epoch_progress(lambda line: click.echo(line, err=True))
                       if config.scaling.runner == "in_process" else None,
                       tracking=tracking)
    summary = result.summary()
    click.echo(json.dumps({k: summary[k] for k in ("best_epoch", "epochs", "stop_reason", "val", "test", "baseline")}, indent=2))
    click.echo(f"outputs: {out}")
    if tracking is not None:
        click.echo(f"mlflow: {tracking_line(tracking)}")
