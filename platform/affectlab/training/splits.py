"""Subject-wise splits: train / validation / test, folds for cross-validation, leakage checks.

Every split here is by *subject* (speaker, actor): a subject's recordings are all in one part.
The validation part (used for early stopping) is always carved out of the training subjects,
never out of the test subject(s). :func:`check_disjoint` is the guard every training calls
before it starts; it raises :class:`SubjectLeakageError`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from affectlab.errors import ConfigError, DatasetError

__all__ = ["Fold", "Split", "SubjectLeakageError", "check_disjoint", "loso_folds", "make_split"]


class SubjectLeakageError(DatasetError):
    """A subject appears in more than one of train / validation / test."""


@dataclass(frozen=True)
class Split:
    """Subjects (and, for a fraction hold-out, recordings) of each part.

    ``val_samples`` is set when validation holds out a fraction of the training *recordings*
    (too few subjects); then ``val`` subjects are empty and the validation recordings come from
    training subjects by design (never from test subjects).
    """

    train: tuple[str, ...]
    val: tuple[str, ...]
    test: tuple[str, ...]
    val_samples: tuple[str, ...] = ()


@dataclass(frozen=True)
class Fold:
    """One cross-validation fold: a name (e.g. ``loso-s03``) and its held-out test subjects."""

    name: str
    test: tuple[str, ...]


def check_disjoint(split: Split) -> None:
    """Raise if any subject is shared between the parts of ``split``.

    Raises:
        SubjectLeakageError: Names the shared subjects and the parts that share them.
    """
    parts = {"train": set(split.train), "val": set(split.val), "test": set(split.test)}
    problems = []
    names = list(parts)
    for i, a in enumerate(names):
        for b in names[i + 1 :]:
            shared = sorted(parts[a] & parts[b])
            if shared:
                problems.append(f"{a} and {b} share subject(s) {shared}")
    if problems:
        raise SubjectLeakageError("subject leakage between splits: " + "; ".join(problems))
    if not split.train:
        raise DatasetError("no training subjects left after holding out test and validation subjects")


def make_split(
    subjects: Sequence[str],
    test: Sequence[str],
    *,
    val_subjects: int,
    seed: int,
    samples_by_subject: dict[str, list[str]] | None = None,
    val_fraction: float = 0.2,
) -> Split:
    """Split ``subjects`` into train / validation / test.

    Args:
        subjects: All subjects available.
        test: Test subjects (may be empty: then no test part).
        val_subjects: How many training subjects to hold out for validation (chosen with
            ``seed``). When 0, or when no training subject would remain, a ``val_fraction``
            of the training recordings is held out instead.
        seed: Seed of the choice.
        samples_by_subject: Recording ids per subject (needed for the fraction hold-out).
        val_fraction: Fraction of training recordings for the fraction hold-out.

    Returns:
        The split (checked with :func:`check_disjoint`).

    Raises:
        ConfigError: A test subject is not among ``subjects``.
        SubjectLeakageError: Never for splits built here (the check guards regressions).
    """
    known = sorted(set(subjects))
    missing = sorted(set(test) - set(known))
    if missing:
        raise ConfigError(f"data.test_subjects: {missing} not in the data; subjects: {known}")
    rest = [s for s in known if s not in set(test)]
    rng = np.random.default_rng(seed)
    if 0 < val_subjects < len(rest):
        chosen = sorted(rng.choice(rest, size=val_subjects, replace=False).tolist())
        split = Split(tuple(s for s in rest if s not in chosen), tuple(chosen), tuple(sorted(test)))
    else:
        split = Split(tuple(rest), (), tuple(sorted(test)), _fraction(rest, samples_by_subject or {}, val_fraction, rng))
    check_disjoint(split)
    return split


def _fraction(train: list[str], samples: dict[str, list[str]], fraction: float, rng: np.random.Generator) -> tuple[str, ...]:
    pool = sorted(s for subject in train for s in samples.get(subject, []))
    if len(pool) < 2:
        raise DatasetError(f"too few training recordings ({len(pool)}) to hold out a validation fraction")
    count = min(max(1, round(fraction * len(pool))), len(pool) - 1)
    return tuple(sorted(rng.choice(pool, size=count, replace=False).tolist()))


def loso_folds(subjects: Sequence[str]) -> list[Fold]:
    """Leave-one-subject-out folds, in sorted subject order.

    Raises:
        DatasetError: Fewer than three subjects (one test, one validation, one training).
    """
    known = sorted(set(subjects))
    if len(known) < 3:
        raise DatasetError(f"LOSO needs at least 3 subjects (test, validation, train); got {known}")
    return [Fold(f"loso-{s}", (s,)) for s in known]
