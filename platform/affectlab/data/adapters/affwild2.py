"""The ``affwild2`` adapter: Aff-Wild2 in the ABAW challenge layout.

Layout (directory names are options)::

    <root>/videos/<video>.mp4|.avi                    (any depth below videos/)
    <root>/annotations/AU_Set/<split>/<stem>.txt      e.g. Train_Set/, Validation_Set/
    <root>/annotations/VA_Set/<split>/<stem>.txt
    <root>/annotations/EXPR_Set/<split>/<stem>.txt

Each annotation file has a header line (AU_Set: ``AU1,AU2,AU4,...,AU26``; VA_Set:
``valence,arousal``; EXPR_Set: ``Neutral,Anger,Disgust,Fear,Happiness,Sadness,Surprise,Other``)
and then one line per video frame; ``-1`` (AU, EXPR) and ``-5`` (VA) mark unannotated frames
(:func:`affectlab.data.frame_labels.read_frame_labels` reads them). Videos with two annotated
people have ``<video>_left`` / ``<video>_right`` annotation stems.

One manifest row per annotation stem with a video: ``sample_id`` = stem, ``subject`` = stem
without ``_left``/``_right`` (both people of a video land in the same subject, so a
leave-one-subject-out split never trains on one person and tests on the other from the same
clip), ``labels_path`` = AU file, ``va_labels_path``, ``expr_labels_path``, ``labels_format``
``abaw_au`` and ``labels_rate_hz`` = ``options.fps``. Annotation stems without a video are an
error listing them, unless ``options.allow_missing_video``.
"""

from __future__ import annotations

import logging
import posixpath

import pyarrow as pa
from pydantic import Field

from affectlab import storage
from affectlab.config import StrictModel
from affectlab.data.adapters._layout import RootPath, raise_collected, relative_files
from affectlab.data.cards import Adapter, DatasetCard
from affectlab.data.manifest import manifest_from_rows, resolve_under_root
from affectlab.errors import DatasetError

__all__ = ["ADAPTER", "VIDEO_EXTENSIONS", "AffWild2Options", "build", "video_stem"]

log = logging.getLogger(__name__)

VIDEO_EXTENSIONS = (".mp4", ".avi")
PERSON_SUFFIXES = ("_left", "_right")
# manifest column of each annotation set
SET_COLUMNS = {"au": "labels_path", "va": "va_labels_path", "expr": "expr_labels_path"}


class AffWild2Options(StrictModel):
    """Options of the ``affwild2`` adapter."""

    video_dir: RootPath = "videos"
    annotation_dir: RootPath = "annotations"
    au_set: RootPath = "AU_Set"
    va_set: RootPath = "VA_Set"
    expr_set: RootPath = "EXPR_Set"
    fps: float = Field(default=30.0, gt=0, le=1000, description="frame rate of the annotation lines")
    allow_missing_video: bool = Field(default=False, description="skip annotation stems without a video")
    audio_from_video: bool = Field(default=False, description="also use each video as audio_path")


def video_stem(stem: str) -> str:
    """The video an annotation stem belongs to: ``10-60-1280x720_left`` -> ``10-60-1280x720``."""
    for suffix in PERSON_SUFFIXES:
        if stem.endswith(suffix):
            return stem[: -len(suffix)]
    return stem


def _videos(card: DatasetCard, root: str, video_dir: str) -> dict[str, str]:
    """Video stem -> path relative to the root; the same stem twice is an error."""
    where = f"{card.name}: options.video_dir {video_dir!r}"
    if not storage.is_dir(resolve_under_root(root, video_dir, where=where)):
        raise DatasetError(f"{where}: no directory {storage.join(root, video_dir)}")
    found: dict[str, str] = {}
    problems = []
    for rel in relative_files(root, video_dir.strip("/")):
        stem, ext = posixpath.splitext(posixpath.basename(rel))
        if ext.lower() not in VIDEO_EXTENSIONS:
            continue
        if stem in found:
            problems.append(f"video {stem!r}: {found[stem]} and {rel}")
        found[stem] = rel
    raise_collected(problems, f"{card.name}: ambiguous videos")
    return found


def _annotations(card: DatasetCard, root: str, options: AffWild2Options) -> dict[str, dict[str, str]]:
    """Annotation stem -> {set kind: path relative to the root}."""
    where = f"{card.name}: options.annotation_dir {options.annotation_dir!r}"
    resolve_under_root(root, options.annotation_dir, where=where)
    sets = {"au": options.au_set, "va": options.va_set, "expr": options.expr_set}
    stems: dict[str, dict[str, str]] = {}
    problems = []
    for kind, set_dir in sets.items():
        under = f"{options.annotation_dir.strip('/')}/{set_dir.strip('/')}"
        for rel in relative_files(root, under):
            if not rel.endswith(".txt"):
                continue
            stem = posixpath.splitext(posixpath.basename(rel))[0]
            seen = stems.setdefault(stem, {})
            if kind in seen:
                problems.append(f"{set_dir} stem {stem!r}: {seen[kind]} and {rel}")
            seen[kind] = rel
    raise_collected(problems, f"{card.name}: annotation stems repeated within a set")
    if not stems:
        base = storage.join(root, options.annotation_dir)
        raise DatasetError(f"{where}: no <set>/<split>/<stem>.txt files under {base} (sets: {list(sets.values())})")
    return stems


def _row(
    card: DatasetCard, root: str, options: AffWild2Options, stem: str, video: str, labels: dict[str, str]
) -> dict[str, object]:
    video_path = resolve_under_root(root, video, where=f"{card.name}: video {video}")
    row: dict[str, object] = {
        "sample_id": stem,
        "dataset": card.name,
        "subject": video_stem(stem),
        "video_path": video_path,
        "audio_path": video_path if options.audio_from_video else None,
        "labels_format": "abaw_au",
        "labels_rate_hz": options.fps,
    }
    for kind, column in SET_COLUMNS.items():
        rel = labels.get(kind)
        row[column] = resolve_under_root(root, rel, where=f"{card.name}: annotation {rel}") if rel else None
    return row


def build(card: DatasetCard, options: AffWild2Options, root: str) -> pa.Table:
    """Pair every annotation stem with its video (see the module docstring)."""
    videos = _videos(card, root, options.video_dir)
    annotations = _annotations(card, root, options)
    rows, locations, orphans = [], [], []
    for stem in sorted(annotations):
        video = videos.get(stem) or videos.get(video_stem(stem))
        if video is None:
            orphans.append(f"{stem}: {', '.join(sorted(annotations[stem].values()))}")
            continue
        rows.append(_row(card, root, options, stem, video, annotations[stem]))
        locations.append(f"{root} annotation stem {stem}")
    if orphans and options.allow_missing_video:
        log.warning("%s: skipped %d annotation stem(s) without a video", card.name, len(orphans))
    elif orphans:
        raise_collected(
            orphans,
            f"{card.name}: annotations without a video in {storage.join(root, options.video_dir)} "
            "(set options.allow_missing_video: true to skip them)",
        )
    return manifest_from_rows(rows, source=f"{card.name} ({root})", locations=locations)


ADAPTER = Adapter(
    name="affwild2",
    options_model=AffWild2Options,
    build=build,
    summary="Aff-Wild2 (ABAW layout): videos/ + annotations/{AU,VA,EXPR}_Set/<split>/<stem>.txt",
)
