"""Reports of runs, cross-validations and sweeps: Markdown, one static HTML page, PNG plots.

>>> from affectlab.reporting import write_report
>>> write_report("out/sweep")            # -> "out/sweep/report/index.html"

:func:`write_report` recognises what an output directory holds (a sweep, a CV grid, a training
run) and also looks one level down, so a directory holding several (the demo's) gets one report
with a section for each. Emotion runs (``target.task == "emotion"``) get the single-frame and
full-video tables of :mod:`affectlab.reporting.emotion`; a directory with several of them (face,
speech, fusion; a mean-face ablation) also gets a comparison of their test scores first. GAN runs
and the trials of GAN sweeps get seed 002's best-iteration tables (:mod:`affectlab.reporting.gan`);
stage-3 lip reading runs (and the run a ``affectlab pipeline`` evaluated) get seed 001's comparison,
transcript and loss tables (:mod:`affectlab.reporting.vsr`).
"""

from __future__ import annotations

import time

from affectlab import storage
from affectlab.errors import StorageError
from affectlab.reporting.document import Document

__all__ = ["find_outputs", "write_report"]

KINDS = ("sweep", "cv", "run")


def _kind(uri: str) -> str | None:
    from affectlab.reporting.runs_section import is_cv, is_run
    from affectlab.reporting.sweep_section import is_sweep

    if is_sweep(uri):
        return "sweep"
    if is_cv(uri):
        return "cv"
    if is_run(uri):
        return "run"
    return None


def _children(uri: str) -> list[str]:
    import pyarrow.fs as pafs

    fs, path = storage.filesystem(uri)
    infos = fs.get_file_info(pafs.FileSelector(path, allow_not_found=True))
    names = sorted(i.base_name for i in infos if i.type == pafs.FileType.Directory)
    return [storage.join(uri, n) for n in names if not n.startswith(("_", ".")) and n != "report"]


def find_outputs(uri: str) -> list[tuple[str, str]]:
    """``(kind, uri)`` of every output in ``uri`` itself and in its immediate subdirectories.

    Raises:
        StorageError: Nothing reportable was found.
    """
    found = []
    own = _kind(uri)
    if own is not None:
        found.append((own, uri))
    if own != "run":
        for child in _children(uri):
            kind = _kind(child)
            if kind is not None:
                found.append((kind, child))
    if not found:
        raise StorageError(
            f"{uri}: no run (result.json + history.parquet), CV (cv/folds.parquet) or sweep (sweep.json) "
            f"output here or one level down"
        )
    return found


def write_report(uri: str, *, out: str | None = None) -> str:
    """Write ``index.md``, ``index.html`` and the PNG plots for the outputs in ``uri``.

    Args:
        uri: A run, CV or sweep output directory (or a directory holding several).
        out: Report directory (default: ``<uri>/report``).

    Returns:
        The path or URI of ``index.html``.

    Raises:
        StorageError: ``uri`` holds nothing to report.
    """
    from affectlab.reporting.emotion import emotion_runs_section, is_emotion_run
    from affectlab.reporting.gan import gan_runs, gan_section
    from affectlab.reporting.runs_section import cv_section, run_section
    from affectlab.reporting.sweep_section import sweep_section
    from affectlab.reporting.vae import vae_sweeps_section
    from affectlab.reporting.vsr import lip_reading_runs, vsr_section

    out = out or storage.join(uri, "report")
    outputs = find_outputs(uri)
    doc = Document(f"affectlab report: {uri}")
    doc.text(f"Generated {time.strftime('%Y-%m-%d %H:%M:%S')} from {len(outputs)} output(s).")

    def write_png(name: str, data: bytes) -> None:
        storage.write_bytes(storage.join(out, name), data)

    emotion_runs_section(doc, [where for kind, where in outputs if kind == "run" and is_emotion_run(where)])
    vae_sweeps_section(doc, [where for kind, where in outputs if kind == "sweep"], write_png)
    vsr_section(doc, lip_reading_runs(uri, outputs), write_png)
    gans = gan_runs(outputs)
    gan_section(doc, gans, write_png)
    counts: dict[str, int] = {}
    for kind, where in outputs:
        if kind == "run" and where in gans:  # its tables and figures are in the GAN section
            continue
        counts[kind] = counts.get(kind, 0) + 1
        prefix = f"{kind}{counts[kind]}"
        section = {"sweep": sweep_section, "cv": cv_section, "run": run_section}[kind]
        section(doc, where, write_png, prefix=prefix)
    storage.write_text(storage.join(out, "index.md"), doc.to_markdown())
    storage.write_text(storage.join(out, "index.html"), doc.to_html())
    return storage.join(out, "index.html")
