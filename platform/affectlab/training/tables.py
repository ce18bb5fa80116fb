"""Cross-validation tables in the layout of seed 003.

* ``summary``: mean (and std) test UAR over folds per AU x class x architecture x feature set.
* Table I (architectures compared on one AU): rows = architectures, columns = classes
  (onset, apex, offset, occurrence); one block per AU and feature set.
* Table II (all AUs with one architecture): rows = AUs plus an ``Avg.`` row, columns =
  feature set x class; one block per architecture.

UAR values are in percent with one decimal, as in the paper. Written as Parquet (long and wide)
and Markdown under the CV output directory.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from affectlab import storage
from affectlab.training.config import KINDS

__all__ = ["summarise", "table1", "table2", "to_markdown", "write_tables"]


def summarise(rows: Sequence[dict[str, Any]]) -> pd.DataFrame:
    """Mean / std / count of test UAR over folds per (au, kind, arch, feature_set)."""
    frame = pd.DataFrame(list(rows))
    grouped = frame.groupby(["au", "kind", "arch", "feature_set"], sort=True)["uar"]
    return grouped.agg(mean_uar="mean", std_uar="std", folds="count").reset_index()


def _kind_order(kinds: Sequence[str]) -> list[str]:
    return [k for k in KINDS if k in set(kinds)] + sorted(set(kinds) - set(KINDS))


def table1(summary: pd.DataFrame, *, au: str, feature_set: str) -> pd.DataFrame:
    """Architectures (rows) x classes (columns): mean UAR in % for one AU and feature set."""
    part = summary[(summary["au"] == au) & (summary["feature_set"] == feature_set)]
    wide = part.pivot(index="arch", columns="kind", values="mean_uar") * 100
    return wide.reindex(columns=_kind_order(wide.columns)).round(1)


def table2(summary: pd.DataFrame, *, arch: str) -> pd.DataFrame:
    """AUs (rows, plus ``Avg.``) x (feature set, class) columns: mean UAR in % for one architecture."""
    part = summary[summary["arch"] == arch]
    wide = part.pivot(index="au", columns=["feature_set", "kind"], values="mean_uar") * 100
    order = [(fs, k) for fs in sorted(part["feature_set"].unique()) for k in _kind_order(part["kind"].unique())]
    wide = wide.reindex(columns=pd.MultiIndex.from_tuples(order, names=["feature_set", "kind"]))
    wide.loc["Avg."] = wide.mean(axis=0)
    return wide.round(1)


def to_markdown(frame: pd.DataFrame, *, title: str) -> str:
    """A GitHub-flavoured Markdown table (multi-level columns joined with a space)."""
    cols = [" ".join(map(str, c)) if isinstance(c, tuple) else str(c) for c in frame.columns]
    head = [str(frame.index.name or ""), *cols]
    lines = [f"### {title}", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for index, row in frame.iterrows():
        cells = ["" if (isinstance(v, float) and np.isnan(v)) else f"{v:.1f}" for v in row.to_numpy()]
        lines.append("| " + " | ".join([str(index), *cells]) + " |")
    return "\n".join(lines) + "\n"


def _flat(frame: pd.DataFrame) -> pa.Table:
    flat = frame.copy()
    flat.columns = ["_".join(map(str, c)) if isinstance(c, tuple) else str(c) for c in flat.columns]
    return pa.Table.from_pandas(flat.reset_index(), preserve_index=False)


def write_tables(rows: Sequence[dict[str, Any]], out: str) -> dict[str, str]:
    """Write ``summary.parquet``, ``table1.{parquet,md}`` and ``table2.{parquet,md}`` under ``out``.

    Returns:
        The Markdown of both tables, keyed ``table1`` / ``table2``.
    """
    summary = summarise(rows)
    storage.write_parquet(pa.Table.from_pandas(summary, preserve_index=False), storage.join(out, "summary.parquet"))
    md1, tabs1 = [], []
    for au in sorted(summary["au"].unique()):
        for fs in sorted(summary["feature_set"].unique()):
            t = table1(summary, au=au, feature_set=fs)
            md1.append(to_markdown(t, title=f"Table I: {au}, {fs} (LOSO mean UAR %)"))
            tabs1.append(_flat(t).append_column("au", pa.array([au] * len(t))).append_column("feature_set", pa.array([fs] * len(t))))
    md2, tabs2 = [], []
    for arch in sorted(summary["arch"].unique()):
        t = table2(summary, arch=arch)
        md2.append(to_markdown(t, title=f"Table II: {arch} (LOSO mean UAR %)"))
        tabs2.append(_flat(t).append_column("arch", pa.array([arch] * len(t))))
    storage.write_parquet(pa.concat_tables(tabs1, promote_options="default"), storage.join(out, "table1.parquet"))
    storage.write_parquet(pa.concat_tables(tabs2, promote_options="default"), storage.join(out, "table2.parquet"))
    text = {"table1": "\n".join(md1), "table2": "\n".join(md2)}
    storage.write_text(storage.join(out, "table1.md"), text["table1"])
    storage.write_text(storage.join(out, "table2.md"), text["table2"])
    return text
