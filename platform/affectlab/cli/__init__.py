"""The ``affectlab`` command line.

Each verb lives in its own module under :mod:`affectlab.cli` and exposes a click command named
``command``; :data:`VERBS` lists them explicitly (no import-time discovery). Errors derived from
:class:`~affectlab.errors.AffectlabError` print as one clear message with exit code 2.
"""

from __future__ import annotations

import importlib
import sys

import click

from affectlab import __version__
from affectlab.errors import AffectlabError

# verb name -> module under affectlab.cli that defines `command`
VERBS: dict[str, str] = {
    "info": "info",
    "config": "config_cmd",
    "datasets": "datasets_cmd",
    "synth": "synth",
    "preprocess": "preprocess",
    "train": "train",
    "evaluate": "evaluate",
    "fuse": "fuse",
    "cv": "cv",
    "sweep": "sweep",
    "pipeline": "pipeline",
    "report": "report",
    "demo": "demo",
}


class _LazyGroup(click.Group):
    """Imports a verb's module only when that verb runs (keeps ``--help`` fast)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(VERBS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        module = VERBS.get(name)
        if module is None:
            return None
        return importlib.import_module(f"affectlab.cli.{module}").command


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="affectlab")
def cli() -> None:
    """affectlab: preprocess, train and sweep affective-computing models on Ray.

    Runs on an embedded local Ray by default; set RAY_ADDRESS to use a cluster.
    """


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point: run the CLI, turning affectlab errors into exit code 2."""
    try:
        cli.main(args=argv, prog_name="affectlab", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except AffectlabError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
