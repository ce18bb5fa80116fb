"""The ``ravdess`` adapter: RAVDESS files named by their 7-part code, anywhere under the root.

Layout: ``<root>/**/MM-VV-EE-II-SS-RR-AA.(wav|mp4)`` (the official archives put them in
``Actor_AA/`` folders; any depth works). The parts are two-digit codes:

=====  ===============  ==========================================================
part   meaning          values
=====  ===============  ==========================================================
MM     modality         01 full audio-video, 02 video-only, 03 audio-only
VV     vocal channel    01 speech, 02 song
EE     emotion          01 neutral, 02 calm, 03 happy, 04 sad, 05 angry, 06 fearful,
                        07 disgust, 08 surprised
II     intensity        01 normal, 02 strong
SS     statement        01 "Kids are talking by the door", 02 "Dogs are sitting by the door"
RR     repetition       01, 02
AA     actor            01-24 (odd male, even female)
=====  ===============  ==========================================================

Manifest rows: ``sample_id`` = file stem, ``subject`` = ``actor_AA``, ``emotion`` = the name,
``transcript`` = the statement. A ``.wav`` is ``audio_path``; an ``.mp4`` is ``video_path`` and,
for full audio-video (01), also ``audio_path`` (its audio track). Every file name that does
not follow the pattern is reported in one error.
"""

from __future__ import annotations

import posixpath

import pyarrow as pa
from pydantic import Field, field_validator

from affectlab.config import StrictModel
from affectlab.data.adapters._layout import glob_regex, raise_collected, relative_files
from affectlab.data.cards import Adapter, DatasetCard
from affectlab.data.manifest import manifest_from_rows, resolve_under_root
from affectlab.errors import DatasetError

__all__ = ["ADAPTER", "EMOTIONS", "STATEMENTS", "RavdessOptions", "build", "parse_name"]

MODALITIES = {"01": "full-AV", "02": "video-only", "03": "audio-only"}
VOCAL_CHANNELS = {"01": "speech", "02": "song"}
EMOTIONS = {
    "01": "neutral",
    "02": "calm",
    "03": "happy",
    "04": "sad",
    "05": "angry",
    "06": "fearful",
    "07": "disgust",
    "08": "surprised",
}
INTENSITIES = {"01": "normal", "02": "strong"}
STATEMENTS = {"01": "Kids are talking by the door", "02": "Dogs are sitting by the door"}
REPETITIONS = {"01": "1", "02": "2"}
ACTORS = {f"{i:02d}": f"actor_{i:02d}" for i in range(1, 25)}
PARTS = (
    ("modality", MODALITIES),
    ("vocal channel", VOCAL_CHANNELS),
    ("emotion", EMOTIONS),
    ("intensity", INTENSITIES),
    ("statement", STATEMENTS),
    ("repetition", REPETITIONS),
    ("actor", ACTORS),
)
PATTERN = "MM-VV-EE-II-SS-RR-AA.(wav|mp4), e.g. 03-01-05-01-02-01-12.wav"
EXTENSIONS = (".wav", ".mp4")


class RavdessOptions(StrictModel):
    """Options of the ``ravdess`` adapter."""

    glob: list[str] = Field(
        default=["**/*.wav"],
        description="file pattern(s) relative to the root; e.g. ['**/*.wav', '**/*.mp4'] for both",
    )

    @field_validator("glob", mode="before")
    @classmethod
    def _one_or_many(cls, value: object) -> object:
        return [value] if isinstance(value, str) else value


def parse_name(name: str) -> dict[str, str]:
    """Decode a RAVDESS file name into ``{part: value}`` (``modality``, ``emotion``, ``actor``...).

    Raises:
        ValueError: The name does not follow the 7-part pattern; the message says which part.
    """
    stem, ext = posixpath.splitext(posixpath.basename(name))
    if ext.lower() not in EXTENSIONS:
        raise ValueError(f"extension {ext or '(none)'!r} is not one of {list(EXTENSIONS)}")
    codes = stem.split("-")
    if len(codes) != len(PARTS):
        raise ValueError(f"expected {len(PARTS)} dash-separated parts, got {len(codes)}")
    decoded = {}
    for code, (part, values) in zip(codes, PARTS, strict=True):
        if code not in values:
            raise ValueError(f"{part} code {code!r} is not one of {sorted(values)}")
        decoded[part] = values[code]
    return decoded


def _row(card: DatasetCard, root: str, rel: str, parts: dict[str, str]) -> dict[str, object]:
    path = resolve_under_root(root, rel, where=f"{card.name}: file {rel}")
    is_video = rel.lower().endswith(".mp4")
    has_audio = not is_video or parts["modality"] != "video-only"
    return {
        "sample_id": posixpath.splitext(posixpath.basename(rel))[0],
        "dataset": card.name,
        "subject": parts["actor"],
        "audio_path": path if has_audio else None,
        "video_path": path if is_video else None,
        "emotion": parts["emotion"],
        "transcript": parts["statement"],
    }


def build(card: DatasetCard, options: RavdessOptions, root: str) -> pa.Table:
    """List the files matching ``options.glob`` under ``root`` and decode their names."""
    patterns = [glob_regex(g) for g in options.glob]
    matched = [rel for rel in relative_files(root) if any(p.match(rel) for p in patterns)]
    problems, rows, locations = [], [], []
    for rel in matched:
        try:
            parts = parse_name(rel)
        except ValueError as exc:
            problems.append(f"{rel}: {exc}")
            continue
        rows.append(_row(card, root, rel, parts))
        locations.append(f"{root} file {rel}")
    raise_collected(problems, f"{card.name}: file names under {root} not in the RAVDESS pattern {PATTERN}")
    if not rows:
        raise DatasetError(f"{card.name}: no file under {root} matches options.glob {options.glob}")
    return manifest_from_rows(rows, source=f"{card.name} ({root})", locations=locations)


ADAPTER = Adapter(
    name="ravdess",
    options_model=RavdessOptions,
    build=build,
    summary="RAVDESS wav/mp4 files named MM-VV-EE-II-SS-RR-AA",
)
