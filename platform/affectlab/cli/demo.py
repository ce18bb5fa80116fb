"""``affectlab demo [--out DIR]``: synthesise, preprocess, cross-validate, sweep, report."""

from __future__ import annotations

import click


@click.command("demo")
@click.option("--out", default="demo-out", show_default=True, help="Output directory (local).")
@click.option("--subjects", type=click.IntRange(min=3), default=5, show_default=True, help="Speakers (= LOSO folds).")
@click.option("--items", type=click.IntRange(min=2), default=8, show_default=True, help="Recordings per speaker.")
@click.option("--samples", type=click.IntRange(min=2), default=8, show_default=True, help="Sweep trials.")
@click.option("--num-cpus", type=click.IntRange(min=1), default=None,
              help="CPUs for the embedded local Ray (default: all).")
def command(out: str, subjects: int, items: int, samples: int, num_cpus: int | None) -> None:
    """Run the platform end to end on a small synthetic corpus, on an embedded local Ray:
    synthesise speech with planted AUs, preprocess it with Ray Data, leave-one-speaker-out
    cross-validation as Ray Tune trials, a small Optuna + ASHA sweep with Ray Tune, and a report.
    """
    from affectlab.demo import DemoSettings, run_demo

    settings = DemoSettings(subjects=subjects, items=items, sweep_samples=samples, num_cpus=num_cpus)
    result = run_demo(out, settings, echo=click.echo)
    click.echo("")
    for step, seconds in result.seconds.items():
        click.echo(f"  {seconds:7.1f} s  {step}")
    click.echo(f"\nOpen the report: {result.report}")
