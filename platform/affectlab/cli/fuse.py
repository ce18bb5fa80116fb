"""``affectlab fuse FACE_RUN SPEECH_RUN --out URI``: late fusion of two emotion runs."""

from __future__ import annotations

import json

import click


@click.command("fuse")
@click.argument("face_run")
@click.argument("speech_run")
@click.option("--out", required=True, help="Output directory or s3:// URI of the fusion run.")
@click.option("--part", type=click.Choice(["test", "val"]), default="test", show_default=True,
              help="Which stored predictions to fuse.")
@click.option("--weighting", type=click.Choice(["mean", "max"]), default="mean", show_default=True,
              help="How the face run's frames make a video: mean probabilities, or weighted by max probability.")
def command(face_run: str, speech_run: str, out: str, part: str, weighting: str) -> None:
    """Average a face emotion run's and a speech emotion run's class probabilities per recording.

    Both runs are `affectlab train` outputs of data.task: emotion with the same classes;
    recordings are matched by sample id (RAVDESS ids also across modality codes, so
    01-... video and 03-... audio files of one recording pair up). Writes predictions for face,
    speech and fusion side by side; `affectlab report OUT` shows the comparison table.
    """
    from affectlab.training.emotion_run import fuse

    summary = fuse(face_run, speech_run, out, part=part, weighting=weighting)
    click.echo(json.dumps({k: summary[k] for k in ("recordings", part)}, indent=2))
    click.echo(f"outputs: {out}")
