"""`affectlab cv --folds loso` on the real pipeline: parallel Tune trials, one per fold x target."""

from __future__ import annotations

import json
import os

import pandas as pd
import pytest

from affectlab.cli import main
from speech_au_data import SUBJECTS, speech_au_preprocessed

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(__file__)))


@pytest.mark.slow
def test_loso_grid_runs_every_fold_and_writes_tables(tmp_path_factory, ray_local, tmp_path) -> None:
    pre = speech_au_preprocessed(tmp_path_factory)
    main([
        "cv", os.path.join(ROOT, "search_spaces", "au_003.yaml"), "--folds", "loso", "--out", str(tmp_path),
        "--aus", "AU12", "--kinds", "onset,occurrence", "--archs", "stacked",
        "--set", f"data.features={pre}", "--set", "training.max_epochs=2", "--set", "training.prev_rounds=2",
        "--set", "model.kwargs.hidden=8",
    ])
    folds = pd.read_parquet(tmp_path / "cv" / "folds.parquet")
    assert len(folds) == SUBJECTS * 2
    for _, group in folds.groupby("kind"):
        assert sorted(group["test_subject"]) == [f"s{i:02d}" for i in range(1, SUBJECTS + 1)]
    for row in folds.itertuples():
        assert row.test_subject not in row.val_subjects.split(",")
        assert row.run == f"{row.fold}_{row.au}_{row.kind}_{row.arch}_{row.feature_set}"
        summary = json.loads((tmp_path / "cv" / "runs" / row.run / "result.json").read_text())
        assert row.test_subject not in summary["split"]["train"] + summary["split"]["val"]
        assert 0.0 <= row.uar <= 1.0
    summary = pd.read_parquet(tmp_path / "cv" / "summary.parquet")
    assert set(summary["kind"]) == {"onset", "occurrence"} and (summary["folds"] == SUBJECTS).all()
    table1 = (tmp_path / "cv" / "table1.md").read_text()
    assert "| arch | onset | occurrence |" in table1 and "| stacked |" in table1
    assert "| Avg. |" in (tmp_path / "cv" / "table2.md").read_text()
    timing = json.loads((tmp_path / "cv" / "timing.json").read_text())
    assert timing["trainings"] == SUBJECTS * 2 and timing["grid_wall_s"] > 0
    _check_class_presence(pre, folds, table1)


def _check_class_presence(pre: str, folds: pd.DataFrame, table1: str) -> None:
    """Rows record the classes of the test / validation labels; validation has two when it can."""
    from affectlab.training.config import DataConfig
    from affectlab.training.corpus import load_corpus
    from affectlab.training.splits import classes_by_subject

    corpus = load_corpus(DataConfig(features=pre, feature_set="egemaps"))
    for row in folds.itertuples():
        classes = classes_by_subject(corpus.subjects, corpus.labels[f"{row.au}_{row.kind}"])
        assert row.test_classes == len(classes[row.test_subject])
        assert row.val_classes == len(set().union(*(classes[s] for s in row.val_subjects.split(","))))
        best = max(len(c) for s, c in classes.items() if s != row.test_subject)
        assert row.val_classes >= min(best, 2)  # a two-class validation subject whenever one exists
    assert "single-class folds included" in table1  # the tables say how the mean treats them
    flagged = folds[(folds["test_classes"] < 2) | (folds["val_classes"] < 2)]
    for row in flagged.itertuples():
        assert f"{row.au} {row.kind}, {row.arch}, {row.feature_set}" in table1 and row.fold in table1
