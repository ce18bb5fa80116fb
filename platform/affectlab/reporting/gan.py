"""Report tables and figures of seed 002's categorical GAN runs (``data.task: gan_au | gan_va | gan_au_va``).

Scores per checkpoint come from ``<run>/evaluation/test.parquet`` (``affectlab evaluate RUN
--checkpoints all``) when it exists, else from the run's ``history.parquet`` (the loop scores the
same held-out identities with the same metrics at every checkpoint, as ``val_*``); the caption
names the source. Tables follow the seed's layouts (SEED-NOTES C.4), one row per run:

* AU model: Table 3.15 (best mean F1 / accuracy / their mean / % real) and 3.16 (best F1 per AU);
* VA model: Table 3.19 (MSE loss) / 3.20 (1 - CCC loss): CCC V, CCC A, MSE V, MSE A, % real;
* AU + VA model: Tables 3.21 / 3.24 (VA), 3.22 / 3.25 (mean AU scores) and 3.23 / 3.26 (F1 per AU).

Each cell is ``score (iteration in thousands)``: the best value over the checkpoints of that run
(maximum; minimum for MSE), each column maximised separately. The best cell of every column is
bold, computed from the rows shown. A supervised-only discriminator (``data.gan.supervised_only``,
no generator) is a reference row in the same tables; its % real is not shown (it never saw a fake).

Per run: D / G loss curves and the held-out scores against the iteration, and a sample grid of
the generator at chosen checkpoints (4 images each from fixed noise, as the seed's figures).
"""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from affectlab import storage
from affectlab.errors import DatasetError
from affectlab.reporting.document import Document, Image, Strong, Table
from affectlab.training.gan_evaluate import LOWER_IS_BETTER, best_over_checkpoints, load_evaluation

__all__ = ["checkpoint_scores", "gan_runs", "gan_section", "gan_tables", "is_gan_run", "run_label",
           "sample_grid_png"]

WritePng = Callable[[str, bytes], Any]
GAN_HEADS = ("au", "va", "au_va")
SEED_TABLES = {("au", None): ("3.15", "3.16"), ("va", "mse"): ("3.19",), ("va", "ccc"): ("3.20",),
               ("au_va", "ccc"): ("3.21", "3.22", "3.23"), ("au_va", "mse"): ("3.24", "3.25", "3.26")}
VA_COLUMNS = {"CCC V": "ccc_valence", "CCC A": "ccc_arousal", "MSE V": "mse_valence", "MSE A": "mse_arousal",
              "% real": "real_pct"}
AU_MEAN_COLUMNS = {"F1": "au_mean_f1", "Accuracy": "au_mean_accuracy", "Mean": "au_score", "% real": "real_pct"}


def _summary(run: str) -> dict[str, Any]:
    return json.loads(storage.read_text(storage.join(run, "result.json")))


def is_gan_run(run: str) -> bool:
    """True when ``run`` is a GAN training output (its ``result.json`` names a GAN head)."""
    if not storage.exists(storage.join(run, "result.json")):
        return False
    summary = _summary(run)
    return summary.get("head") in GAN_HEADS and str(summary.get("target", {}).get("task", "")).startswith("gan_")


def gan_runs(outputs: list[tuple[str, str]]) -> list[str]:
    """The GAN runs among report outputs: plain runs, and the trials of sweeps."""
    found = []
    for kind, where in outputs:
        if kind == "run" and is_gan_run(where):
            found.append(where)
        elif kind == "sweep" and storage.exists(storage.join(where, "trials")):
            trials = sorted({uri.rsplit("/", 1)[0] for uri in storage.list_files(storage.join(where, "trials"),
                                                                                  suffix="result.json")})
            found += [t for t in trials if is_gan_run(t)]
    return found


def _gan_config(run: str) -> dict[str, Any]:
    from affectlab.config import load_yaml

    doc = load_yaml(storage.join(run, "config.yaml"))
    return doc.get("base", doc)


def run_label(run: str) -> str:
    """The seed's row label: ``lr / update rate / alpha`` plus ``ponderated`` and the VA loss where
    they apply; a supervised-only run is labelled as such."""
    config = _gan_config(run)
    gan, training = config["data"].get("gan") or {}, config["training"]
    if gan.get("supervised_only"):
        return f"supervised only (no generator), lr {training['lr']:g}"
    parts = [f"lr {training['lr']:g}", f"ur {training['update_rate']}", f"α {gan.get('label_smoothing', 0.9):g}"]
    if config["data"]["task"] == "gan_au_va" and gan.get("loss_weights") == "ponderated":
        parts.append("ponderated")
    return " / ".join(parts)


def checkpoint_scores(run: str) -> tuple[pd.DataFrame, str]:
    """One row per checkpoint (``iteration`` + metrics without prefix) and where they came from."""
    evaluated = load_evaluation(run, "test")
    if evaluated is not None and len(evaluated):
        return evaluated, "affectlab evaluate (test split)"
    history = storage.read_parquet(storage.join(run, "history.parquet")).to_pandas()
    keep = {c: c[len("val_"):] for c in history.columns if c.startswith("val_")}
    frame = history[["iteration", *keep]].rename(columns=keep)
    return frame, "the held-out identities scored at every checkpoint during training"


def _group(run: str) -> tuple[str, str | None]:
    summary, config = _summary(run), _gan_config(run)
    head = summary["head"]
    return head, None if head == "au" else (config["data"].get("gan") or {}).get("va_loss", "mse")


def _cell(best: dict[str, dict[str, float]], metric: str) -> tuple[float, str] | None:
    if metric not in best:
        return None
    value, iteration = best[metric]["value"], best[metric]["iteration"]
    return value, f"{value:.3f} ({iteration / 1000:g})"


def _bold_table(rows: list[tuple[str, dict[str, dict[str, float]]]], columns: dict[str, str], caption: str,
                skip: Callable[[str, str], bool] = lambda label, metric: False) -> Table:
    """Rows of best-over-checkpoint cells with each column's best in bold."""
    cells = [[None if skip(label, m) else _cell(best, m) for m in columns.values()] for label, best in rows]
    out = [[label] for label, _ in rows]
    for j, metric in enumerate(columns.values()):
        values = [c[j][0] for c in cells if c[j] is not None]
        lower = metric in LOWER_IS_BETTER or metric.startswith("mse_")
        target = (min(values) if lower else max(values)) if values else None
        for i, row in enumerate(cells):
            cell = row[j]
            out[i].append("-" if cell is None else Strong(cell[1]) if np.isclose(cell[0], target) else cell[1])
    return Table(["run", *columns], out, caption)


def gan_tables(runs: list[str]) -> list[tuple[str, Table]]:
    """``(heading, table)`` for every group of runs (model head and VA loss) in the seed's layouts."""
    groups: dict[tuple[str, str | None], list[tuple[str, dict[str, dict[str, float]], str]]] = {}
    for run in runs:
        frame, source = checkpoint_scores(run)
        groups.setdefault(_group(run), []).append((run_label(run), best_over_checkpoints(frame), source))
    supervised = lambda label, metric: label.startswith("supervised") and metric == "real_pct"  # noqa: E731
    out = []
    for (head, va_loss), members in sorted(groups.items(), key=lambda kv: (kv[0][0], kv[0][1] or "")):
        numbers = SEED_TABLES.get((head, va_loss), ())
        rows = [(label, best) for label, best, _ in sorted(members, key=lambda m: (m[0].startswith("super"), m[0]))]
        sources = "; ".join(sorted({s for *_, s in members}))
        note = (f"each cell: best score over the checkpoints (iteration in thousands); bold: the best of the column. "
                f"Scores from {sources}.")
        model = {"au": "AU model", "va": "VA model", "au_va": "AU + VA model"}[head]
        loss = f", {'1 - CCC' if va_loss == 'ccc' else 'MSE'} VA loss" if va_loss else ""
        aus = [c[len("au_f1_"):] for c in next(iter(rows))[1] if c.startswith("au_f1_")] if head != "va" else []
        per_au = {au: f"au_f1_{au}" for au in aus}
        if head in ("va", "au_va"):
            out.append((f"{model}{loss}: valence / arousal (seed Table {numbers[0]})",
                        _bold_table(rows, VA_COLUMNS, note, supervised)))
        if head in ("au", "au_va"):
            mean_cols = dict(AU_MEAN_COLUMNS) if head == "au" else {k: v for k, v in AU_MEAN_COLUMNS.items()
                                                                    if k != "% real"}
            out.append((f"{model}{loss}: mean AU scores (seed Table {numbers[0 if head == 'au' else 1]})",
                        _bold_table(rows, mean_cols, note, supervised)))
            out.append((f"{model}{loss}: best F1 per AU (seed Table {numbers[1 if head == 'au' else 2]})",
                        _bold_table(rows, per_au, note)))
    return out


def _losses_png(frame: pd.DataFrame, scores: pd.DataFrame, title: str) -> bytes:
    from affectlab.reporting import plots  # before pyplot: selects the non-interactive backend
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    for column, label in (("train_d_loss", "D loss"), ("train_g_loss", "G loss")):
        if column in frame:
            axes[0].plot(frame["iteration"], frame[column], "o-", markersize=3, label=label)
    axes[0].set_xlabel("iteration")
    axes[0].set_title("training losses (mean over each checkpoint period)", fontsize=9)
    for column in ("au_mean_f1", "au_mean_accuracy", "real_pct", "ccc_valence", "ccc_arousal"):
        if column in scores:
            axes[1].plot(scores["iteration"], scores[column], "o-", markersize=3, label=column)
    axes[1].set_xlabel("iteration")
    axes[1].set_title("held-out scores per checkpoint", fontsize=9)
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    fig.suptitle(title, fontsize=10)
    return plots.figure_png(fig)


def sample_grid_png(run: str, iterations: list[int], *, samples: int = 4, seed: int = 0) -> bytes:
    """Generated images of ``run`` at ``iterations`` (rows), ``samples`` per row from the same
    fixed U[-1, 1] noise, so rows differ only by the generator's training."""
    import torch

    from affectlab.models.gan import sample_noise
    from affectlab.reporting import plots  # noqa: F401  (selects the non-interactive backend)
    from affectlab.training.gan_evaluate import list_checkpoints, run_config
    from affectlab.training.runners import build_modules
    from affectlab.training.tasks import DataInfo, build_task
    import matplotlib.pyplot as plt

    config, summary = run_config(run)
    kwargs = {"head": summary["head"], "n_aus": len(summary.get("aus") or config.data.gan.aus),
              "image_size": config.data.gan.image_size}
    task = build_task(config, DataInfo(model_kwargs=kwargs))
    generator = build_modules(config, task, kwargs)["generator"].eval()
    by_iteration = dict(list_checkpoints(run))
    z = sample_noise(samples, generator=torch.Generator().manual_seed(seed))
    fig, axes = plt.subplots(len(iterations), samples, figsize=(1.3 * samples, 1.35 * len(iterations)), squeeze=False)
    for row, iteration in enumerate(iterations):
        states = torch.load(io.BytesIO(storage.read_bytes(by_iteration[iteration])), weights_only=True)
        generator.load_state_dict(states["generator"])
        with torch.no_grad():
            images = ((generator(z).permute(0, 2, 3, 1).numpy() + 1) / 2).clip(0, 1)
        for col in range(samples):
            ax = axes[row][col]
            ax.imshow(images[col], interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if col == 0:
                ax.set_ylabel(f"{iteration / 1000:g}k", fontsize=8)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    plt.close(fig)
    return buf.getvalue()


def _chosen(iterations: list[int], best: int | None, count: int = 4) -> list[int]:
    """Up to ``count`` checkpoints: evenly spread from first to last, with the best one included."""
    picks = {iterations[round(i)] for i in np.linspace(0, len(iterations) - 1, min(count, len(iterations)))}
    if best in iterations:
        picks.add(best)
    return sorted(picks)


def gan_section(doc: Document, runs: list[str], write_png: WritePng, *, prefix: str = "gan") -> None:
    """Append the seed-layout tables of ``runs`` and, per run, its loss curves and sample grid."""
    from affectlab.training.gan_evaluate import list_checkpoints

    if not runs:
        return
    doc.heading(f"Categorical GAN (seed 002): {len(runs)} run(s)", 2)
    for heading, table in gan_tables(runs):
        doc.heading(heading, 3)
        doc.table(table)
    for i, run in enumerate(runs, start=1):
        label, summary = run_label(run), _summary(run)
        doc.heading(f"{label}: {run}", 3)
        doc.text(f"{summary['frames']['train']} training / {summary['frames']['val']} held-out frames; held-out "
                 f"identities {', '.join(summary['subjects']['val'])}; best checkpoint (by the monitor) at iteration "
                 f"{summary.get('best_iteration')}.")
        history = storage.read_parquet(storage.join(run, "history.parquet")).to_pandas()
        scores, _ = checkpoint_scores(run)
        name = f"{prefix}{i}_losses.png"
        write_png(name, _losses_png(history, scores, label))
        doc.image(Image(name, "D / G losses and held-out scores against the iteration"))
        if not label.startswith("supervised"):
            try:
                available = [it for it, _ in list_checkpoints(run)]
            except DatasetError:  # saved without checkpoints (data.gan.save_checkpoints: false): no samples
                continue
            chosen = _chosen(available, summary.get("best_iteration"))
            name = f"{prefix}{i}_samples.png"
            write_png(name, sample_grid_png(run, chosen))
            doc.image(Image(name, f"generated images at iterations {', '.join(map(str, chosen))} (rows), "
                                  f"the same noise in every row"))
