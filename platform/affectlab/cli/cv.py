"""``affectlab cv EXPERIMENT.yaml --folds loso --out URI``: leave-one-subject-out grids."""

from __future__ import annotations

import click

from affectlab.cli.common import (check_split, mlflow_option, num_cpus_option, set_option, split_option,
                                  split_overrides, verbose_option)


def _csv(value: str | None) -> list[str] | None:
    return [v.strip() for v in value.split(",") if v.strip()] if value else None


@click.command("cv")
@click.argument("experiment")
@click.option("--out", required=True, help="Output directory or s3:// URI; results under OUT/cv/.")
@click.option("--folds", type=click.Choice(["loso"]), default="loso", show_default=True, help="Fold scheme.")
@click.option("--aus", default=None, help="Comma-separated AUs (default: the base target), e.g. AU01,AU12.")
@click.option("--kinds", default=None, help="Comma-separated classes: onset,apex,offset,occurrence.")
@click.option("--archs", default=None, help="Comma-separated model names, e.g. stacked,enc_interatt_dec.")
@click.option("--feature-sets", default=None, help="Comma-separated feature sets, e.g. egemaps,compare.")
@click.option("--max-concurrent", type=click.IntRange(min=1), default=None, help="Trainings at once (default: CPUs).")
@split_option
@set_option
@mlflow_option
@num_cpus_option
@verbose_option
def command(experiment: str, out: str, folds: str, aus: str | None, kinds: str | None, archs: str | None,
            feature_sets: str | None, max_concurrent: int | None, split: str | None, overrides: tuple[str, ...],
            mlflow: bool | None, num_cpus: int | None, verbose: bool) -> None:
    """One training per held-out subject x target x architecture x feature set, run as
    parallel Ray Tune trials (one CPU each); writes Table I / Table II style summaries.

    With --mlflow (or tracking.mlflow_uri / MLFLOW_TRACKING_URI) the grid is logged to MLflow:
    one parent run with the tables and one nested run per training.

    With data.task: emotion the grid is leave one actor out: one training per actor, the next
    actors (as many as the base split's validation actors) validating; writes OUT/cv/loso.md
    (per fold, mean, sd and the pooled test predictions). --split NAME picks the card split
    whose validation size is used."""
    from affectlab.runtime import ray_session
    from affectlab.tracking import resolve_tracking, tracking_line
    from affectlab.training.config import load_experiment
    from affectlab.training.cv import run_cv

    config = load_experiment(experiment, [*overrides, *split_overrides(split)]).base
    check_split(split, config.data.task)
    tracking = resolve_tracking(config, out, enable=mlflow)
    with ray_session(num_cpus=num_cpus, verbose=verbose):
        result = run_cv(config, out=out, folds=folds, aus=_csv(aus), kinds=_csv(kinds), archs=_csv(archs),
                        feature_sets=_csv(feature_sets), max_concurrent=max_concurrent, tracking=tracking)
    from affectlab import storage

    for name in ("table1.md", "table2.md", "loso.md"):
        if storage.exists(storage.join(result.out, name)):
            click.echo(storage.read_text(storage.join(result.out, name)))
    t = result.timing
    click.echo(f"{t['trainings']} trainings in {t['grid_wall_s']:.1f} s wall; sum of trainings "
               f"{t['sum_training_s']:.1f} s over {t['cpus']} CPUs (ratio {t['ratio']:.2f})")
    click.echo(f"outputs: {result.out}")
    if tracking is not None:
        click.echo(f"mlflow: {tracking_line(tracking)}")
