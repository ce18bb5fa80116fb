"""Subject-wise splits, LOSO folds, the leakage guard, the CV grid and the CV tables."""

from __future__ import annotations

import pytest

from affectlab.errors import ConfigError, DatasetError
from affectlab.training.config import parse_experiment
from affectlab.training.cv import check_fold, cv_configs
from affectlab.training.splits import Fold, Split, SubjectLeakageError, check_disjoint, loso_folds, make_split
from affectlab.training.tables import summarise, table1, table2, to_markdown

SUBJECTS = ["s01", "s02", "s03", "s04", "s05"]


@pytest.mark.parametrize("test", [["s01"], ["s03"], ["s05"], []])
def test_make_split_holds_out_a_training_subject_for_validation(test: list[str]) -> None:
    split = make_split(SUBJECTS, test, val_subjects=1, seed=0)
    assert set(split.test) == set(test) and len(split.val) == 1
    assert not set(split.val) & set(test) and not set(split.train) & (set(split.val) | set(test))
    assert sorted(split.train + split.val + split.test) == SUBJECTS
    assert make_split(SUBJECTS, test, val_subjects=1, seed=0) == split  # seeded


def test_fraction_fallback_stays_inside_training_subjects() -> None:
    samples = {"s01": ["s01_a", "s01_b"], "s02": ["s02_a", "s02_b", "s02_c"]}
    split = make_split(["s01", "s02"], ["s01"], val_subjects=1, seed=0, samples_by_subject=samples, val_fraction=0.34)
    assert split.val == () and split.train == ("s02",) and len(split.val_samples) == 1
    assert split.val_samples[0].startswith("s02_")


def test_unknown_test_subject_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="s99"):
        make_split(SUBJECTS, ["s99"], val_subjects=1, seed=0)


def test_leakage_is_detected_with_a_specific_error() -> None:
    with pytest.raises(SubjectLeakageError, match="train and test share subject"):
        check_disjoint(Split(("s01", "s02"), ("s03",), ("s02",)))
    with pytest.raises(SubjectLeakageError, match="val and test"):
        check_fold(Fold("loso-s03", ("s03",)), Split(("s01",), ("s03",), ("s03",)))
    with pytest.raises(SubjectLeakageError, match="expected"):
        check_fold(Fold("loso-s03", ("s03",)), Split(("s01",), ("s02",), ("s04",)))
    check_fold(Fold("loso-s03", ("s03",)), Split(("s01",), ("s02",), ("s03",)))


def test_loso_folds() -> None:
    folds = loso_folds(["s02", "s01", "s03", "s01"])
    assert [f.test for f in folds] == [("s01",), ("s02",), ("s03",)] and folds[0].name == "loso-s01"
    with pytest.raises(DatasetError, match="at least 3 subjects"):
        loso_folds(["s01", "s02"])


def test_cv_grid_configs() -> None:
    base = parse_experiment({"base": {"data": {"features": "/d"}, "model": {"name": "stacked_intraatt", "kwargs": {"window": 5, "hidden": 8}}}}).base
    grid = cv_configs(base, loso_folds(SUBJECTS[:3]), aus=["AU01", "AU12"], kinds=["onset"], archs=["stacked_intraatt", "stacked"], feature_sets=["egemaps"])
    assert len(grid) == 3 * 2 * 2
    names = {cfg.name for _, cfg in grid}
    assert len(names) == len(grid)
    for point, cfg in grid:
        assert cfg.data.test_subjects == tuple(point["test"]) and cfg.scaling.runner == "in_process"
        assert cfg.model.name == point["arch"] and cfg.data.target.au == point["au"]
        # keywords of another architecture are dropped, shared ones kept
        assert cfg.model.kwargs == ({"window": 5, "hidden": 8} if point["arch"] == "stacked_intraatt" else {"hidden": 8})
    with pytest.raises(ConfigError, match="--kinds"):
        cv_configs(base, loso_folds(SUBJECTS[:3]), aus=["AU01"], kinds=["peak"], archs=["stacked"], feature_sets=["egemaps"])


def test_tables_have_the_paper_layout() -> None:
    rows = [
        {"au": au, "kind": kind, "arch": arch, "feature_set": fs, "fold": f, "uar": u}
        for au, base in (("AU01", 0.6), ("AU17", 0.8))
        for kind in ("occurrence", "onset")
        for arch, bonus in (("stacked", 0.0), ("enc_interatt_dec", 0.05))
        for fs in ("egemaps", "compare")
        for f, u in (("loso-s01", base + bonus), ("loso-s02", base + bonus + 0.1))
    ]
    summary = summarise(rows)
    assert len(summary) == 16 and (summary["folds"] == 2).all()
    t1 = table1(summary, au="AU17", feature_set="egemaps")
    assert list(t1.columns) == ["onset", "occurrence"] and set(t1.index) == {"stacked", "enc_interatt_dec"}
    assert t1.loc["enc_interatt_dec", "onset"] == pytest.approx(90.0)
    t2 = table2(summary, arch="stacked")
    assert list(t2.index) == ["AU01", "AU17", "Avg."]
    assert t2.loc["Avg.", ("compare", "occurrence")] == pytest.approx(75.0)
    md = to_markdown(t2, title="Table II")
    assert "| AU17 | 85.0 |" in md and "compare onset" in md
