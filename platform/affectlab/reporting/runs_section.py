"""Report parts for training runs (``affectlab train``) and cross-validation (``affectlab cv``).

A run directory holds ``result.json`` and ``history.parquet`` (see
:mod:`affectlab.training.run`); a CV output holds ``cv/`` with ``folds.parquet``, the paper-style
``table1.md`` / ``table2.md``, ``timing.json`` and one run directory per training under ``runs/``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import numpy as np

from affectlab import storage
from affectlab.reporting import plots
from affectlab.reporting.confusion import CorpusCache, run_confusion
from affectlab.reporting.document import Document, Image, Table

__all__ = ["cv_section", "is_cv", "is_run", "run_section"]

WritePng = Callable[[str, bytes], None]
_FOLD_COLUMNS = ["fold", "test_subject", "au", "kind", "arch", "feature_set", "uar", "f1", "accuracy",
                 "val_uar", "best_epoch", "epochs", "wall_s", "val_subjects", "test_classes", "val_classes"]


def is_run(uri: str) -> bool:
    """True when ``uri`` holds the outputs of one training (``result.json`` and ``history.parquet``;
    an emotion run, e.g. a late fusion of other runs, needs only ``result.json``)."""
    from affectlab.reporting.emotion import is_emotion_run

    if not storage.exists(storage.join(uri, "result.json")):
        return False
    return storage.exists(storage.join(uri, "history.parquet")) or is_emotion_run(uri)


def is_cv(uri: str) -> bool:
    """True when ``uri`` holds a cross-validation output (``uri/cv/folds.parquet``)."""
    return storage.exists(storage.join(uri, "cv", "folds.parquet"))


def _history(run_dir: str) -> dict[str, dict[int, float]]:
    table = storage.read_parquet(storage.join(run_dir, "history.parquet")).to_pylist()
    curves: dict[str, dict[int, float]] = {}
    for row in table:
        for key, value in row.items():
            if key not in ("epoch", "best_epoch") and isinstance(value, (int, float)):
                curves.setdefault(key, {})[int(row["epoch"])] = float(value)
    return curves


def _describe(summary: dict[str, Any], uri: str) -> str:
    """One sentence on what the run trained (an emotion run without a model: a late fusion of runs)."""
    target = summary.get("target", {})
    if target.get("task") != "emotion":
        what = f"{target.get('au')} {target.get('kind')}"
    else:
        what = f"{summary.get('modality')} emotion ({len(summary.get('classes') or [])} classes)"
        if "model" not in summary:
            runs = "; ".join(f"{k}: {v}" for k, v in (summary.get("runs") or {}).items()) or "-"
            return f"Target {what}, no training of its own (runs {runs}); outputs in {uri}."
    return (
        f"{summary.get('model')} on {summary.get('feature_set')}, target {what} "
        f"({target.get('task')}); runner {summary.get('runner')}; {summary.get('epochs')} epochs, best epoch "
        f"{summary.get('best_epoch')} ({summary.get('stop_reason')}); outputs in {uri}."
    )


def run_section(doc: Document, uri: str, write_png: WritePng, *, prefix: str = "run") -> None:
    """Append one training run: its result table, learning curves and test confusion matrix."""
    from affectlab.reporting.emotion import emotion_section

    summary = json.loads(storage.read_text(storage.join(uri, "result.json")))
    target = summary.get("target", {})
    emotion = target.get("task") == "emotion"
    kind = "Emotion run" if emotion and "model" not in summary else "Training run"  # a late fusion trains nothing
    doc.heading(f"{kind}: {summary.get('name', uri)}")
    doc.text(_describe(summary, uri))
    rows = []
    for part in ("val", "test", "baseline"):
        for key, value in sorted((summary.get(part) or {}).items()):
            rows.append([part, key, value])
    if rows:
        doc.table(Table(["split", "metric", "value"], rows, caption="metrics of the best epoch's model"))
    split = summary.get("split") or {}
    doc.bullets([f"{k} subjects: {', '.join(map(str, v)) or '-'}" for k, v in split.items() if k != "val_samples"])
    if storage.exists(storage.join(uri, "history.parquet")):
        name = f"{prefix}_learning_curves.png"
        write_png(name, plots.history_png(_history(uri), title=f"{summary.get('name', '')}: learning curves"))
        doc.image(Image(name, "training and validation metrics per epoch"))
    if emotion:  # its own confusion matrices, from the saved predictions
        emotion_section(doc, uri, write_png, prefix=prefix)
        return
    if target.get("task") == "vae_lma":  # its tables, from the stored predictions
        from affectlab.reporting.vae import vae_section

        vae_section(doc, uri, write_png, prefix=prefix)
        return
    found = run_confusion(uri)
    if found is not None:
        matrix, labels = found
        name = f"{prefix}_confusion.png"
        write_png(name, plots.confusion_matrix_png(matrix, labels=labels, title="test confusion matrix"))
        doc.image(Image(name, "confusion matrix on the test subjects (rows: true, columns: predicted)"))


def cv_section(doc: Document, uri: str, write_png: WritePng, *, prefix: str = "cv") -> None:
    """Append a CV output: the paper-style tables, every fold, curves and pooled confusions."""
    import pandas as pd

    cv = storage.join(uri, "cv")
    folds = storage.read_parquet(storage.join(cv, "folds.parquet")).to_pandas()
    doc.heading(f"Cross-validation: {uri}")
    timing_uri = storage.join(cv, "timing.json")
    if storage.exists(timing_uri):
        t = json.loads(storage.read_text(timing_uri))
        doc.text(
            f"{t.get('trainings')} trainings (leave one subject out) in {t.get('grid_wall_s', 0):.1f} s wall on "
            f"{t.get('cpus')} CPUs; the trainings themselves took {t.get('sum_training_s', 0):.1f} s in sum."
        )
    for name in ("table1.md", "table2.md", "loso.md"):
        table_uri = storage.join(cv, name)
        if storage.exists(table_uri):
            doc.markdown_block(storage.read_text(table_uri))
    if storage.exists(storage.join(cv, "loso.md")):  # an emotion LOSO (affectlab.training.emotion_cv)
        from affectlab.reporting.emotion import emotion_cv_section

        emotion_cv_section(doc, [_run_dir(cv, row) for _, row in folds.iterrows()], write_png, prefix=prefix)
        return
    columns = [c for c in _FOLD_COLUMNS if c in folds.columns]
    caption = "every training (test metrics on the held-out subject)"
    if "test_classes" in columns:
        caption += ("; test_classes / val_classes: classes present in the test subject's / validation data's labels "
                    "(1: UAR is that class's recall, flagged in the tables above)")
    doc.table(Table.from_frame(folds[columns], caption=caption))
    groups = folds.groupby([c for c in ("au", "kind", "arch", "feature_set") if c in folds.columns], sort=True)
    cache = CorpusCache()
    for i, (key, group) in enumerate(groups):
        label = " ".join(map(str, key if isinstance(key, tuple) else (key,)))
        _cv_group_plots(doc, cv, group, label, f"{prefix}_{i + 1}", write_png, cache, pd)


def _run_dir(cv: str, row: Any) -> str:
    name = (row.get("run") or row.get("name")) if hasattr(row, "get") else None
    if not name:
        name = "_".join(str(row[k]) for k in ("fold", "au", "kind", "arch", "feature_set"))
    return storage.join(cv, "runs", str(name))


def _cv_group_plots(doc: Document, cv: str, group: Any, label: str, prefix: str, write_png: WritePng,
                    cache: CorpusCache, pd: Any) -> None:
    curves, matrices, names = {}, [], None
    for _, row in group.iterrows():
        run_dir = _run_dir(cv, row)
        if not storage.exists(storage.join(run_dir, "history.parquet")):
            continue
        curves[f"test {row.get('test_subject', row.get('fold'))}"] = _history(run_dir).get("val_uar", {})
        found = run_confusion(run_dir, cache)
        if found is not None:
            matrices.append(found[0])
            names = found[1]
    if not curves:
        return
    doc.heading(label, 3)
    name = f"{prefix}_learning_curves.png"
    write_png(name, plots.learning_curves_png(curves, metric="val_uar", title=f"{label}: validation UAR per fold"))
    doc.image(Image(name, f"{label}: validation UAR per epoch, one line per fold"))
    if matrices:
        pooled = np.sum(matrices, axis=0)
        name = f"{prefix}_confusion.png"
        write_png(name, plots.confusion_matrix_png(pooled, labels=names, title=f"{label}: pooled over {len(matrices)} folds"))
        doc.image(Image(name, f"{label}: test confusion matrix pooled over the held-out subjects"))
