"""The split seed is its own setting; validation subjects with both classes are preferred.

``data.split_seed`` chooses the validation subjects, ``training.seed`` never moves a subject.
With per-subject class presence (from the label arrays), validation subjects are drawn among
training subjects whose labels hold two classes whenever there are enough of them.
"""

from __future__ import annotations

import numpy as np
import pytest

from affectlab.errors import DatasetError
from affectlab.training.config import parse_experiment
from affectlab.training.corpus import Corpus
from affectlab.training.data import prepare
from affectlab.training.splits import (
    classes_by_subject,
    classes_present,
    make_split,
    plan_split,
    samples_by_subject,
)

# s01..s04 hold both classes; s05..s08 one class only (s05, s06: all 0; s07: all 1; s08: 0 and unlabelled)
BOTH = ("s01", "s02", "s03", "s04")
SINGLE = ("s05", "s06", "s07", "s08")
SUBJECTS = BOTH + SINGLE


def _labels(subject: str, n: int, rng: np.random.Generator) -> np.ndarray:
    if subject in BOTH:
        return (rng.random(n) < 0.3).astype(np.int64)
    if subject == "s07":
        return np.ones(n, np.int64)
    y = np.zeros(n, np.int64)
    if subject == "s08":
        y[::4] = -1  # unannotated steps are not a class
    return y


def _corpus(subjects: tuple[str, ...] = SUBJECTS, recordings: int = 2, n: int = 40) -> Corpus:
    rng = np.random.default_rng(0)
    sids, subs, feats, ys = [], [], [], []
    for s in subjects:
        for r in range(recordings):
            sids.append(f"{s}_u{r}")
            subs.append(s)
            feats.append(rng.normal(size=(n, 3)).astype(np.float32))
            ys.append(_labels(s, n, rng))
    return Corpus(sids, subs, feats, {"AU17_occurrence": ys}, ["f0", "f1", "f2"], 25.0)


def _cfg(training: dict | None = None, **data):
    base = {"data": {"features": "/x", **data}, "model": {"name": "stacked"}, "training": training or {}}
    return parse_experiment({"base": base}).base


def test_class_presence_comes_from_the_label_arrays() -> None:
    corpus = _corpus()
    classes = classes_by_subject(corpus.subjects, corpus.labels["AU17_occurrence"])
    assert {s for s, c in classes.items() if c == {0, 1}} == set(BOTH)
    assert classes["s05"] == {0} and classes["s07"] == {1} and classes["s08"] == {0}  # -1 is not a class
    assert classes_present([np.array([-1, -1])]) == frozenset()
    with pytest.raises(DatasetError, match="8 subjects but 7 label arrays"):
        classes_by_subject(SUBJECTS, [np.zeros(2)] * 7)
    with pytest.raises(DatasetError, match="2 sample ids but 1 subjects"):
        samples_by_subject(["a", "b"], ["s01"])


@pytest.mark.parametrize("test", [["s01"], ["s05"], []])
def test_validation_subjects_have_both_classes_when_possible(test: list[str]) -> None:
    corpus = _corpus()
    classes = classes_by_subject(corpus.subjects, corpus.labels["AU17_occurrence"])
    picked, picked_blind = set(), set()
    for seed in range(30):
        split = make_split(SUBJECTS, test, val_subjects=1, seed=seed, classes_by_subject=classes)
        assert set(split.val) <= set(BOTH) - set(test)
        assert not set(split.val) & set(test) and sorted(split.train + split.val + split.test) == sorted(SUBJECTS)
        picked |= set(split.val)
        picked_blind |= set(make_split(SUBJECTS, test, val_subjects=1, seed=seed).val)
    assert picked == set(BOTH) - set(test)  # still a random choice among them
    # negative control: without class presence, single-class subjects do get picked
    assert picked_blind & set(SINGLE)


def test_too_few_two_class_subjects_fill_up_with_the_others() -> None:
    classes = {"a": frozenset({0, 1}), "b": frozenset({0}), "c": frozenset({1}), "d": frozenset({0}), "e": frozenset()}
    for seed in range(10):
        split = make_split(list(classes), ["c"], val_subjects=2, seed=seed, classes_by_subject=classes)
        assert "a" in split.val and len(split.val) == 2 and len(split.train) == 2
    none_both = {s: frozenset({0}) for s in ("a", "b", "c")}
    split = make_split(list(none_both), ["a"], val_subjects=1, seed=0, classes_by_subject=none_both)
    assert len(split.val) == 1 and len(split.train) == 1  # no two-class subject: any will do


def test_prepare_uses_split_seed_not_training_seed() -> None:
    corpus = _corpus()
    base = prepare(_cfg(test_subjects=["s01"]), corpus).split
    for seed in range(1, 6):
        assert prepare(_cfg({"seed": seed}, test_subjects=["s01"]), corpus).split == base
    seen = {prepare(_cfg(test_subjects=["s01"], split_seed=k), corpus).split.val for k in range(8)}
    assert len(seen) > 1  # the split seed does move the validation subject
    assert all(set(v) <= set(BOTH) for v in seen)  # and prepare passes the class presence on


def test_split_seed_also_drives_the_fraction_hold_out() -> None:
    corpus = _corpus(recordings=5)
    cfg = lambda **kw: _cfg(test_subjects=["s01"], validation={"subjects": 0, "fraction": 0.2}, **kw)  # noqa: E731
    base = prepare(cfg(), corpus).split
    assert base.val == () and base.val_samples
    assert prepare(cfg(training={"seed": 3}), corpus).split == base
    assert len({prepare(cfg(split_seed=k), corpus).split.val_samples for k in range(4)}) > 1


def test_plan_split_ignores_labels_of_token_targets() -> None:
    corpus = _corpus()
    labels = corpus.labels["AU17_occurrence"]
    cfg = _cfg(test_subjects=["s01"], split_seed=1)
    token_cfg = parse_experiment({"base": {"data": {"features": "/x", "task": "f0_to_au", "test_subjects": ["s01"],
                                                    "split_seed": 1}, "model": {"name": "f0_to_au"}}}).base
    blind = plan_split(cfg.data, corpus.sample_ids, corpus.subjects)
    assert blind.val[0] in SINGLE  # with split_seed 1 the class-blind draw picks a single-class subject
    assert plan_split(token_cfg.data, corpus.sample_ids, corpus.subjects, labels) == blind
    assert plan_split(cfg.data, corpus.sample_ids, corpus.subjects, labels).val[0] in BOTH


def test_split_seed_is_validated() -> None:
    from affectlab.errors import ConfigError

    with pytest.raises(ConfigError, match="split_seed"):
        _cfg(split_seed=-1)
