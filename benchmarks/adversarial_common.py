"""Shared parts of the adversarial benchmark (``benchmarks/adversarial.py``): running an
``affectlab`` verb in this process exactly as the console script does, one result row per case,
and the Markdown table.

A verb runs through :func:`affectlab.cli.main` (the console-script entry point: affectlab errors
become a message and exit code 2, anything else escapes as a crash), with its stdout and stderr
captured; no process start-up per case, so a hundred cases cost seconds.
"""

from __future__ import annotations

import contextlib
import io
import traceback
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["CaseResult", "CliRun", "markdown_table", "run_cli", "short"]


@dataclass(frozen=True)
class CliRun:
    """What one in-process ``affectlab ...`` call did."""

    args: tuple[str, ...]
    code: int
    out: str
    err: str
    crash: str | None = None  # the traceback when an exception other than SystemExit escaped

    @property
    def text(self) -> str:
        """stdout and stderr together (where the messages are)."""
        return f"{self.out}\n{self.err}"


def run_cli(args: Sequence[str]) -> CliRun:
    """Run ``affectlab ARGS`` in this process through the console-script entry point."""
    from affectlab.cli import main

    out, err = io.StringIO(), io.StringIO()
    code, crash = 0, None
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main(list(args))
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        except BaseException:  # noqa: BLE001 - a crash is what this benchmark looks for
            code, crash = -1, traceback.format_exc()
    return CliRun(tuple(args), code, out.getvalue(), err.getvalue(), crash)


@dataclass(frozen=True)
class CaseResult:
    """One row of the table.

    Attributes:
        group: ``media`` or ``config``.
        case: Short id of the case.
        tried: What was tried, in words.
        outcome: ``rejected`` / ``quarantined`` / ``converted`` / ``accepted`` when handled, else
            what went wrong (``CRASH``, ``SILENTLY ACCEPTED``, ``LOST``, ...).
        message: The message the user saw (shortened).
        kept: Good items kept, e.g. ``"8/8"``, or what was verified instead.
        ok: The case was handled as expected.
        problem: Why not, when ``ok`` is False.
    """

    group: str
    case: str
    tried: str
    outcome: str
    message: str
    kept: str
    ok: bool
    problem: str = ""


def short(text: str, limit: int = 150) -> str:
    """One line of at most ``limit`` characters (newlines folded), for a table cell."""
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def markdown_table(results: Sequence[CaseResult]) -> str:
    """``case | what was tried | outcome | message (shortened) | good items kept`` as Markdown."""
    lines = ["| case | what was tried | outcome | message (shortened) | good items kept |",
             "|---|---|---|---|---|"]
    for r in results:
        outcome = r.outcome if r.ok else f"**{r.outcome}** ({r.problem})"
        lines.append("| " + " | ".join(_cell(c) for c in (r.case, r.tried, outcome, short(r.message), r.kept)) + " |")
    return "\n".join(lines)
