"""Synthetic corpora with known, planted relations between media and labels.

No real corpus can be downloaded everywhere; a corpus whose ground truth we control lets every
stage be verified. :func:`generate` writes media, labels and a dataset card
(``<out>/dataset.yaml``) in the layout of a real adapter; the card's ``planted:`` mapping says
what was planted. ``relation="shuffled"`` writes the control corpus: the same media with the
labels of other recordings, so nothing is learnable.

==============  =======  ===============================================================
kind            adapter  what
==============  =======  ===============================================================
speech-au       csv      speech; 8 AU intensities at 25 Hz driven by its prosody
faces           csv      rendered face videos; AUs, emotion, valence/arousal
talking-face    lrs      a real face (astronaut) lip-syncing speech; transcripts
ravdess         ravdess  RAVDESS-named emotional speech (+ face videos with ``video``),
                         emotion in the prosody (and the face's AUs)
lma             lma      27 body-motion features from PAD by a nonlinear map
visemes         lrs      sentences as viseme mouth shapes on the real face; transcripts
==============  =======  ===============================================================

Equal arguments give byte-identical files (with the same numpy/PyAV builds); every recording
draws from its own random stream (seed, kind, subject, item), so a larger corpus extends a
smaller one.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from affectlab import storage
from affectlab.config import StrictModel, validate
from affectlab.data.synth import faces, lma, ravdess, speech_au, talking_face, visemes
from affectlab.data.synth.base import SynthRequest, write_card
from affectlab.errors import ConfigError, unknown_name_error

__all__ = ["KINDS", "RELATIONS", "SynthKind", "generate"]

RELATIONS = ("planted", "shuffled")
MAX_SUBJECTS = 1000
MAX_ITEMS = 10000


@dataclass(frozen=True)
class SynthKind:
    """A corpus generator: its adapter, options model and writer."""

    name: str
    adapter: str
    summary: str
    options_model: type[StrictModel]
    write: Callable[..., dict[str, Any]]
    check: Callable[[SynthRequest], list[str]] | None = None


KINDS: dict[str, SynthKind] = {
    k.name: k
    for k in (
        SynthKind(
            "speech-au", "csv", "speech with 8 AU intensities planted on its prosody",
            speech_au.SpeechAuOptions, speech_au.write,
        ),
        SynthKind(
            "faces", "csv", "rendered face videos: AUs, emotion, valence/arousal",
            faces.FacesOptions, faces.write,
        ),
        SynthKind(
            "talking-face", "lrs", "real face lip-syncing synthetic speech, transcripts",
            talking_face.TalkingFaceOptions, talking_face.write,
        ),
        SynthKind(
            "ravdess", "ravdess", "RAVDESS-named emotional speech (and face videos)",
            ravdess.RavdessSynthOptions, ravdess.write, ravdess.check,
        ),
        SynthKind("lma", "lma", "LMA body-motion features from PAD", lma.LmaSynthOptions, lma.write),
        SynthKind(
            "visemes", "lrs", "sentences read from the lips: one viseme mouth shape per character",
            visemes.VisemesOptions, visemes.write,
        ),
    )
}


def _problems(subjects: Any, items: Any, seed: Any, relation: Any) -> list[str]:
    problems = []
    for key, value, top in (("subjects", subjects, MAX_SUBJECTS), ("items", items, MAX_ITEMS)):
        if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= top:
            problems.append(f"{key}: must be an integer from 1 to {top}, got {value!r}")
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        problems.append(f"seed: must be a non-negative integer, got {seed!r}")
    if relation not in RELATIONS:
        problems.append(f"relation: must be one of {', '.join(RELATIONS)}, got {relation!r}")
    elif relation == "shuffled" and not problems and subjects * items < 2:
        problems.append("relation: 'shuffled' needs at least 2 recordings (subjects * items >= 2)")
    return problems


def _prepare_out(out: str, overwrite: bool) -> None:
    if os.path.exists(out) and not os.path.isdir(out):
        raise ConfigError(f"out: {out} exists and is not a directory")
    if os.path.isdir(out) and os.listdir(out):
        if not overwrite:
            raise ConfigError(f"out: {out} is not empty; choose a new directory or pass overwrite")
        if not os.path.isfile(os.path.join(out, "dataset.yaml")):
            raise ConfigError(f"out: {out} is not empty and holds no dataset.yaml; refusing to overwrite it")


def generate(
    kind: str,
    out: str,
    *,
    subjects: int,
    items: int,
    seed: int,
    relation: str = "planted",
    overwrite: bool = False,
    progress: Callable[[int], None] | None = None,
    **options: Any,
) -> str:
    """Write a synthetic corpus of ``kind`` under ``out`` and return its card's path.

    Args:
        kind: One of :data:`KINDS`.
        out: Local output directory (created; must be empty unless ``overwrite``).
        subjects: Number of subjects (speakers, identities, actors).
        items: Recordings (clips) per subject.
        seed: Random seed (non-negative).
        relation: ``planted`` or ``shuffled`` (labels of other recordings: the control).
        overwrite: Replace ``out`` when it holds an earlier corpus (it must contain a
            ``dataset.yaml``; other non-empty directories are never deleted).
        progress: Called with the number of recordings just finished.
        **options: Kind-specific options (e.g. ``size`` for ``faces``), see each options model.

    Returns:
        The path of ``<out>/dataset.yaml``.

    Raises:
        RegistryError: Unknown kind.
        ConfigError: Bad values or unknown options (all listed), or an unusable ``out``.
    """
    spec = KINDS.get(kind)
    if spec is None:
        raise unknown_name_error("synth kind", kind, list(KINDS))
    problems = _problems(subjects, items, seed, relation)
    if storage.is_remote(str(out)):
        problems.append(f"out: synth writes a local directory, got {out!r}; copy the corpus to S3 afterwards")
    try:
        opts = validate(spec.options_model, options, source=f"synth {kind} options")
    except ConfigError as exc:
        problems += [line.strip().removeprefix("- ") for line in str(exc).splitlines()[1:]]
    req = SynthRequest(
        kind=kind, out=os.path.abspath(out), subjects=subjects, items=items, seed=seed, relation=relation
    )
    if not problems and spec.check is not None:
        problems += spec.check(req)
    if problems:
        listed = "\n".join(f"  - {p}" for p in problems)
        raise ConfigError(f"synth {kind}: {len(problems)} problem(s):\n{listed}")
    _prepare_out(req.out, overwrite)
    staging = req.out.rstrip(os.sep) + ".synth-partial"
    shutil.rmtree(staging, ignore_errors=True)
    os.makedirs(staging)
    try:
        card = spec.write(dataclasses.replace(req, out=staging), opts, progress)
        write_card(staging, card)
        if os.path.isdir(req.out):
            shutil.rmtree(req.out)
        os.replace(staging, req.out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return os.path.join(req.out, "dataset.yaml")
