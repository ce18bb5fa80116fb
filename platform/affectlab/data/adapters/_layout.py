"""Helpers shared by the directory-layout adapters (private)."""

from __future__ import annotations

import re

from affectlab import storage
from affectlab.errors import DatasetError

SHOWN_PROBLEMS = 20


def relative_files(root: str, under: str = "") -> list[str]:
    """Every (non-hidden) file below ``root/under`` as a ``/``-separated path relative to ``root``."""
    base = storage.join(root, *under.split("/")) if under else root
    prefix = len(base.rstrip("/\\")) + 1
    rel_base = under.strip("/") + "/" if under else ""
    return [rel_base + path[prefix:].replace("\\", "/") for path in storage.list_files(base)]


def raise_collected(problems: list[str], header: str) -> None:
    """Raise one DatasetError listing ``problems`` (the first few), if there are any."""
    if not problems:
        return
    shown = "\n".join(f"  - {p}" for p in problems[:SHOWN_PROBLEMS])
    more = f"\n  ... and {len(problems) - SHOWN_PROBLEMS} more" if len(problems) > SHOWN_PROBLEMS else ""
    raise DatasetError(f"{header} ({len(problems)} problem(s)):\n{shown}{more}")


def glob_regex(pattern: str) -> re.Pattern[str]:
    """Compile a path glob: ``**/`` spans zero or more directories, ``*``/``?`` stay in one part."""
    out, i = [], 0
    while i < len(pattern):
        if pattern.startswith("**/", i):
            out.append("(?:[^/]+/)*")
            i += 3
        elif pattern.startswith("**", i):
            out.append(".*")
            i += 2
        elif pattern[i] == "*":
            out.append("[^/]*")
            i += 1
        elif pattern[i] == "?":
            out.append("[^/]")
            i += 1
        else:
            out.append(re.escape(pattern[i]))
            i += 1
    return re.compile("".join(out) + r"\Z")
