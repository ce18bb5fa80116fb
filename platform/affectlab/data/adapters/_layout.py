"""Helpers shared by the directory-layout adapters (private)."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator

from affectlab import storage
from affectlab.errors import DatasetError

SHOWN_PROBLEMS = 20
_ABSOLUTE = re.compile(r"^(?:[/\\~]|[A-Za-z]:|[A-Za-z][A-Za-z0-9+.-]*://)")


def inside_root(value: str) -> str:
    """Validator of adapter options that name a file or directory under the dataset root: the path
    must be relative and stay inside the root (no ``..`` part, not absolute, no URI, no NUL).

    The card's ``root`` may point anywhere (it says where the corpus is); what the card names
    inside the corpus may not leave it, so a card cannot make an adapter read e.g. /etc/passwd.
    """
    text = value.strip()
    if not text:
        raise ValueError("must not be empty")
    if "\x00" in text:
        raise ValueError(f"{value!r} holds a NUL byte")
    if _ABSOLUTE.match(text):
        raise ValueError(f"{value!r} is absolute; give a path relative to the dataset root")
    if ".." in re.split(r"[/\\]", text):
        raise ValueError(f"{value!r} leaves the dataset root ('..'); give a path inside it")
    return value


RootPath = Annotated[str, AfterValidator(inside_root)]
"""A ``str`` option naming a path under the dataset root (see :func:`inside_root`)."""


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
