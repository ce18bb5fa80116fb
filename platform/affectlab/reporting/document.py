"""A small report document model rendered to Markdown and to one static HTML page.

A report is a list of blocks (headings, paragraphs, tables, images). Tables are rendered by
hand (no ``tabulate`` dependency); images are PNG files next to the page, referenced by relative
name, so the report directory can be copied or served as it is.
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = ["Document", "Image", "Strong", "Table", "format_value"]


@dataclass(frozen=True)
class Strong:
    """A table cell shown in bold (Markdown ``**text**``, HTML ``<strong>``), e.g. a column's best score."""

    text: str

    def __str__(self) -> str:
        return self.text


def format_value(value: Any) -> str:
    """Compact text for a table cell: 4 significant digits for floats, '-' for missing."""
    if value is None:
        return "-"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "-"
        return f"{value:.4g}"
    if hasattr(value, "item"):  # numpy scalars
        return format_value(value.item())
    return str(value)


@dataclass
class Table:
    """A table with a header row; cells are formatted with :func:`format_value`."""

    columns: list[str]
    rows: list[list[Any]]
    caption: str = ""

    @classmethod
    def from_frame(cls, frame: Any, caption: str = "", index: bool = False) -> Table:
        """Build from a pandas DataFrame."""
        frame = frame.reset_index() if index else frame
        return cls([str(c) for c in frame.columns], frame.values.tolist(), caption)


@dataclass
class Image:
    """A PNG written next to the page (``name`` is its file name there)."""

    name: str
    caption: str = ""


@dataclass
class Document:
    """An ordered list of blocks with a title."""

    title: str
    blocks: list[tuple[str, Any]] = field(default_factory=list)

    def heading(self, text: str, level: int = 2) -> None:
        self.blocks.append(("heading", (level, text)))

    def text(self, text: str) -> None:
        self.blocks.append(("text", text))

    def bullets(self, items: Sequence[str]) -> None:
        self.blocks.append(("bullets", list(items)))

    def table(self, table: Table) -> None:
        self.blocks.append(("table", table))

    def image(self, image: Image) -> None:
        self.blocks.append(("image", image))

    def markdown_block(self, text: str) -> None:
        """Verbatim Markdown (e.g. tables written by the CV code): headings and pipe tables are
        converted for the HTML page, anything else is shown as paragraphs."""
        self.blocks.append(("markdown", text))

    # -- rendering -------------------------------------------------------------------------
    def to_markdown(self) -> str:
        """The whole report as GitHub-flavoured Markdown."""
        out = [f"# {self.title}", ""]
        for kind, payload in self.blocks:
            if kind == "heading":
                level, text = payload
                out += ["#" * level + " " + text, ""]
            elif kind == "text":
                out += [payload, ""]
            elif kind == "bullets":
                out += [f"- {item}" for item in payload] + [""]
            elif kind == "table":
                out += _markdown_table(payload) + [""]
            elif kind == "image":
                out += [f"![{payload.caption or payload.name}]({payload.name})", ""]
                if payload.caption:
                    out += [f"*{payload.caption}*", ""]
            elif kind == "markdown":
                out += [payload.rstrip(), ""]
        return "\n".join(out)

    def to_html(self) -> str:
        """The whole report as one static HTML page (no scripts, no external resources)."""
        body = [f"<h1>{html.escape(self.title)}</h1>"]
        for kind, payload in self.blocks:
            if kind == "heading":
                level, text = payload
                body.append(f"<h{level}>{html.escape(text)}</h{level}>")
            elif kind == "text":
                body.append(f"<p>{html.escape(payload)}</p>")
            elif kind == "bullets":
                body.append("<ul>" + "".join(f"<li>{html.escape(i)}</li>" for i in payload) + "</ul>")
            elif kind == "table":
                body.append(_html_table(payload))
            elif kind == "image":
                cap = html.escape(payload.caption or payload.name)
                body.append(
                    f'<figure><img src="{html.escape(payload.name)}" alt="{cap}">'
                    f"<figcaption>{cap}</figcaption></figure>"
                )
            elif kind == "markdown":
                body.append(_markdown_to_html(payload))
        return _PAGE.format(title=html.escape(self.title), body="\n".join(body))


def _cell_md(value: Any) -> str:
    text = format_value(value).replace("|", "\\|").replace("\n", " ")
    return f"**{text}**" if isinstance(value, Strong) else text


def _cell_html(value: Any) -> str:
    text = html.escape(format_value(value))
    return f"<strong>{text}</strong>" if isinstance(value, Strong) else text


def _markdown_table(table: Table) -> list[str]:
    lines = []
    if table.caption:
        lines += [f"**{table.caption}**", ""]
    lines.append("| " + " | ".join(_cell_md(c) for c in table.columns) + " |")
    lines.append("|" + "|".join("---" for _ in table.columns) + "|")
    for row in table.rows:
        lines.append("| " + " | ".join(_cell_md(v) for v in row) + " |")
    return lines


def _html_table(table: Table) -> str:
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in table.columns)
    rows = "".join(
        "<tr>" + "".join(f"<td>{_cell_html(v)}</td>" for v in row) + "</tr>" for row in table.rows
    )
    caption = f"<caption>{html.escape(table.caption)}</caption>" if table.caption else ""
    return f"<table>{caption}<thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"


def _split_row(line: str) -> list[str]:
    return [cell.strip() for cell in line.strip().strip("|").split("|")]


def _markdown_to_html(text: str) -> str:
    """Headings, pipe tables and paragraphs of simple Markdown as HTML."""
    out: list[str] = []
    lines = text.splitlines()
    i = 0
    while i < len(lines):
        line = lines[i].strip()
        if line.startswith("#"):
            level = min(len(line) - len(line.lstrip("#")), 6)
            out.append(f"<h{level}>{html.escape(line.lstrip('#').strip())}</h{level}>")
        elif line.startswith("|"):
            rows = []
            while i < len(lines) and lines[i].strip().startswith("|"):
                rows.append(_split_row(lines[i]))
                i += 1
            body = [r for r in rows[1:] if not all(set(c) <= set("-: ") for c in r)]
            out.append(_html_table(Table(rows[0], body)))
            continue
        elif line:
            out.append(f"<p>{html.escape(line)}</p>")
        i += 1
    return "\n".join(out)


_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{title}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em auto; max-width: 72em; padding: 0 1em; color: #222; }}
table {{ border-collapse: collapse; margin: 1em 0; font-size: 0.9em; }}
th, td {{ border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: left; }}
th {{ background: #f3f3f3; }}
caption {{ font-weight: bold; text-align: left; padding: 0.3em 0; }}
figure {{ margin: 1em 0; }} img {{ max-width: 100%; }}
figcaption {{ font-size: 0.9em; color: #555; }}
pre {{ background: #f7f7f7; padding: 0.6em; overflow-x: auto; }}
</style>
</head>
<body>
{body}
</body>
</html>
"""
