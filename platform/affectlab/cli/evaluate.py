"""``affectlab evaluate RUN --checkpoints all --split test``: score a GAN run's saved checkpoints, or decode
the test speakers of a lip reading run (``data.task: vsr``) greedy, beam and beam + LM."""

from __future__ import annotations

import json

import click

from affectlab.cli.common import num_cpus_option, verbose_option


@click.command("evaluate")
@click.argument("run")
@click.option("--checkpoints", default="all", show_default=True,
              help="Which checkpoints: all, best (the run's best iteration), last, or iterations like 1000,5000.")
@click.option("--split", type=click.Choice(["test", "train"]), default="test", show_default=True,
              help="test: the held-out identities (the seed's testing set); train: the training identities.")
@click.option("--batch-size", type=click.IntRange(min=1), default=256, show_default=True,
              help="Images per forward pass.")
@click.option("--decode", "decode", multiple=True, metavar="KEY=VALUE",
              help="Lip reading: override one data.vsr.decoding setting of the run for this evaluation "
                   "(repeatable), e.g. --decode ctc_weight=0.3 --decode beam_width=12.")
@click.option("--lm", "lm", default=None, metavar="RUN",
              help="Lip reading: score and decode with this stage-1 LM run instead of the run's own (same sizes).")
@num_cpus_option
@verbose_option
def command(run: str, checkpoints: str, split: str, batch_size: int, decode: tuple[str, ...], lm: str | None,
            num_cpus: int | None, verbose: bool) -> None:
    """Evaluate every saved checkpoint of a GAN run (data.task gan_au / gan_va / gan_au_va) in parallel Ray tasks,
    or decode a lip reading run's test speakers (data.task vsr: greedy, beam, beam + LM; --split test or train).

    Writes RUN/evaluation/SPLIT.parquet (one row per checkpoint: per-AU F1 / precision / recall /
    accuracy, mean F1, mean accuracy, their mean, % real, CCC and MSE of valence and arousal) and
    SPLIT_best.json (each metric's best value and the iteration reaching it, as in seed 002's
    tables); `affectlab report RUN` shows them.
    """
    from affectlab.runtime import ray_session
    from affectlab.training.gan_evaluate import best_over_checkpoints, evaluate_checkpoints
    from affectlab.training.vsr_evaluate import evaluate_vsr, is_vsr_run, load_vsr_evaluation

    if is_vsr_run(run):  # lip reading: one pass over the test speakers, no checkpoints to choose
        evaluate_vsr(run, part=split, decoding=_key_values(decode), lm=lm,
                     progress=lambda line: click.echo(line, err=True))
        click.echo(json.dumps(load_vsr_evaluation(run, split)[1]["methods"], indent=2))
        click.echo(f"outputs: {run}/evaluation/{split}.parquet, {run}/evaluation/{split}_summary.json")
        return
    with ray_session(num_cpus=num_cpus, verbose=verbose):
        frame = evaluate_checkpoints(run, checkpoints=checkpoints, split=split, batch_size=batch_size,
                                     progress=lambda line: click.echo(line, err=True))
    keys = [k for k in ("au_mean_f1", "au_mean_accuracy", "au_score", "real_pct", "ccc_valence", "ccc_arousal",
                        "mse_valence", "mse_arousal") if k in frame]
    click.echo(json.dumps({"checkpoints": len(frame), "split": split, "best": best_over_checkpoints(frame, keys)},
                          indent=2))
    click.echo(f"outputs: {run}/evaluation/{split}.parquet")


def _key_values(items: tuple[str, ...]) -> dict[str, object]:
    """``KEY=VALUE`` options as a mapping, each value read as ``--set`` reads it (the project's YAML loader)."""
    from affectlab.config import parse_override
    from affectlab.errors import ConfigError

    out: dict[str, object] = {}
    for item in items:
        try:
            path, value = parse_override(item)
        except ConfigError:
            raise click.BadParameter(f"{item!r}: expected KEY=VALUE, e.g. ctc_weight=0.3", param_hint="--decode") \
                from None
        out[".".join(path)] = value
    return out
