"""Metrics against scikit-learn / textbook formulas / hand-computed cases, masking and edge cases.

Every classification metric is compared with scikit-learn on random inputs (several class
counts, imbalanced, with classes absent from one side) and on edge cases; CCC (absent from
sklearn) with Lin's formula written two other ways and a hand-computed case; WER / CER with
hand-counted substitutions, insertions and deletions. The ``negative control`` assertions show
that each comparison can fail (the alternative convention gives a different number).
"""

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


def _random_labels(seed: int, k: int, n: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    p = rng.dirichlet(np.ones(k))
    y_true = rng.choice(k, size=n, p=p)
    y_pred = np.where(rng.random(n) < 0.5, y_true, rng.integers(0, k, n))
    return y_true, y_pred


def _quiet(fn, *args, **kwargs):
    """sklearn warns on ill-defined scores; the value is what is compared."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*args, **kwargs)


# ---------------------------------------------------------------------------- classification


@pytest.mark.parametrize("k", [2, 3, 5])
@pytest.mark.parametrize("seed", range(6))
def test_classification_metrics_match_sklearn_on_random_labels(seed: int, k: int) -> None:
    y_true, y_pred = _random_labels(seed, k, n=int(np.random.default_rng(seed).integers(5, 400)))
    assert M.uar(y_true, y_pred) == pytest.approx(_quiet(skm.balanced_accuracy_score, y_true, y_pred))
    assert M.accuracy(y_true, y_pred) == pytest.approx(skm.accuracy_score(y_true, y_pred))
    assert M.f1(y_true, y_pred, average="macro") == pytest.approx(
        _quiet(skm.f1_score, y_true, y_pred, average="macro", zero_division=0))
    np.testing.assert_array_equal(M.confusion(y_true, y_pred), skm.confusion_matrix(y_true, y_pred))
    bt, bp = (y_true == 1).astype(int), (y_pred == 1).astype(int)
    assert M.f1(bt, bp) == pytest.approx(skm.f1_score(bt, bp, zero_division=0))
    assert M.uar(bt, bp) == pytest.approx(_quiet(skm.balanced_accuracy_score, bt, bp))
    acc = M.ConfusionAccumulator(k)
    for part in np.array_split(np.arange(y_true.size), 4):  # batch by batch
        acc.update(y_pred[part], y_true[part])
    got = acc.compute()
    assert got["uar"] == pytest.approx(_quiet(skm.balanced_accuracy_score, y_true, y_pred))
    assert got["accuracy"] == pytest.approx(skm.accuracy_score(y_true, y_pred))
    assert got["f1_macro"] == pytest.approx(_quiet(skm.f1_score, y_true, y_pred, average="macro", zero_division=0))
    np.testing.assert_array_equal(acc.matrix, skm.confusion_matrix(y_true, y_pred, labels=list(range(k))))
    if k == 2:
        assert got["f1"] == pytest.approx(skm.f1_score(y_true, y_pred, zero_division=0))


def test_uar_is_macro_recall(labels) -> None:
    y_true, y_pred = labels
    assert M.uar(y_true, y_pred) == pytest.approx(skm.recall_score(y_true, y_pred, average="macro"))
    assert M.uar(y_true, y_pred) == pytest.approx(skm.balanced_accuracy_score(y_true, y_pred))
    binary_true, binary_pred = (y_true > 0).astype(int), (y_pred > 0).astype(int)
    assert M.uar(binary_true, binary_pred) == pytest.approx(skm.recall_score(binary_true, binary_pred, average="macro"))


def test_uar_with_a_single_true_class_is_that_class_recall() -> None:
    y_true, y_pred = np.zeros(10, int), np.array([0, 0, 0, 1, 1, 0, 0, 0, 0, 0])
    assert M.uar(y_true, y_pred) == pytest.approx(0.8)
    assert M.uar(y_true, y_pred) == pytest.approx(_quiet(skm.balanced_accuracy_score, y_true, y_pred))
    assert M.uar(y_true, y_pred, labels=[0, 1]) == pytest.approx(0.8)
    # a constant predictor of the present class is "perfect": why the CV tables flag such folds
    assert M.uar(y_true, np.zeros(10, int)) == 1.0
    assert math.isnan(M.uar([], []))


def test_uar_leaves_out_a_class_that_is_only_predicted() -> None:
    y_true = np.array([0, 0, 0, 1, 1, 1])
    y_pred = np.array([0, 2, 0, 1, 1, 2])  # class 2 never true
    expected = (2 / 3 + 2 / 3) / 2
    assert M.uar(y_true, y_pred) == pytest.approx(expected)
    assert M.uar(y_true, y_pred) == pytest.approx(_quiet(skm.balanced_accuracy_score, y_true, y_pred))
    acc = M.ConfusionAccumulator(3)
    acc.update(y_pred, y_true)
    assert acc.compute()["uar"] == pytest.approx(expected)
    # negative control: recall_score(average="macro") averages class 2 in with recall 0
    assert _quiet(skm.recall_score, y_true, y_pred, average="macro", zero_division=0) == pytest.approx(4 / 9)
    assert M.uar(y_true, y_pred) != pytest.approx(4 / 9)


def test_macro_f1_with_absent_classes_matches_sklearn() -> None:
    # class 2 only predicted, class 3 only true, class 4 in neither (but among K = 5)
    y_true = np.array([0, 0, 1, 1, 3, 3, 0, 1])
    y_pred = np.array([0, 2, 1, 0, 0, 3, 0, 1])
    default = _quiet(skm.f1_score, y_true, y_pred, average="macro", zero_division=0)
    assert M.f1(y_true, y_pred, average="macro") == pytest.approx(default)
    per_class = _quiet(skm.f1_score, y_true, y_pred, average=None, labels=[0, 1, 2, 3], zero_division=0)
    assert per_class[2] == 0.0 and default == pytest.approx(per_class.mean())  # predicted-only class counts 0
    acc = M.ConfusionAccumulator(5)
    acc.update(y_pred, y_true)
    assert acc.compute()["f1_macro"] == pytest.approx(default)  # class 4 (in neither) is not averaged
    with_absent = _quiet(skm.f1_score, y_true, y_pred, average="macro", labels=[0, 1, 2, 3, 4], zero_division=0)
    assert M.f1(y_true, y_pred, average="macro", labels=[0, 1, 2, 3, 4]) == pytest.approx(with_absent)
    # negative control: naming the absent class lowers the mean, so the two rules are distinguishable
    assert with_absent == pytest.approx(default * 4 / 5) and with_absent < default


def test_macro_f1_of_a_single_class_subject() -> None:
    y_true, y_pred = np.zeros(6, int), np.array([0, 0, 0, 0, 1, 1])
    assert M.f1(y_true, y_pred, average="macro") == pytest.approx(
        _quiet(skm.f1_score, y_true, y_pred, average="macro", zero_division=0))
    acc = M.ConfusionAccumulator(2)
    acc.update(np.zeros(6, int), y_true)  # perfect on the one class present: class 1 in neither
    assert acc.compute()["f1_macro"] == 1.0
    assert acc.compute()["f1"] == 0.0  # binary F1 of an absent positive class: zero_division = 0
    assert _quiet(skm.f1_score, y_true, np.zeros(6, int), zero_division=0) == 0.0


def test_f1_accuracy_confusion_match_sklearn(labels) -> None:
    y_true, y_pred = labels
    assert M.f1(y_true, y_pred, average="macro") == pytest.approx(skm.f1_score(y_true, y_pred, average="macro"))
    bt, bp = (y_true == 2).astype(int), (y_pred == 2).astype(int)
    assert M.f1(bt, bp) == pytest.approx(skm.f1_score(bt, bp))
    assert M.f1(bt, bp, pos_label=0) == pytest.approx(skm.f1_score(bt, bp, pos_label=0))
    assert M.accuracy(y_true, y_pred) == pytest.approx(skm.accuracy_score(y_true, y_pred))
    np.testing.assert_array_equal(M.confusion(y_true, y_pred), skm.confusion_matrix(y_true, y_pred))
    np.testing.assert_array_equal(M.confusion([1, 1], [1, 1], labels=[0, 1]), [[0, 0], [0, 2]])
    np.testing.assert_array_equal(M.confusion([], [], labels=[0, 1]), np.zeros((2, 2)))


def test_f1_and_accuracy_edge_cases() -> None:
    assert M.f1([0, 0, 0], [0, 0, 0]) == 0.0  # no positives anywhere: zero_division = 0
    assert M.f1([0, 0, 0], [0, 1, 0]) == pytest.approx(skm.f1_score([0, 0, 0], [0, 1, 0], zero_division=0)) == 0.0
    assert M.f1([1, 1], [1, 1]) == 1.0
    assert math.isnan(M.f1([], [])) and math.isnan(M.accuracy([], []))
    with pytest.raises(ValueError, match="average='weighted'"):
        M.f1([0, 1], [0, 1], average="weighted")


def test_unannotated_true_labels_are_left_out_of_every_classification_metric(labels) -> None:
    y_true, y_pred = labels
    rng = np.random.default_rng(5)
    masked = np.where(rng.random(y_true.size) < 0.3, -1, y_true)
    keep = masked >= 0
    assert M.uar(masked, y_pred) == pytest.approx(skm.balanced_accuracy_score(y_true[keep], y_pred[keep]))
    assert M.accuracy(masked, y_pred) == pytest.approx(skm.accuracy_score(y_true[keep], y_pred[keep]))
    assert M.f1(masked, y_pred, average="macro") == pytest.approx(
        skm.f1_score(y_true[keep], y_pred[keep], average="macro"))
    np.testing.assert_array_equal(M.confusion(masked, y_pred), skm.confusion_matrix(y_true[keep], y_pred[keep]))
    acc = M.ConfusionAccumulator(3)
    acc.update(y_pred, masked)
    assert acc.compute()["uar"] == pytest.approx(M.uar(y_true[keep], y_pred[keep]))
    # negative control: scored as a class of its own, -1 changes the number
    assert _quiet(skm.balanced_accuracy_score, masked, y_pred) != pytest.approx(M.uar(masked, y_pred))


def test_inputs_of_different_sizes_or_unknown_classes_are_errors() -> None:
    for metric in (M.uar, M.accuracy, M.f1, M.confusion, M.ccc, M.mse, M.mae):
        with pytest.raises(DatasetError, match="y_true has 3 values but y_pred has 1"):
            metric([0, 1, 1], [1])  # numpy would broadcast the single prediction
    with pytest.raises(DatasetError, match=r"\[2\] are not among the classes \[0, 1\]"):
        M.confusion([0, 1], [0, 2], labels=[0, 1])  # sklearn would drop the sample silently
    acc = M.ConfusionAccumulator(2)
    with pytest.raises(DatasetError, match=r"\[5\]"):
        acc.update(np.array([0, 5]), np.array([0, 1]))
    with pytest.raises(ValueError, match="cannot merge 3 classes into 2"):
        acc.merge(M.ConfusionAccumulator(3))
    with pytest.raises(ValueError, match="num_classes=0"):
        M.ConfusionAccumulator(0)


# ---------------------------------------------------------------------------- regression


def _ccc_textbook(x: np.ndarray, y: np.ndarray) -> float:
    rho = np.corrcoef(x, y)[0, 1]
    return 2 * rho * x.std() * y.std() / (x.var() + y.var() + (x.mean() - y.mean()) ** 2)


def _ccc_msd(x: np.ndarray, y: np.ndarray) -> float:
    """Lin (1989) as 1 - E[(x - y)^2] / (var x + var y + (mean x - mean y)^2)."""
    return 1 - np.mean((x - y) ** 2) / (x.var() + y.var() + (x.mean() - y.mean()) ** 2)


@pytest.mark.parametrize("seed", range(5))
def test_ccc_against_two_formulas_on_random_inputs(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = int(rng.integers(3, 300))
    x = rng.normal(size=n) * rng.uniform(0.1, 3)
    y = rng.uniform(-1, 1) * x + rng.normal(scale=rng.uniform(0.1, 2), size=n) + rng.uniform(-1, 1)
    assert M.ccc(x, y) == pytest.approx(_ccc_textbook(x, y))
    assert M.ccc(x, y) == pytest.approx(_ccc_msd(x, y))
    assert M.ccc(x, y) == pytest.approx(M.ccc(y, x))  # symmetric
    # negative control: sample (1/(N-1)) moments give a different number
    cov_unbiased = np.cov(x, y, ddof=1)[0, 1]
    unbiased = 2 * cov_unbiased / (x.var(ddof=1) + y.var(ddof=1) + (x.mean() - y.mean()) ** 2)
    assert M.ccc(x, y) != pytest.approx(unbiased, rel=1e-9, abs=0)


def test_ccc_hand_computed_and_edge_cases() -> None:
    # x = 1,2,3 and y = 2,4,6: var x = 2/3, var y = 8/3, cov = 4/3, means 2 and 4
    assert M.ccc([1, 2, 3], [2, 4, 6]) == pytest.approx((8 / 3) / (2 / 3 + 8 / 3 + 4))
    x = np.random.default_rng(1).normal(size=200)
    centred = x - x.mean()
    assert M.ccc(x, x) == pytest.approx(1.0) and M.ccc(centred, -centred) == pytest.approx(-1.0)
    assert M.ccc(x, x + 1.0) < 1.0  # a bias lowers CCC (not Pearson's r)
    assert M.ccc(np.full(5, 2.0), np.full(5, 2.0)) == 1.0
    assert M.ccc(np.full(5, 2.0), np.full(5, 3.0)) == 0.0
    assert M.ccc(np.full(4, 2.0), [1.0, 2.0, 3.0, 4.0]) == 0.0  # one constant side: no covariance
    assert math.isnan(M.ccc([], []))


@pytest.mark.parametrize("seed", range(4))
def test_mse_mae_match_sklearn(seed: int) -> None:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(int(rng.integers(1, 50)), 3))
    y = x + rng.normal(size=x.shape)
    assert M.mse(x, y) == pytest.approx(skm.mean_squared_error(x, y))
    assert M.mae(x, y) == pytest.approx(skm.mean_absolute_error(x, y))
    assert M.mae([1, 2, 3], [2, 2, 5]) == pytest.approx(1.0) and M.mse([1, 2, 3], [2, 2, 5]) == pytest.approx(5 / 3)
    assert math.isnan(M.mse([], [])) and math.isnan(M.mae([], []))


# ---------------------------------------------------------------------------- WER / CER


@pytest.mark.parametrize(
    ("ref", "hyp", "edits", "words"),
    [
        ("the cat sat", "the cat sat", 0, 3),
        ("the cat sat", "the dog sat", 1, 3),             # 1 substitution
        ("the cat sat", "the sat", 1, 3),                 # 1 deletion
        ("the cat sat", "the cat sat down", 1, 3),        # 1 insertion
        ("the cat sat", "", 3, 3),                        # empty hypothesis: 3 deletions
        ("the cat sat", "a the dog", 3, 3),               # ins + sub + del (or 3 subs): 3
        ("bin blue at f two now", "bin blue f to now please", 3, 6),  # del at, sub two->to, ins please
        ("go", "no no no", 3, 1),                         # 1 sub + 2 ins: WER above 1
        ("  the   cat ", "the cat", 0, 2),                # whitespace is not a word
    ],
)
def test_wer_hand_computed(ref: str, hyp: str, edits: int, words: int) -> None:
    assert M.wer(ref, hyp) == pytest.approx(edits / words)
    assert M.wer([ref], [hyp], average="utterance") == pytest.approx(edits / words)


@pytest.mark.parametrize(
    ("ref", "hyp", "edits", "chars"),
    [
        ("kitten", "sitting", 3, 6),    # k->s, e->i, +g
        ("abc", "abd", 1, 3),
        ("abc", "", 3, 3),
        ("a b", "ab", 1, 3),            # the space is a character
        ("Cat", "cat", 1, 3),           # no case normalisation
    ],
)
def test_cer_hand_computed(ref: str, hyp: str, edits: int, chars: int) -> None:
    assert M.cer(ref, hyp) == pytest.approx(edits / chars)


def test_corpus_rate_is_total_edits_over_total_reference_length() -> None:
    refs, hyps = ["a b c d", "e"], ["a b c d", "f"]
    assert M.wer(refs, hyps) == pytest.approx(1 / 5)               # 1 edit / 5 reference words
    assert M.wer(refs, hyps, average="utterance") == pytest.approx((0 / 4 + 1 / 1) / 2)
    assert M.cer(["abcd", "e"], ["abcd", "f"]) == pytest.approx(1 / 5)
    assert M.cer(["abcd", "e"], ["abcd", "f"], average="utterance") == pytest.approx(0.5)
    with pytest.raises(ValueError, match="average='mean'"):
        M.wer(refs, hyps, average="mean")


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
    hyps = [" ".join(rng.choice(words, size=rng.integers(0, 7))) for _ in range(20)]
    word_edits = sum(_edit_distance(r.split(), h.split()) for r, h in zip(refs, hyps))
    expected_wer = word_edits / sum(len(r.split()) for r in refs)
    expected_cer = sum(_edit_distance(list(r), list(h)) for r, h in zip(refs, hyps)) / sum(len(r) for r in refs)
    assert M.wer(refs, hyps) == pytest.approx(expected_wer)
    assert M.cer(refs, hyps) == pytest.approx(expected_cer)
    per_utt = np.mean([_edit_distance(r.split(), h.split()) / len(r.split()) for r, h in zip(refs, hyps)])
    assert M.wer(refs, hyps, average="utterance") == pytest.approx(per_utt)
    assert M.wer("a b c", "a b c") == 0.0
    assert M.token_error_rate([[2, 3, 4]], [[2, 4]]) == pytest.approx(1 / 3)
    assert M.token_error_rate([[2, 3, 4], [5]], [[2, 4], [6]], average="utterance") == pytest.approx((1 / 3 + 1) / 2)


def test_wer_cer_errors() -> None:
    with pytest.raises(DatasetError, match=r"empty reference text at position\(s\) \[1\]"):
        M.wer(["a", " "], ["a", "b"])
    with pytest.raises(DatasetError, match="empty reference"):
        M.cer("", "a")
    with pytest.raises(DatasetError, match="at least one reference"):
        M.wer([], [])
    with pytest.raises(DatasetError, match="1 reference"):
        M.wer(["a"], ["a", "b"])


# ---------------------------------------------------------------------------- sequences


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
    # an unannotated step (-1) inside the valid part is not scored either
    unlabelled = targets.clone()
    unlabelled[0, 0] = -1
    keep = np.ones(flat_true.size, bool)
    keep[0] = False
    again = M.binary_sequence_metrics(logits, unlabelled, mask)
    assert again["uar"] == pytest.approx(skm.balanced_accuracy_score(flat_true[keep], flat_pred[keep]))


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
    # negative control: the mean of per-batch UARs is not the pooled UAR
    per_batch = np.mean([M.uar(y_true[:100], y_pred[:100]), M.uar(y_true[100:], y_pred[100:])])
    assert per_batch != pytest.approx(got["uar"], rel=1e-6, abs=0)
    empty = M.ConfusionAccumulator(2).compute()
    assert all(math.isnan(v) for v in empty.values())


def test_accumulator_with_masks_matches_sklearn_on_the_valid_steps() -> None:
    rng = np.random.default_rng(7)
    preds, trues, masks = [], [], []
    acc = M.ConfusionAccumulator(4)
    for _ in range(5):
        b, t = int(rng.integers(1, 5)), int(rng.integers(1, 12))
        y = rng.integers(0, 4, (b, t))
        p = np.where(rng.random((b, t)) < 0.5, y, rng.integers(0, 4, (b, t)))
        m = np.arange(t)[None, :] < rng.integers(0, t + 1, b)[:, None]
        acc.update(torch.as_tensor(p), torch.as_tensor(y), torch.as_tensor(m))
        preds.append(p[m]), trues.append(y[m]), masks.append(m)
    yt, yp = np.concatenate(trues), np.concatenate(preds)
    got = acc.compute()
    np.testing.assert_array_equal(acc.matrix, skm.confusion_matrix(yt, yp, labels=[0, 1, 2, 3]))
    assert got["uar"] == pytest.approx(_quiet(skm.balanced_accuracy_score, yt, yp))
    assert got["accuracy"] == pytest.approx(skm.accuracy_score(yt, yp))
    assert got["f1_macro"] == pytest.approx(_quiet(skm.f1_score, yt, yp, average="macro", zero_division=0))


def test_confusion_with_given_label_order_matches_sklearn() -> None:
    y_true, y_pred = _random_labels(3, 4, 200)
    for labels in ([3, 1, 0, 2], [0, 1, 2, 3, 7]):
        np.testing.assert_array_equal(M.confusion(y_true, y_pred, labels=labels),
                                      skm.confusion_matrix(y_true, y_pred, labels=labels))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a single-class subject is expected in CV: no warning per call
        np.testing.assert_array_equal(M.confusion([1, 1, 1], [1, 1, 1]), [[3]])
