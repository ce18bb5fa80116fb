"""``affectlab pipeline search_spaces/vsr.yaml --out DIR``: lip reading's three stages, decoding and report as one job."""

from __future__ import annotations

import json

import click

from affectlab.cli.common import num_cpus_option, verbose_option


@click.command("pipeline")
@click.argument("pipeline_file")
@click.option("--out", required=True, help="Output directory or s3:// URI: one run per stage, the report.")
@click.option("--set", "overrides", multiple=True, metavar="[STAGE:]KEY.SUB=VALUE",
              help="Override a stage's config (STAGE: lm, visual or lipreader) or every stage's (no prefix); "
                   "repeatable, e.g. --set lm:training.max_epochs=10 --set training.batch_size=4.")
@click.option("--features", default=None, help="data.features of every stage (default: the file's pipeline.features).")
@click.option("--sweep", is_flag=True,
              help="Stage 3 as an Optuna + ASHA sweep over the file's `space`; its best trial is decoded.")
@click.option("--no-report", is_flag=True, help="Skip the report.")
@num_cpus_option
@verbose_option
def command(pipeline_file: str, out: str, overrides: tuple[str, ...], features: str | None, sweep: bool,
            no_report: bool, num_cpus: int | None, verbose: bool) -> None:
    """Run seed 001's piece-wise lip reading as one job: char LM -> visual pretraining -> integration
    (each stage naming the previous stage's run), then greedy / beam / beam + LM decoding of the
    held-out speakers and the report (comparison table, 12 transcripts, per-stage loss curves).

    Stages already finished in --out are kept, so a failed or stopped job can be run again and goes
    on where it stopped. Submit it to a cluster as `ray job submit -- affectlab pipeline ...`.
    """
    from affectlab.runtime import ray_session
    from affectlab.training.vsr_pipeline import load_pipeline, run_vsr_pipeline

    sets = [*overrides, *([f"data.features={features}"] if features else [])]
    pipeline = load_pipeline(pipeline_file, sets)  # every stage validated before Ray starts
    with ray_session(num_cpus=num_cpus, verbose=verbose):
        result = run_vsr_pipeline(pipeline, out, sweep=sweep, report=not no_report, echo=click.echo)
    click.echo(json.dumps({"runs": result.runs, "ran_now": result.ran, "evaluated": result.evaluated,
                           "report": result.report}, indent=2))
