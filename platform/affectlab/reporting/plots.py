"""Static PNG plots for reports (matplotlib, Agg backend: no display needed).

Every function returns the PNG bytes, so the caller can write them to a local path or to
``s3://`` with :func:`affectlab.storage.write_bytes`.
"""

from __future__ import annotations

import io
import math
import textwrap
from collections.abc import Mapping, Sequence
from typing import Any

import matplotlib

matplotlib.use("Agg")  # before pyplot: reports are rendered without a display

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

__all__ = [
    "confusion_matrix_png",
    "figure_png",
    "history_png",
    "learning_curves_png",
    "metric_vs_params_png",
    "parallel_coordinates_png",
]


def figure_png(fig: Any) -> bytes:
    """A matplotlib figure as PNG bytes (tight layout, 100 dpi); the figure is closed."""
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    return buf.getvalue()


def learning_curves_png(
    curves: Mapping[str, Mapping[int, float]], *, metric: str, stopped: Sequence[str] = (), title: str = ""
) -> bytes:
    """One line per trial: ``metric`` against epoch; early-stopped trials dashed.

    Args:
        curves: Trial label -> {epoch: value}.
        metric: Name for the y axis.
        stopped: Labels of trials that were stopped early.
        title: Figure title.
    """
    fig, ax = plt.subplots(figsize=(7, 4.2))
    cmap = plt.get_cmap("viridis")
    labels = list(curves)
    for i, label in enumerate(labels):
        points = sorted(curves[label].items())
        if not points:
            continue
        xs, ys = zip(*points, strict=True)
        style = "--" if label in stopped else "-"
        ax.plot(xs, ys, style, marker="o", markersize=3, color=cmap(i / max(len(labels) - 1, 1)), label=label)
    ax.set_xlabel("epoch")
    ax.set_ylabel(metric)
    ax.set_title(textwrap.fill(title or f"{metric} per epoch (dashed: stopped early)", 70), fontsize=10)
    ax.grid(alpha=0.3)
    if 0 < len(labels) <= 12:
        ax.legend(fontsize=7, ncol=2)
    return figure_png(fig)


def _axis_values(values: Sequence[Any]) -> tuple[np.ndarray, list[str] | None]:
    """Numeric positions for a parameter's values, plus tick labels when categorical."""
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        return np.asarray(values, dtype=float), None
    cats = sorted({str(v) for v in values})
    return np.asarray([cats.index(str(v)) for v in values], dtype=float), cats


def metric_vs_params_png(
    params: Mapping[str, Sequence[Any]], values: Sequence[float], *, metric: str, log_params: Sequence[str] = ()
) -> bytes:
    """One scatter panel per hyperparameter: the trial's ``metric`` against its value."""
    names = list(params)
    cols = min(3, max(len(names), 1))
    rows = math.ceil(max(len(names), 1) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.3 * rows), squeeze=False)
    ys = np.asarray(values, dtype=float)
    for ax, name in zip(axes.flat, names, strict=False):
        xs, cats = _axis_values(params[name])
        ax.scatter(xs, ys, c=ys, cmap="viridis", edgecolors="k", linewidths=0.4)
        if cats is not None:
            ax.set_xticks(range(len(cats)), cats, rotation=20, fontsize=8)
        elif name in log_params:
            ax.set_xscale("log")
        ax.set_xlabel(name)
        ax.set_ylabel(metric)
        ax.grid(alpha=0.3)
    for ax in list(axes.flat)[len(names):]:
        ax.axis("off")
    return figure_png(fig)


def parallel_coordinates_png(
    params: Mapping[str, Sequence[Any]], values: Sequence[float], *, metric: str, log_params: Sequence[str] = ()
) -> bytes:
    """Parallel coordinates: one vertical axis per hyperparameter plus the metric, each scaled
    to [0, 1]; one line per trial, coloured by its metric."""
    names = [*params, metric]
    columns, labels = [], []
    for name in params:
        xs, cats = _axis_values(params[name])
        if cats is None and name in log_params and np.all(xs > 0):
            xs = np.log10(xs)
        columns.append(xs)
        labels.append(cats)
    ys = np.asarray(values, dtype=float)
    columns.append(ys)
    labels.append(None)
    scaled = []
    for col in columns:
        lo, hi = np.nanmin(col), np.nanmax(col)
        scaled.append((col - lo) / (hi - lo) if hi > lo else np.full_like(col, 0.5))
    data = np.vstack(scaled).T  # (trials, axes)
    fig, ax = plt.subplots(figsize=(max(6, 1.8 * len(names)), 4.2))
    cmap = plt.get_cmap("viridis")
    norm = plt.Normalize(np.nanmin(ys), np.nanmax(ys)) if len(ys) else None
    for row, y in sorted(zip(data, ys, strict=True), key=lambda p: p[1]):
        ax.plot(range(len(names)), row, color=cmap(norm(y)) if norm else "C0", alpha=0.8)
    ax.set_xticks(range(len(names)), names, rotation=15, fontsize=8)
    for i, (col, cats) in enumerate(zip(columns, labels, strict=True)):
        lo, hi = (0, len(cats) - 1) if cats else (np.nanmin(col), np.nanmax(col))
        ax.annotate(f"{lo:.3g}", (i, 0), textcoords="offset points", xytext=(3, -10), fontsize=7)
        ax.annotate(f"{hi:.3g}", (i, 1), textcoords="offset points", xytext=(3, 4), fontsize=7)
        ax.axvline(i, color="grey", linewidth=0.8)
    ax.set_yticks([])
    ax.set_ylim(-0.08, 1.1)
    ax.set_title(f"trials by {metric}", fontsize=10)
    if norm is not None:
        fig.colorbar(plt.cm.ScalarMappable(norm=norm, cmap=cmap), ax=ax, label=metric)
    return figure_png(fig)


def confusion_matrix_png(matrix: Any, *, labels: Sequence[str] | None = None, title: str = "") -> bytes:
    """A confusion matrix (rows: true class, columns: predicted), counts and row-normalised
    shading."""
    counts = np.asarray(matrix, dtype=float)
    n = counts.shape[0]
    labels = list(labels) if labels is not None else [str(i) for i in range(n)]
    totals = counts.sum(axis=1, keepdims=True)
    share = np.divide(counts, totals, out=np.zeros_like(counts), where=totals > 0)
    fig, ax = plt.subplots(figsize=(max(1.2 * n + 2.2, 5.0), max(1.1 * n + 1.6, 4.2)))
    ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    for i in range(n):
        for j in range(n):
            colour = "white" if share[i, j] > 0.6 else "black"
            ax.text(j, i, f"{int(counts[i, j])}\n{share[i, j]:.0%}", ha="center", va="center", color=colour, fontsize=8)
    ax.set_xticks(range(n), labels)
    ax.set_yticks(range(n), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(textwrap.fill(title or "confusion matrix", 48), fontsize=9)
    return figure_png(fig)


def history_png(history: Mapping[str, Mapping[int, float]], *, title: str = "") -> bytes:
    """Training history of one run: one panel per metric (losses together), against epoch."""
    losses = {k: v for k, v in history.items() if "loss" in k}
    others = {k: v for k, v in history.items() if "loss" not in k}
    panels = [p for p in (losses, others) if p]
    fig, axes = plt.subplots(1, max(len(panels), 1), figsize=(6 * max(len(panels), 1), 3.8), squeeze=False)
    for ax, panel in zip(axes.flat, panels, strict=False):
        for name, curve in sorted(panel.items()):
            points = sorted(curve.items())
            if points:
                xs, ys = zip(*points, strict=True)
                ax.plot(xs, ys, marker="o", markersize=3, label=name)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(textwrap.fill(title or "learning curves", 90), fontsize=10)
    return figure_png(fig)
