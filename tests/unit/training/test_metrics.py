"""Metrics against scikit-learn / textbook formulas, sequence masking and edge cases."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
from sklearn import metrics as skm

from affectlab.errors import DatasetError
from affectlab.training import metrics as M


@pytest.fixture
def labels() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    y_true = rng.choice(3, size=300, p=[0.6, 0.3, 0.1])
    y_pred = np.where(rng.random(300) < 0.6, y_true, rng.integers(0, 3, 300))
    return y_true, y_pred


def test_uar_is_macro_recall(labels) -> None:
    y_true, y_pred = labels
    assert M.uar(y_true, y_pred) == pytest.approx(skm.recall_score(y_true, y_pred, average="macro"))
    assert M.uar(y_true, y_pred) == pytest.approx(skm.balanced_accuracy_score(y_true, y_pred))
    binary_true, binary_pred = (y_true > 0).astype(int), (y_pred > 0).astype(int)
    assert M.uar(binary_true, binary_pred) == pytest.approx(skm.recall_score(binary_true, binary_pred, average="macro"))


def test_uar_with_a_single_true_class_is_that_class_recall() -> None:
    y_true, y_pred = np.zeros(10, int), np.array([0, 0, 0, 1, 1, 0, 0, 0, 0, 0])
    assert M.uar(y_true, y_pred) == pytest.approx(0.8)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        assert M.uar(y_true, y_pred) == pytest.approx(skm.balanced_accuracy_score(y_true, y_pred))
    assert M.uar(y_true, y_pred, labels=[0, 1]) == pytest.approx(0.8)
    assert math.isnan(M.uar([], []))


def test_f1_accuracy_confusion_match_sklearn(labels) -> None:
    y_true, y_pred = labels
    assert M.f1(y_true, y_pred, average="macro") == pytest.approx(skm.f1_score(y_true, y_pred, average="macro"))
    bt, bp = (y_true == 2).astype(int), (y_pred == 2).astype(int)
    assert M.f1(bt, bp) == pytest.approx(skm.f1_score(bt, bp))
    assert M.accuracy(y_true, y_pred) == pytest.approx(skm.accuracy_score(y_true, y_pred))
    np.testing.assert_array_equal(M.confusion(y_true, y_pred), skm.confusion_matrix(y_true, y_pred))
    np.testing.assert_array_equal(M.confusion([1, 1], [1, 1], labels=[0, 1]), [[0, 0], [0, 2]])


def test_f1_and_accuracy_edge_cases() -> None:
    assert M.f1([0, 0, 0], [0, 0, 0]) == 0.0  # no positives anywhere: zero_division = 0
    assert math.isnan(M.f1([], [])) and math.isnan(M.accuracy([], []))


def _ccc_textbook(x: np.ndarray, y: np.ndarray) -> float:
    rho = np.corrcoef(x, y)[0, 1]
    return 2 * rho * x.std() * y.std() / (x.var() + y.var() + (x.mean() - y.mean()) ** 2)


def test_regression_metrics() -> None:
    rng = np.random.default_rng(1)
    x = rng.normal(size=200)
    y = 0.7 * x + rng.normal(scale=0.5, size=200) + 0.3
    assert M.ccc(x, y) == pytest.approx(_ccc_textbook(x, y))
    centred = x - x.mean()
    assert M.ccc(x, x) == pytest.approx(1.0) and M.ccc(centred, -centred) == pytest.approx(-1.0)
    assert M.ccc(np.full(5, 2.0), np.full(5, 2.0)) == 1.0
    assert M.ccc(np.full(5, 2.0), np.full(5, 3.0)) == 0.0
    assert math.isnan(M.ccc([], []))
    assert M.mse(x, y) == pytest.approx(skm.mean_squared_error(x, y))
    assert M.mae(x, y) == pytest.approx(skm.mean_absolute_error(x, y))


def _edit_distance(ref: list[str], hyp: list[str]) -> int:
    prev = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, start=1):
        cur = [i]
        for j, h in enumerate(hyp, start=1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (r != h)))
        prev = cur
    return prev[-1]


def test_wer_cer_against_levenshtein() -> None:
    rng = np.random.default_rng(2)
    words = ["je", "suis", "très", "content", "aujourd'hui", "non"]
    refs = [" ".join(rng.choice(words, size=rng.integers(2, 7))) for _ in range(20)]
    hyps = [" ".join(rng.choice(words, size=rng.integers(1, 7))) for _ in range(20)]
    word_edits = sum(_edit_distance(r.split(), h.split()) for r, h in zip(refs, hyps))
    expected_wer = word_edits / sum(len(r.split()) for r in refs)
    expected_cer = sum(_edit_distance(list(r), list(h)) for r, h in zip(refs, hyps)) / sum(len(r) for r in refs)
    assert M.wer(refs, hyps) == pytest.approx(expected_wer)
    assert M.cer(refs, hyps) == pytest.approx(expected_cer)
    assert M.wer("a b c", "a b c") == 0.0
    assert M.token_error_rate([[2, 3, 4]], [[2, 4]]) == pytest.approx(1 / 3)
    with pytest.raises(DatasetError, match="empty reference"):
        M.wer([""], ["a"])
    with pytest.raises(DatasetError, match="1 reference"):
        M.wer(["a"], ["a", "b"])


def test_sequence_metrics_use_valid_steps_only() -> None:
    gen = torch.Generator().manual_seed(0)
    logits = torch.randn(3, 8, generator=gen)
    targets = torch.randint(0, 2, (3, 8), generator=gen)
    mask = torch.arange(8)[None, :] < torch.tensor([8, 5, 2])[:, None]
    pred = (torch.sigmoid(logits) > 0.5).long()
    got = M.binary_sequence_metrics(logits, targets, mask)
    flat_true, flat_pred = targets[mask].numpy(), pred[mask].numpy()
    assert got["uar"] == pytest.approx(skm.balanced_accuracy_score(flat_true, flat_pred))
    assert got["f1"] == pytest.approx(skm.f1_score(flat_true, flat_pred))
    assert got["accuracy"] == pytest.approx(skm.accuracy_score(flat_true, flat_pred))
    assert got["f1_macro"] == pytest.approx(skm.f1_score(flat_true, flat_pred, average="macro"))
    wrong_padding = logits.masked_fill(~mask, 50.0)
    assert M.binary_sequence_metrics(wrong_padding, targets.masked_fill(~mask, 0), mask) == got
    np.testing.assert_array_equal(M.valid_steps(targets, mask), flat_true)
    with pytest.raises(DatasetError, match="do not match"):
        M.valid_steps(targets[:, :4], mask)


def test_accumulator_over_batches_equals_pooled_metrics(labels) -> None:
    y_true, y_pred = labels
    acc, other = M.ConfusionAccumulator(3), M.ConfusionAccumulator(3)
    acc.update(y_pred[:100], y_true[:100])
    other.update(y_pred[100:], y_true[100:])
    acc.merge(other)
    got = acc.compute()
    assert got["uar"] == pytest.approx(M.uar(y_true, y_pred))
    assert got["f1_macro"] == pytest.approx(skm.f1_score(y_true, y_pred, average="macro"))
    assert "f1" not in got
    empty = M.ConfusionAccumulator(2).compute()
    assert all(math.isnan(v) for v in empty.values())
