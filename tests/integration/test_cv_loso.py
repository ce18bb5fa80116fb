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
