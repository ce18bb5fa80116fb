"""Cross-validation tables in the layout of seed 003.

* ``summary``: mean (and std) test UAR over folds per AU x class x architecture x feature set.
* Table I (architectures compared on one AU): rows = architectures, columns = classes
  (onset, apex, offset, occurrence); one block per AU and feature set.
* Table II (all AUs with one architecture): rows = AUs plus an ``Avg.`` row, columns =
  feature set x class; one block per architecture.

UAR values are in percent with one decimal, as in the paper. Written as Parquet (long and wide)
and Markdown under the CV output directory.

Single-class folds. A subject whose target labels hold one class only makes UAR that class's
recall (a constant predictor of the class scores 100 %, of the other class 0 %). Each fold row
carries ``test_classes`` and ``val_classes`` (classes present in the test subject's and the
validation data's labels; see :func:`affectlab.training.cv.run_cv`). In the Markdown tables a
cell is marked † when one of its folds tests on a single-class subject and ‡ when one of its
folds stopped early on single-class validation data; a footnote under the table names the folds.

How the mean treats them: ``mean_uar`` (the number in the tables) is the mean over *every*
fold, single-class folds included, as a LOSO mean is defined and as the paper reports it;
nothing is dropped after seeing the results. Next to it ``summary.parquet`` holds
``mean_uar_two_class`` (the mean over the folds whose test subject has two or more classes)
and ``folds_two_class``, and the † footnote prints that second mean, so a reader can see how
much the single-class folds move the number. A fold without any labelled test step has a NaN
UAR and is left out of both means (``folds`` counts the folds with a UAR).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from affectlab import storage
from affectlab.training.config import KINDS

__all__ = [
    "TEST_MARK",
    "VAL_MARK",
    "footnotes",
    "summarise",
    "table1",
    "table1_marks",
    "table2",
    "table2_marks",
    "to_markdown",
    "write_tables",
]


TEST_MARK = "†"
VAL_MARK = "‡"
_KEYS = ["au", "kind", "arch", "feature_set"]


def _single(values: pd.Series) -> pd.Series:
    """True where a class count is known and below two (NaN / None: unknown, not flagged)."""
    counts = pd.to_numeric(values, errors="coerce")
    return counts.notna() & (counts < 2)


def summarise(rows: Sequence[dict[str, Any]]) -> pd.DataFrame:
    """Test UAR over folds per (au, kind, arch, feature_set), single-class folds counted apart.

    Columns: ``mean_uar`` / ``std_uar`` / ``folds`` over every fold with a UAR (single-class
    folds included: the tables' number); ``single_class_test_folds`` and
    ``single_class_val_folds`` (folds whose test subject / validation data has fewer than two
    classes present), ``single_class_test`` and ``single_class_val`` (those folds' names, comma
    separated); ``mean_uar_two_class`` and ``folds_two_class`` (the same mean over the folds whose
    test subject has two or more classes). Rows without ``test_classes`` / ``val_classes``
    (class presence unknown) are never flagged.
    """
    frame = pd.DataFrame(list(rows))
    for column in ("test_classes", "val_classes"):
        if column not in frame.columns:
            frame[column] = np.nan
    if "fold" not in frame.columns:
        frame["fold"] = ""
    frame["_test_single"] = _single(frame["test_classes"])
    frame["_val_single"] = _single(frame["val_classes"])
    frame["_uar_two_class"] = frame["uar"].where(~frame["_test_single"])
    grouped = frame.groupby(_KEYS, sort=True)
    summary = grouped["uar"].agg(mean_uar="mean", std_uar="std", folds="count")
    summary["mean_uar_two_class"] = grouped["_uar_two_class"].mean()
    summary["folds_two_class"] = grouped["_uar_two_class"].count()
    summary["single_class_test_folds"] = grouped["_test_single"].sum().astype(int)
    summary["single_class_val_folds"] = grouped["_val_single"].sum().astype(int)
    summary["single_class_test"] = grouped.apply(_names("_test_single"), include_groups=False)
    summary["single_class_val"] = grouped.apply(_names("_val_single"), include_groups=False)
    return summary.reset_index()


def _names(flag: str) -> Any:
    def names(group: pd.DataFrame) -> str:
        return ",".join(sorted(str(f) for f in group.loc[group[flag], "fold"]))
    return names


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


def _with_marks(part: pd.DataFrame) -> pd.DataFrame:
    part = part.copy()
    test = part["single_class_test_folds"] > 0 if "single_class_test_folds" in part else False
    val = part["single_class_val_folds"] > 0 if "single_class_val_folds" in part else False
    part["_mark"] = np.where(test, TEST_MARK, "") + np.where(val, VAL_MARK, "")
    return part


def _union(marks: Sequence[str]) -> str:
    found = "".join(str(m) for m in marks if isinstance(m, str))
    return "".join(m for m in (TEST_MARK, VAL_MARK) if m in found)


def table1_marks(summary: pd.DataFrame, *, au: str, feature_set: str) -> pd.DataFrame:
    """The single-class marks (†, ‡ or empty) of each cell of :func:`table1`, same shape."""
    part = _with_marks(summary[(summary["au"] == au) & (summary["feature_set"] == feature_set)])
    wide = part.pivot(index="arch", columns="kind", values="_mark")
    return wide.reindex(columns=_kind_order(wide.columns)).fillna("")


def table2_marks(summary: pd.DataFrame, *, arch: str) -> pd.DataFrame:
    """The single-class marks of each cell of :func:`table2`; ``Avg.`` carries its column's marks."""
    part = _with_marks(summary[summary["arch"] == arch])
    wide = part.pivot(index="au", columns=["feature_set", "kind"], values="_mark")
    order = [(fs, k) for fs in sorted(part["feature_set"].unique()) for k in _kind_order(part["kind"].unique())]
    wide = wide.reindex(columns=pd.MultiIndex.from_tuples(order, names=["feature_set", "kind"])).fillna("")
    wide.loc["Avg."] = [_union(wide[c].tolist()) for c in wide.columns]
    return wide


def footnotes(part: pd.DataFrame) -> list[str]:
    """The notes under a table: how the mean is taken, then one line per flagged cell of ``part``.

    ``part`` is the slice of :func:`summarise`'s output that the table shows.
    """
    notes = [
        "Mean test UAR over every LOSO fold, single-class folds included (a LOSO mean as the paper reports it); "
        f"{TEST_MARK}: some fold's test subject has one class present, so its UAR is that class's recall "
        "(the note gives the mean without those folds); "
        f"{VAL_MARK}: some fold stopped early on validation data with one class present."
    ]
    for row in part.sort_values(_KEYS).itertuples(index=False):
        cell = f"{row.au} {row.kind}, {row.arch}, {row.feature_set}"
        n_test = int(getattr(row, "single_class_test_folds", 0) or 0)
        n_val = int(getattr(row, "single_class_val_folds", 0) or 0)
        if n_test:
            two = row.mean_uar_two_class
            rest = "no fold has two classes" if pd.isna(two) else (
                f"over the {int(row.folds_two_class)} two-class folds it is {100 * two:.1f}")
            notes.append(f"{TEST_MARK} {cell}: {n_test} of {int(row.folds)} folds test a subject with one class present "
                         f"({row.single_class_test}); the mean shown includes them, {rest}.")
        if n_val:
            notes.append(f"{VAL_MARK} {cell}: {n_val} of {int(row.folds)} folds stopped early on validation data "
                         f"with one class present ({row.single_class_val}).")
    return notes


def to_markdown(frame: pd.DataFrame, *, title: str, marks: pd.DataFrame | None = None,
                notes: Sequence[str] = ()) -> str:
    """A GitHub-flavoured Markdown table (multi-level columns joined with a space).

    Args:
        frame: The numbers (shown with one decimal; NaN as an empty cell).
        title: The heading.
        marks: Strings appended to the cells (same index and columns as ``frame``), e.g. † / ‡.
        notes: Lines printed under the table (footnotes).
    """
    cols = [" ".join(map(str, c)) if isinstance(c, tuple) else str(c) for c in frame.columns]
    head = [str(frame.index.name or ""), *cols]
    lines = [f"### {title}", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for index, row in frame.iterrows():
        tags = [""] * len(row) if marks is None else [str(m) for m in marks.loc[index, frame.columns].to_numpy()]
        cells = ["" if (isinstance(v, float) and np.isnan(v)) else f"{v:.1f}{t}" for v, t in zip(row.to_numpy(), tags, strict=True)]
        lines.append("| " + " | ".join([str(index), *cells]) + " |")
    if notes:
        lines.append("")
        lines.extend(f"{note}  " for note in notes)  # two spaces: a Markdown line break
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
            part = summary[(summary["au"] == au) & (summary["feature_set"] == fs)]
            md1.append(to_markdown(t, title=f"Table I: {au}, {fs} (LOSO mean UAR %)",
                                   marks=table1_marks(summary, au=au, feature_set=fs), notes=footnotes(part)))
            tabs1.append(_flat(t).append_column("au", pa.array([au] * len(t))).append_column("feature_set", pa.array([fs] * len(t))))
    md2, tabs2 = [], []
    for arch in sorted(summary["arch"].unique()):
        t = table2(summary, arch=arch)
        md2.append(to_markdown(t, title=f"Table II: {arch} (LOSO mean UAR %)", marks=table2_marks(summary, arch=arch),
                               notes=footnotes(summary[summary["arch"] == arch])))
        tabs2.append(_flat(t).append_column("arch", pa.array([arch] * len(t))))
    storage.write_parquet(pa.concat_tables(tabs1, promote_options="default"), storage.join(out, "table1.parquet"))
    storage.write_parquet(pa.concat_tables(tabs2, promote_options="default"), storage.join(out, "table2.parquet"))
    text = {"table1": "\n".join(md1), "table2": "\n".join(md2)}
    storage.write_text(storage.join(out, "table1.md"), text["table1"])
    storage.write_text(storage.join(out, "table2.md"), text["table2"])
    return text
