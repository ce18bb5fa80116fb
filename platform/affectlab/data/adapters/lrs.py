"""The ``lrs`` adapter: LRS2 / LRS3 lip-reading corpora.

Layout: ``<root>/[<split>/]<id>/<clip>.mp4`` with ``<clip>.txt`` beside each clip, whose first
line reads ``Text:  SOME WORDS`` (the transcript). ``Conf:`` is ignored; the word timings that
LRS3 (and ``affectlab synth visemes``) write after a ``WORD START END ASDSCORE`` header, one
``WORD START END [SCORE]`` line per word in seconds, are kept as ``word_times`` (the word
curriculum of lip reading, ``data.vsr.max_words``). ``<id>`` is the speaker (LRS3: the YouTube
video id; LRS2: the programme id).

``options.splits`` lists sub-directories to read (``trainval``, ``pretrain``, ``test``,
``main``...); when empty, the ids sit directly under the root. Manifest rows: ``sample_id`` =
``[<split>/]<id>/<clip>``, ``subject`` = ``<id>``, ``video_path`` = ``audio_path`` = the mp4
(the audio is its track), ``transcript`` from the ``.txt``. A clip without ``.txt`` gets no
transcript (``datasets check`` shows the coverage); a ``.txt`` without a ``Text:`` line is an
error, reported with all others found.
"""

from __future__ import annotations

import posixpath

import pyarrow as pa
from pydantic import Field

from affectlab import storage
from affectlab.config import StrictModel
from affectlab.data.adapters._layout import RootPath, raise_collected, relative_files
from affectlab.data.cards import Adapter, DatasetCard
from affectlab.data.manifest import manifest_from_rows, resolve_under_root
from affectlab.errors import DatasetError

__all__ = ["ADAPTER", "LrsOptions", "build", "parse_transcript", "parse_word_times"]


class LrsOptions(StrictModel):
    """Options of the ``lrs`` adapter."""

    splits: list[RootPath] = Field(
        default_factory=list,
        description="sub-directories of the root to read, e.g. [trainval, test]; empty: ids under root",
    )


def parse_transcript(text: str) -> str:
    """Return the words of the ``Text:`` line of an LRS ``.txt`` file.

    Raises:
        ValueError: No line starts with ``Text:`` or it is empty.
    """
    for line in text.splitlines():
        if line.startswith("Text:"):
            words = line[len("Text:") :].strip()
            if not words:
                raise ValueError("the 'Text:' line is empty")
            return words
    raise ValueError("no line starting with 'Text:'")


def parse_word_times(text: str) -> list[dict[str, object]] | None:
    """The word timings after the ``WORD START END ...`` header of an LRS ``.txt`` file: one
    ``{"word", "start", "end"}`` per word (seconds), or None when the file has no such header.

    Raises:
        ValueError: A line after the header is not ``WORD START END [SCORE]`` with numbers and
            ``0 <= START <= END`` (names the line), or the words differ from the ``Text:`` line.
    """
    lines = text.splitlines()
    header = next((i for i, line in enumerate(lines) if line.split()[:3] == ["WORD", "START", "END"]), None)
    if header is None:
        return None
    words: list[dict[str, object]] = []
    for number, line in enumerate(lines[header + 1:], start=header + 2):
        fields = line.split()
        if not fields:
            continue
        try:
            start, end = float(fields[1]), float(fields[2])
        except (IndexError, ValueError):
            raise ValueError(f"line {number} {line!r}: expected 'WORD START END [SCORE]' (seconds)") from None
        if not 0 <= start <= end or end == float("inf"):
            raise ValueError(f"line {number} {line!r}: needs 0 <= START <= END, got {start} and {end}")
        words.append({"word": fields[0], "start": start, "end": end})
    spoken = parse_transcript(text).split()
    if [w["word"] for w in words] != spoken:
        raise ValueError(f"the timed words {[w['word'] for w in words]} are not those of the 'Text:' line {spoken}")
    return words


def _clips(card: DatasetCard, root: str, split: str) -> tuple[list[str], set[str]]:
    """Clips (relative ``.mp4`` paths at the layout's depth) and all files under one split."""
    if split:
        where = f"{card.name}: options.splits entry {split!r}"
        if not storage.is_dir(resolve_under_root(root, split, where=where)):
            raise DatasetError(f"{where}: no directory {storage.join(root, split)}")
    files = relative_files(root, split)
    slashes = split.count("/") + 2 if split else 1  # [<split>/]<id>/<clip>.mp4
    clips = [f for f in files if f.endswith(".mp4") and f.count("/") == slashes]
    if not clips:
        deeper = sorted({f.split("/")[0] for f in files if f.endswith(".mp4") and f.count("/") > slashes})
        hint = f"; mp4 files sit deeper: set options.splits, e.g. {deeper}" if deeper and not split else ""
        raise DatasetError(
            f"{card.name}: no <id>/<clip>.mp4 under {storage.join(root, split) if split else root}{hint}"
        )
    return clips, set(files)


def _row(card: DatasetCard, root: str, rel: str, files: set[str], problems: list[str]) -> dict[str, object]:
    stem = rel[: -len(".mp4")]
    path = resolve_under_root(root, rel, where=f"{card.name}: clip {rel}")
    transcript = word_times = None
    if stem + ".txt" in files:
        txt = resolve_under_root(root, stem + ".txt", where=f"{card.name}: transcript {stem}.txt")
        try:
            content = storage.read_text(txt)
            transcript = parse_transcript(content)
            word_times = parse_word_times(content)
        except (ValueError, UnicodeDecodeError) as exc:
            problems.append(f"{txt}: {exc}")
    return {
        "sample_id": stem,
        "dataset": card.name,
        "subject": posixpath.basename(posixpath.dirname(stem)),
        "audio_path": path,
        "video_path": path,
        "transcript": transcript,
        "word_times": word_times,
    }


def build(card: DatasetCard, options: LrsOptions, root: str) -> pa.Table:
    """List ``[<split>/]<id>/<clip>.mp4`` under ``root`` and read each clip's transcript."""
    rows, locations, problems = [], [], []
    for split in options.splits or [""]:
        clips, files = _clips(card, root, split.strip("/"))
        for rel in clips:
            rows.append(_row(card, root, rel, files, problems))
            locations.append(f"{root} clip {rel}")
    raise_collected(problems, f"{card.name}: transcript files that cannot be read ('Text:  WORDS' line, word timings)")
    return manifest_from_rows(rows, source=f"{card.name} ({root})", locations=locations)


ADAPTER = Adapter(
    name="lrs",
    options_model=LrsOptions,
    build=build,
    summary="LRS2/LRS3 [<split>/]<id>/<clip>.mp4 with <clip>.txt transcripts",
)
