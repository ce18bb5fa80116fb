"""``affectlab config check FILE``: validate any affectlab YAML file."""

from __future__ import annotations

import click

from affectlab.cli.common import set_option
from affectlab.config import apply_overrides, load_yaml
from affectlab.errors import ConfigError


def _check_card(path: str, overrides: tuple[str, ...]) -> str:
    from affectlab.data.cards import load_card

    loaded = load_card(path, overrides, check_root=False)
    return f"dataset card (adapter {loaded.adapter.name!r}, root {loaded.root})"


def _check_sweep(path: str, overrides: tuple[str, ...]) -> str:
    from affectlab.tuning import load_sweep

    sweep = load_sweep(path, list(overrides))
    return f"sweep file ({len(sweep.space)} swept key(s))"


def _check_experiment(path: str, overrides: tuple[str, ...]) -> str:
    from affectlab.training.config import load_experiment

    load_experiment(path, overrides)
    return "experiment file (base training config)"


def _check_pipeline(path: str, overrides: tuple[str, ...]) -> str:
    from affectlab.training.vsr_pipeline import load_pipeline, stage_sweep

    pipeline = load_pipeline(path, list(overrides))
    swept = f"; stage-3 sweep over {len(stage_sweep(pipeline, '<visual run>').space)} key(s)" if pipeline.space else ""
    return f"lip reading pipeline (stages {', '.join(pipeline.stage_sources.values())}{swept})"


# kind -> (top-level key that identifies it, checker); checked in this order
CONFIG_KINDS = {
    "card": ("adapter", _check_card),
    "pipeline": ("pipeline", _check_pipeline),
    "sweep": ("space", _check_sweep),
    "experiment": ("base", _check_experiment),
}


def _detect_kind(path: str, overrides: tuple[str, ...]) -> str:
    data = apply_overrides(load_yaml(path), overrides)
    for kind, (marker, _) in CONFIG_KINDS.items():
        if marker in data:
            return kind
    markers = ", ".join(f"'{m}' ({k})" for k, (m, _) in CONFIG_KINDS.items())
    raise ConfigError(f"{path}: cannot tell what kind of config this is; expected one of the keys {markers}")


@click.group("config")
def command() -> None:
    """Validate configuration files."""


@command.command("check")
@click.argument("file")
@click.option("--kind", type=click.Choice(sorted(CONFIG_KINDS)), default=None, help="Kind of file (default: detect).")
@set_option
def check(file: str, kind: str | None, overrides: tuple[str, ...]) -> None:
    """Validate FILE, reporting every unknown key and bad value at once."""
    kind = kind or _detect_kind(file, overrides)
    description = CONFIG_KINDS[kind][1](file, overrides)
    click.echo(f"{file}: ok, {description}")
