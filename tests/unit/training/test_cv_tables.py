"""CV tables flag single-class folds and state how the mean treats them."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from affectlab.training.corpus import Corpus
from affectlab.training.cv import split_classes
from affectlab.training.tables import TEST_MARK, VAL_MARK, summarise, table1, table1_marks, table2, write_tables

FOLDS = ("loso-s01", "loso-s02", "loso-s03", "loso-s04")


def _rows(single_test: dict[tuple[str, str], set[str]], single_val: dict[tuple[str, str], set[str]]) -> list[dict]:
    """AU12 x (onset, occurrence) x (stacked, encdec) x 4 folds; UAR 0.6, 0.7, 0.8, 0.9 per fold."""
    rows = []
    for kind in ("onset", "occurrence"):
        for arch in ("stacked", "encdec"):
            for fold, uar in zip(FOLDS, (0.6, 0.7, 0.8, 0.9), strict=True):
                rows.append({
                    "au": "AU12", "kind": kind, "arch": arch, "feature_set": "egemaps", "fold": fold, "uar": uar,
                    "test_classes": 1 if fold in single_test.get((kind, arch), set()) else 2,
                    "val_classes": 1 if fold in single_val.get((kind, arch), set()) else 2,
                })
    return rows


def test_summary_counts_single_class_folds_and_gives_both_means() -> None:
    rows = _rows({("onset", "stacked"): {"loso-s01", "loso-s04"}}, {("occurrence", "encdec"): {"loso-s02"}})
    summary = summarise(rows).set_index(["kind", "arch"])
    onset = summary.loc[("onset", "stacked")]
    assert onset["mean_uar"] == pytest.approx(0.75) and onset["folds"] == 4  # every fold in the mean
    assert onset["mean_uar_two_class"] == pytest.approx(0.75) and onset["folds_two_class"] == 2  # (0.7 + 0.8) / 2
    assert onset["single_class_test_folds"] == 2 and onset["single_class_test"] == "loso-s01,loso-s04"
    assert onset["single_class_val_folds"] == 0 and onset["single_class_val"] == ""
    occ = summary.loc[("occurrence", "encdec")]
    assert occ["single_class_val_folds"] == 1 and occ["single_class_test_folds"] == 0
    assert occ["mean_uar_two_class"] == pytest.approx(occ["mean_uar"])  # a val flag does not drop the fold
    # a fold that moves the means apart
    rows = _rows({("onset", "stacked"): {"loso-s04"}}, {})
    onset = summarise(rows).set_index(["kind", "arch"]).loc[("onset", "stacked")]
    assert onset["mean_uar"] == pytest.approx(0.75) and onset["mean_uar_two_class"] == pytest.approx(0.7)


def test_markdown_marks_the_flagged_cells_and_explains_the_mean(tmp_path) -> None:
    rows = _rows({("onset", "stacked"): {"loso-s04"}}, {("occurrence", "encdec"): {"loso-s02"}})
    text = write_tables(rows, str(tmp_path))
    t1 = text["table1"]
    assert f"| stacked | 75.0{TEST_MARK} | 75.0 |" in t1  # arch rows, columns onset | occurrence
    assert f"| encdec | 75.0 | 75.0{VAL_MARK} |" in t1
    assert "single-class folds included" in t1
    assert (f"{TEST_MARK} AU12 onset, stacked, egemaps: 1 of 4 folds test a subject with one class present "
            "(loso-s04); the mean shown includes them, over the 3 two-class folds it is 70.0.") in t1
    assert f"{VAL_MARK} AU12 occurrence, encdec, egemaps: 1 of 4 folds stopped early" in t1 and "(loso-s02)" in t1
    t2 = text["table2"]
    assert f"| AU12 | 75.0 | 75.0{VAL_MARK} |" in t2  # encdec block
    assert f"| Avg. | 75.0{TEST_MARK} | 75.0 |" in t2  # stacked block: Avg. carries its column's mark
    assert (tmp_path / "table1.md").read_text() == t1
    stored = pd.read_parquet(tmp_path / "summary.parquet")
    assert {"mean_uar_two_class", "single_class_test_folds", "single_class_val_folds"} <= set(stored.columns)
    # numbers in the tables stay numbers (marks are Markdown only)
    t = table1(summarise(rows), au="AU12", feature_set="egemaps")
    assert t.loc["stacked", "onset"] == pytest.approx(75.0)


def test_no_flags_without_single_class_folds_or_class_columns() -> None:
    clean = _rows({}, {})
    summary = summarise(clean)
    marks = table1_marks(summary, au="AU12", feature_set="egemaps")
    assert (marks == "").all().all()
    unknown = [{k: v for k, v in r.items() if k not in ("test_classes", "val_classes")} for r in clean]
    summary = summarise(unknown)  # rows of an older CV output: presence unknown, nothing flagged
    assert (summary["single_class_test_folds"] == 0).all() and summary["mean_uar_two_class"].equals(summary["mean_uar"])
    assert (table1_marks(summary, au="AU12", feature_set="egemaps") == "").all().all()
    # negative control: the same rows with one flagged fold do get a mark
    flagged = _rows({("onset", "encdec"): {"loso-s01"}}, {})
    assert table1_marks(summarise(flagged), au="AU12", feature_set="egemaps").loc["encdec", "onset"] == TEST_MARK
    assert list(table2(summarise(flagged), arch="encdec").index) == ["AU12", "Avg."]


def test_all_folds_single_class_has_no_two_class_mean(tmp_path) -> None:
    rows = _rows({(k, a): set(FOLDS) for k in ("onset", "occurrence") for a in ("stacked", "encdec")}, {})
    summary = summarise(rows)
    assert summary["mean_uar_two_class"].isna().all() and (summary["folds_two_class"] == 0).all()
    assert "no fold has two classes" in write_tables(rows, str(tmp_path))["table1"]


def test_split_classes_reads_the_test_and_validation_labels() -> None:
    ys = [np.array([0, 0, 1]), np.array([0, 0, -1]), np.array([1, 1]), np.array([0, -1]), np.array([1])]
    corpus = Corpus(["a1", "b1", "c1", "d1", "d2"], ["a", "b", "c", "d", "d"], [np.zeros((len(y), 2)) for y in ys],
                    {"AU12_onset": ys}, ["f0", "f1"], 25.0)
    assert split_classes(corpus, "AU12_onset", {"test": ["a"], "val": ["b"]}) == (2, 1)
    assert split_classes(corpus, "AU12_onset", {"test": ["b"], "val": ["c", "b"]}) == (1, 2)
    assert split_classes(corpus, "AU12_onset", {"test": ["d"], "val": [], "val_samples": ["d2", "c1"]}) == (2, 1)
