"""``affectlab datasets check CARD``: validate a dataset card and its manifest."""

from __future__ import annotations

import sys

import click

from affectlab.cli.common import set_option
from affectlab.data.cards import build_manifest, load_card
from affectlab.data.check import check_manifest, split_problems


@click.group("datasets")
def command() -> None:
    """Work with dataset cards (datasets/<name>.yaml)."""


@command.command("check")
@click.argument("card")
@set_option
@click.option(
    "--show-missing", type=click.IntRange(min=0), default=20, show_default=True, help="How many missing files to list."
)
def check(card: str, overrides: tuple[str, ...], show_missing: int) -> None:
    """Validate CARD, build its manifest and report recordings, subjects, missing files, labels.

    Exits 0 when the card is valid and every referenced file exists, 1 when files are missing or
    the manifest lists no recording at all, 2 when the card or manifest is invalid (including a
    named split whose subjects have no recording).
    """
    loaded = load_card(card, overrides)
    manifest = build_manifest(loaded)
    report = check_manifest(manifest)
    click.echo(f"card {card}: adapter {loaded.adapter.name!r}, root {loaded.root}")
    click.echo(f"  recordings: {report.n_recordings}   subjects: {report.n_subjects}")
    for column, count in report.media_counts.items():
        click.echo(f"  {column:<17} {count} referenced")
    for column, count in report.label_coverage.items():
        click.echo(f"  label {column:<11} {count}/{report.n_recordings} recordings")
    if not report.n_recordings:
        click.echo(f"  EMPTY: the manifest of {card} lists no recording (adapter {loaded.adapter.name!r}, root "
                   f"{loaded.root})", err=True)
        sys.exit(1)
    splits = loaded.card.splits
    for name, split in splits.items():
        click.echo(f"  split {name:<12} {len(split.train)} train / {len(split.val)} val / {len(split.test)} test subjects")
    bad_splits = split_problems(splits, manifest)
    for problem in bad_splits:
        click.echo(f"  SPLIT: {problem}", err=True)
    if bad_splits:
        sys.exit(2)
    if report.missing:
        click.echo(f"  MISSING: {len(report.missing)} referenced file(s) do not exist:", err=True)
        for sample_id, column, path in report.missing[:show_missing]:
            click.echo(f"    sample_id {sample_id!r}, {column}: {path}", err=True)
        sys.exit(1)
    click.echo("  ok")
