"""The identity-disjoint, label-balanced splitter (seed 002 §3.1.4) against independent recomputation."""

from __future__ import annotations

import numpy as np
import pytest

from affectlab.errors import ConfigError
from affectlab.training.balanced_split import balanced_identity_split, label_distance


def reference_distance(au: np.ndarray | None, va: np.ndarray | None, train: np.ndarray, test: np.ndarray,
                       kept: np.ndarray, bins: int = 10) -> float:
    """The documented distance, written again from the docstring: mean |AU rate gap| + mean VA TV distance."""
    total = 0.0
    if au is not None:
        total += float(np.mean(np.abs(np.nanmean(au[train], axis=0) - np.nanmean(au[test], axis=0))))
    if va is not None:
        tv = []
        for j in range(va.shape[1]):
            edges = np.linspace(va[kept, j].min(), va[kept, j].max(), bins + 1)
            h_train = np.histogram(va[train, j], bins=edges)[0] / train.sum()
            h_test = np.histogram(va[test, j], bins=edges)[0] / test.sum()
            tv.append(0.5 * np.abs(h_train - h_test).sum())
        total += float(np.mean(tv))
    return total


def rare_au_corpus(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """20 identities x 50 rows; AU0 common everywhere, AU1 present only in identities 0..3 (rate 0.8)."""
    rng = np.random.default_rng(seed)
    ids = np.repeat(np.arange(20), 50)
    au = np.zeros((1000, 2))
    au[:, 0] = rng.random(1000) < 0.3
    rare_rows = ids < 4
    au[rare_rows, 1] = rng.random(rare_rows.sum()) < 0.8
    va = np.column_stack([rng.normal(ids / 20, 0.3), rng.normal(0, 0.3, 1000)])
    return ids, au, va


def test_identities_never_shared_and_fraction_near_target() -> None:
    ids, au, va = rare_au_corpus()
    split = balanced_identity_split(ids, au=au, va=va, test_fraction=0.2, n_draws=30, seed=1)
    assert not set(split.train_identities) & set(split.test_identities)
    assert set(split.train_identities) | set(split.test_identities) == set(range(20))
    assert not np.any(split.train_mask & split.test_mask)
    assert set(ids[split.test_mask]) == set(split.test_identities)
    assert set(ids[split.train_mask]) == set(split.train_identities)
    assert split.test_fraction == pytest.approx(0.2, abs=0.03)
    for draw in split.draw_test_identities:  # every draw is identity-disjoint and non-trivial
        assert 0 < len(draw) < 20
    again = balanced_identity_split(ids, au=au, va=va, test_fraction=0.2, n_draws=30, seed=1)
    assert again.test_identities == split.test_identities  # reproducible from the seed


def test_chosen_draw_has_the_smallest_recomputed_distance() -> None:
    ids, au, va = rare_au_corpus()
    split = balanced_identity_split(ids, au=au, va=va, n_draws=25, seed=7)
    kept = np.ones(len(ids), bool)
    recomputed = []
    for draw in split.draw_test_identities:
        test = np.isin(ids, list(draw))
        recomputed.append(reference_distance(au, va, ~test, test, kept))
        assert label_distance(~test, test, au=au, va=va) == pytest.approx(recomputed[-1])
    assert np.allclose(recomputed, split.draw_distances)
    assert all(split.distance <= d + 1e-12 for d in recomputed)
    assert split.distance == pytest.approx(min(recomputed))
    assert split.worst_distance == pytest.approx(max(recomputed))
    assert split.draw_distances[split.chosen_draw] == split.distance


def test_rare_au_negative_control_is_balanced_by_choosing() -> None:
    # A random draw often puts 0 or 2+ of the 4 rare-AU identities in test; choosing must fix that.
    ids, au, _ = rare_au_corpus(seed=3)
    split = balanced_identity_split(ids, au=au, n_draws=40, seed=0)
    assert split.worst_distance > 0.1  # the control: some random draws are badly unbalanced
    assert split.distance < split.worst_distance / 3
    assert split.distance < float(np.median(split.draw_distances))
    rare_test = len(set(split.test_identities) & {0, 1, 2, 3})
    assert rare_test == 1  # 1 of 4 rare identities in a 4-of-20 test set matches the overall rate best
    gap = abs(au[split.train_mask, 1].mean() - au[split.test_mask, 1].mean())
    assert gap < 0.1


def test_va_only_split() -> None:
    ids, _, va = rare_au_corpus()
    split = balanced_identity_split(ids, va=va[:, 0], n_draws=20, seed=2)  # 1-D VA is accepted
    assert split.distance <= min(split.draw_distances) and split.distance < split.worst_distance


def test_drop_frames_without_au_removes_the_right_rows() -> None:
    ids = np.array(["a", "a", "a", "b", "b", "b", "c", "c", "c", "d", "d", "d"])
    nan = np.nan
    au = np.array([
        [1, 0], [0, 0], [nan, nan],   # a: keep, drop (no AU), drop (all missing)
        [0, 1], [nan, 1], [0, nan],   # b: keep, keep, drop
        [1, 1], [1, 0], [0, 1],       # c: all kept
        [0, 0], [0, 0], [nan, 0],     # d: all dropped -> identity d disappears
    ])
    split = balanced_identity_split(ids, au=au, test_fraction=0.3, n_draws=5, drop_frames_without_au=True)
    expected = np.array([1, 0, 0, 1, 1, 0, 1, 1, 1, 0, 0, 0], bool)
    assert np.array_equal(split.kept_mask, expected)
    assert split.n_dropped == 6
    assert np.array_equal(split.train_mask | split.test_mask, expected)
    assert set(split.train_identities) | set(split.test_identities) == {"a", "b", "c"}
    assert split.test_fraction == pytest.approx(split.test_mask.sum() / 6)
    kept_all = balanced_identity_split(ids, au=au, test_fraction=0.3, n_draws=5)
    assert kept_all.n_dropped == 0 and kept_all.kept_mask.all()


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"identities": ["a"] * 5}, r"identities: need at least 2 distinct identities"),
    ({"test_fraction": 0.0}, r"test_fraction=0.0: must be in \(0, 1\)"),
    ({"test_fraction": 1.0}, r"test_fraction=1.0: must be in \(0, 1\)"),
    ({"test_fraction": -0.2}, r"test_fraction=-0.2"),
    ({"n_draws": 0}, r"n_draws=0: must be an integer >= 1"),
    ({"au": np.zeros((4, 2))}, r"au: 4 rows but identities has 5"),
    ({"va": np.zeros(6)}, r"va: 6 rows but identities has 5"),
    ({"au": None, "va": None}, r"au, va: give at least one label array"),
    ({"au": None, "va": np.zeros(5), "drop_frames_without_au": True}, r"drop_frames_without_au=True: needs au"),
])
def test_errors_name_the_argument(kwargs: dict, message: str) -> None:
    args = {"identities": ["a", "a", "b", "b", "c"], "au": np.ones((5, 2)), "test_fraction": 0.2, "n_draws": 3}
    args.update(kwargs)
    with pytest.raises(ConfigError, match=message):
        balanced_identity_split(**args)


def test_fewer_than_two_identities_after_dropping() -> None:
    au = np.array([[1.0], [1.0], [0.0], [0.0]])
    with pytest.raises(ConfigError, match=r"identities: need at least 2 distinct identities \(after dropping"):
        balanced_identity_split(["a", "a", "b", "b"], au=au, drop_frames_without_au=True)
