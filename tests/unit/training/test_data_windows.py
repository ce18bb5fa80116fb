"""Windows, masks, normalisation and batches, on hand-made per-recording arrays."""

from __future__ import annotations

import numpy as np
import pytest

from affectlab.errors import DatasetError
from affectlab.training.config import parse_experiment
from affectlab.training.corpus import Corpus
from affectlab.training.data import batches, prepare, windows_from_arrow


def _corpus(lengths=(250, 90, 120, 130), subjects=("a", "b", "c", "d"), d: int = 3) -> Corpus:
    rng = np.random.default_rng(0)
    feats, labels, sids = [], [], []
    for i, (n, s) in enumerate(zip(lengths, subjects, strict=True)):
        feats.append((rng.normal(size=(n, d)) * (i + 1) + 10 * i).astype(np.float32))
        y = (np.arange(n) % 7 < 3).astype(np.int64)
        y[-5:] = -1  # trailing frames without a label
        labels.append(y)
        sids.append(f"{s}_u1")
    return Corpus(sids, list(subjects), feats, {"AU17_occurrence": labels}, ["f0", "f1", "f2"], 25.0)


def _cfg(**data):
    return parse_experiment({"base": {"data": {"features": "/x", **data}, "model": {"name": "stacked"}}}).base


def test_windows_cut_pad_and_mask() -> None:
    prepared = prepare(_cfg(test_subjects=["a"], max_steps=100), _corpus())
    test = prepared.test
    # 250 frames, last 5 unlabelled -> 245 -> windows of 100, 100, 45
    assert test.x.shape == (3, 100, 3) and test.mask.sum(axis=1).tolist() == [100, 100, 45]
    assert all(np.array_equal(m, np.arange(100) < m.sum()) for m in test.mask)  # left-aligned
    assert (test.x[2, 45:] == 0).all() and (test.y[2, 45:] == 0).all()
    assert set(test.sample_id) == {"a_u1"} and set(test.subject) == {"a"}


def test_split_never_puts_test_subject_in_train_or_val() -> None:
    prepared = prepare(_cfg(test_subjects=["b"]), _corpus())
    assert "b" not in set(prepared.train.subject) | set(prepared.val.subject)
    assert set(prepared.val.subject) == set(prepared.split.val) and len(prepared.split.val) == 1
    assert prepared.model_kwargs == {"input_dim": 3} and prepared.class_counts.sum() == prepared.train.mask.sum()


def test_per_speaker_normalisation_centres_each_subject() -> None:
    prepared = prepare(_cfg(test_subjects=["a"], max_steps=50), _corpus())
    for windows in (prepared.train, prepared.test):
        for subject in set(windows.subject):
            rows = windows.subject == subject
            frames = windows.x[rows][windows.mask[rows]]
            assert np.allclose(frames.mean(axis=0), 0, atol=0.2)  # trailing frames trimmed: ~0
            assert np.allclose(frames.std(axis=0), 1, atol=0.2)


def test_global_normalisation_uses_training_subjects_only() -> None:
    corpus = _corpus()
    p1 = prepare(_cfg(test_subjects=["a"], normalisation="global"), corpus)
    shifted = Corpus(corpus.sample_ids, corpus.subjects, [corpus.features[0] + 1000, *corpus.features[1:]],
                     corpus.labels, corpus.feature_names, 25.0)
    p2 = prepare(_cfg(test_subjects=["a"], normalisation="global"), shifted)
    assert np.allclose(p1.train.x, p2.train.x)  # the test subject's features do not move the stats
    assert not np.allclose(p1.test.x, p2.test.x)


def test_arrow_round_trip_and_batches_are_seeded() -> None:
    prepared = prepare(_cfg(test_subjects=["a"], max_steps=20), _corpus())
    back = windows_from_arrow(prepared.train.to_arrow())
    for name in ("x", "y", "mask", "sample_id", "subject"):
        assert np.array_equal(getattr(back, name), getattr(prepared.train, name))
    first = [b["y"] for b in batches(prepared.train, 4, seed=1)]
    again = [b["y"] for b in batches(prepared.train, 4, seed=1)]
    other = [b["y"] for b in batches(prepared.train, 4, seed=2)]
    assert all(np.array_equal(a, b) for a, b in zip(first, again, strict=True))
    assert not all(np.array_equal(a, b) for a, b in zip(first, other, strict=True))
    assert sum(len(b) for b in first) == len(prepared.train)


def test_missing_target_column_names_the_available_ones() -> None:
    with pytest.raises(DatasetError, match="AU01_onset.*available: AU17_occurrence"):
        prepare(_cfg(target={"au": "AU01", "kind": "onset"}), _corpus())
