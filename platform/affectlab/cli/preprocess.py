"""``affectlab preprocess CARD --out URI``: audio features, aligned labels, stats and video crops as Parquet."""

from __future__ import annotations

import sys

import click

from affectlab.cli.common import num_cpus_option, set_option, verbose_option
from affectlab.features.sound import MAX_SECONDS


@click.command("preprocess")
@click.argument("card")
@click.option("--out", required=True, metavar="URI", help="Output root: a local directory or s3://bucket/prefix.")
@click.option("--audio", default=None, metavar="SETS",
              help="Comma-separated: egemaps, compare, functionals (adds the functionals of each LLD set). "
                   "Default: egemaps, or none when --video is given.")
@click.option("--video", default="", metavar="SETS",
              help="Comma-separated video sets: landmarks, mouth (96x96 mouth ROI), face (aligned face crops).")
@click.option("--landmarks", "landmarks", type=click.Choice(["dlib", "face_alignment"]), default="dlib", show_default=True,
              help="Landmark back end (face_alignment needs its weights in --model-dir or the torch hub cache).")
@click.option("--fps", type=click.FloatRange(min=0, min_open=True), default=None, help="Resample video to this frame rate (default: native).")
@click.option("--face-size", "face_sizes", default="112", show_default=True, metavar="N[,N]",
              help="Face crop side(s) in pixels, e.g. 112 (emotion CNN) or 112,64,28.")
@click.option("--grayscale/--color", default=True, show_default=True, help="Gray or RGB mouth / face crops.")
@click.option("--model-dir", default=None, metavar="URI", help="Directory (local or s3://) with landmark model weights.")
@click.option("--mean-face", default=None, metavar="URI", help="68x2 mean face (.npy/.json) for alignment (default: from the data).")
@click.option("--deltas", is_flag=True, help="ComParE with first-order deltas (130 dims).")
@click.option("--au-step", type=float, default=0.1, show_default=True, help="AU intensity quantization step (divides 5).")
@click.option("--f0-step", type=float, default=10.0, show_default=True, help="F0 quantization step in Hz (divides 500).")
@click.option("--no-labels", is_flag=True, help="Skip the AU label stage.")
@click.option("--max-duration", "max_duration", type=click.FloatRange(min=0, min_open=True), default=MAX_SECONDS,
              show_default=True, metavar="SECONDS",
              help="Audio longer than this is recorded in OUT/errors/ instead of being decoded (checked from the "
                   "file's header): a worker holds a whole recording, about 0.7 GB per hour.")
@click.option("--strict", is_flag=True, help="Exit with status 1 if any recording failed.")
@click.option("--batch-size", type=click.IntRange(min=1), default=None, help="Recordings per Ray Data block (default: automatic).")
@click.option("--num-workers", type=click.IntRange(min=1), default=None, help="Extractor workers per stage (default: one per CPU).")
@click.option("--strategy", type=click.Choice(["tasks", "actors"]), default="tasks", show_default=True,
              help="Ray Data compute: tasks (extractor cached per worker) or an actor pool per stage.")
@click.option("--no-progress", is_flag=True, help="Hide Ray Data progress bars.")
@num_cpus_option
@set_option
@verbose_option
def command(card: str, out: str, audio: str | None, video: str, landmarks: str, fps: float | None, face_sizes: str,
            grayscale: bool, model_dir: str | None, mean_face: str | None, deltas: bool, au_step: float, f0_step: float, no_labels: bool,
            max_duration: float, strict: bool, batch_size: int | None, num_workers: int | None, strategy: str, no_progress: bool,
            num_cpus: int | None, overrides: tuple[str, ...], verbose: bool) -> None:
    """Extract openSMILE features (and aligned, quantized AU labels) and video landmarks / crops for CARD into --out.

    Re-running with the same options skips recordings already written; changed options write a
    new version next to the old one. Failed recordings are listed in OUT/errors/ and the run
    goes on; with --strict the exit status is 1 when anything failed.
    """
    from affectlab.errors import ConfigError
    from affectlab.preprocess import preprocess

    try:
        sizes = [int(s) for s in face_sizes.split(",") if s.strip()]
    except ValueError as exc:
        raise ConfigError(f"--face-size: expected integers like 112 or 112,64, got {face_sizes!r}") from exc
    if audio is None:
        audio = "" if video.strip() else "egemaps"
    result = preprocess(card, out, audio=audio, video=video, landmarks=landmarks, fps=fps, face_sizes=sizes,
                        grayscale=grayscale, model_dir=model_dir, mean_face=mean_face, deltas=deltas, labels=not no_labels, au_step=au_step,
                        f0_step=f0_step, batch_size=batch_size, num_workers=num_workers, num_cpus=num_cpus,
                        overrides=overrides, progress=not no_progress, verbose=verbose, echo=click.echo,
                        strategy=strategy, max_duration_s=max_duration)
    for stage in result.stages:
        for err in stage.errors[:10]:
            click.echo(f"  FAILED {stage.feature_set} {err['sample_id']}: {err['error']}: {err['message']}", err=True)
        if len(stage.errors) > 10:
            click.echo(f"  ... {len(stage.errors) - 10} more in {out}/errors/", err=True)
    click.echo(result.summary_line())
    click.echo(f"provenance: {result.provenance_uri}")
    if strict and result.n_failed:
        click.echo(f"--strict: {result.n_failed} item(s) failed", err=True)
        sys.exit(1)
