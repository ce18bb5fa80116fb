"""``affectlab demo [--out DIR]``: synthesise, preprocess, cross-validate, sweep, report."""

from __future__ import annotations

import click


@click.command("demo")
@click.argument("which", type=click.Choice(["au", "emotion", "vae", "gan", "lipreading"]), default="au", required=False)
@click.option("--out", default=None, help="Output directory (local; default demo-out or demo-WHICH).")
@click.option("--subjects", type=click.IntRange(min=3), default=5, show_default=True, help="Speakers (= LOSO folds).")
@click.option("--items", type=click.IntRange(min=2), default=8, show_default=True, help="Recordings per speaker.")
@click.option("--samples", type=click.IntRange(min=2), default=8, show_default=True, help="Sweep trials.")
@click.option("--num-cpus", type=click.IntRange(min=1), default=None,
              help="CPUs for the embedded local Ray (default: all).")
def command(which: str, out: str | None, subjects: int, items: int, samples: int, num_cpus: int | None) -> None:
    """Run the platform end to end on a small synthetic corpus, on an embedded local Ray.

    WHICH is `au` (default): synthesise speech with planted AUs, preprocess it with Ray Data,
    leave-one-speaker-out cross-validation as Ray Tune trials, a small Optuna + ASHA sweep and a
    report. `emotion`: RAVDESS-named audio-visual files, landmarks + face crops + eGeMAPS
    functionals, seed 001's face CNN on Ray Train, a speech classifier, their late fusion and a
    report with the seed's tables (--subjects / --items set actors and files per actor).
    `vae`: seed 004's VAE over LMA body-motion features with XGBoost PAD regressors, a
    latent-size sweep 1..8 (Ray Tune grid) and a shuffled control (--subjects / --items: subjects
    and clips per subject). `gan`: seed 002's categorical GAN on rendered faces with planted AUs:
    28 px RGB face crops, the update-rate grid (Ray Tune), a supervised-only reference, every
    checkpoint scored in Ray tasks and the seed's best-iteration tables (--subjects / --items:
    identities and videos per identity). `lipreading`: seed 001's lip reader on sentences spoken as
    mouth shapes: mouth ROIs, the char LM, visual pretraining and integration on Ray Train
    (search_spaces/vsr.yaml as one pipeline), greedy / beam / beam + LM decoding of held-out speakers
    and the seed's WER table (--subjects / --items: speakers and clips per speaker).
    """
    if which == "emotion":
        from affectlab.emotion_demo import EmotionDemoSettings, run_emotion_demo

        sizes = _given(subjects=subjects, items=items)
        if "subjects" in sizes:
            sizes["actors"] = sizes.pop("subjects")
        result = run_emotion_demo(out or "demo-emotion", EmotionDemoSettings(num_cpus=num_cpus, **sizes),
                                  echo=click.echo)
    elif which == "vae":
        from affectlab.vae_demo import VaeDemoSettings, run_vae_demo

        sizes = _given(subjects=subjects, items=items)
        result = run_vae_demo(out or "demo-vae", VaeDemoSettings(num_cpus=num_cpus, **sizes), echo=click.echo)
    elif which == "gan":
        from affectlab.gan_demo import GanDemoSettings, run_gan_demo

        sizes = _given(subjects=subjects, items=items)
        result = run_gan_demo(out or "demo-gan", GanDemoSettings(num_cpus=num_cpus, **sizes), echo=click.echo)
    elif which == "lipreading":
        from affectlab.vsr_demo import VsrDemoSettings, run_vsr_demo

        sizes = _given(subjects=subjects, items=items)
        result = run_vsr_demo(out or "demo-lipreading", VsrDemoSettings(num_cpus=num_cpus, **sizes), echo=click.echo)
    else:
        from affectlab.demo import DemoSettings, run_demo

        settings = DemoSettings(subjects=subjects, items=items, sweep_samples=samples, num_cpus=num_cpus)
        result = run_demo(out or "demo-out", settings, echo=click.echo)
    click.echo("")
    for step, seconds in result.seconds.items():
        click.echo(f"  {seconds:7.1f} s  {step}")
    click.echo(f"\nOpen the report: {result.report}")


def _given(**values: int) -> dict[str, int]:
    """The options among ``values`` that the user gave on the command line (the others keep each
    demo's own defaults)."""
    ctx = click.get_current_context()
    return {name: value for name, value in values.items()
            if ctx.get_parameter_source(name) == click.core.ParameterSource.COMMANDLINE}
