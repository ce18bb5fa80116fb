"""Subject-wise splits: train / validation / test, folds for cross-validation, leakage checks.

Every split here is by *subject* (speaker, actor): a subject's recordings are all in one part.
The validation part (used for early stopping) is always carved out of the training subjects,
never out of the test subject(s). :func:`check_disjoint` is the guard every training calls
before it starts; it raises :class:`SubjectLeakageError`.

Seeds: the choice of validation subjects (or recordings) uses ``data.split_seed`` only;
``training.seed`` initialises the model and orders the batches and never moves a subject.

Class presence: with one class present, UAR is that class's recall (a constant predictor of
the present class scores 100 %), so validation subjects are chosen among the training subjects
whose target labels hold at least two classes whenever there are enough of them
(:func:`make_split`, ``classes_by_subject``; computed from the small label arrays by
:func:`classes_by_subject`). :func:`plan_split` is the one place that turns a data config and
the corpus' ids and labels into a split (used by training and by the CV driver).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from affectlab.errors import ConfigError, DatasetError

if TYPE_CHECKING:
    from affectlab.training.config import DataConfig

__all__ = [
    "CLASS_TARGET_TASKS",
    "Fold",
    "Split",
    "SubjectLeakageError",
    "check_disjoint",
    "classes_by_subject",
    "classes_present",
    "loso_folds",
    "make_split",
    "plan_split",
    "samples_by_subject",
]

# data.task values whose targets are per-step classes (UAR is their metric); the validation
# choice prefers subjects with two or more classes for these only (token targets such as
# f0_to_au's AU intensity ids are sequences to decode, not classes to balance)
CLASS_TARGET_TASKS = ("au",)


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

    def part_indices(self, sample_ids: Sequence[str], subjects: Sequence[str]) -> dict[str, list[int]]:
        """Indices of the recordings in each part (``train``, ``val``, ``test``); a recording whose
        subject is in no part (e.g. left out by ``data.subjects``) is in none."""
        val_samples = set(self.val_samples)
        parts: dict[str, list[int]] = {"train": [], "val": [], "test": []}
        for i, (sid, subject) in enumerate(zip(sample_ids, subjects, strict=True)):
            if subject in self.test:
                parts["test"].append(i)
            elif subject in self.val or sid in val_samples:
                parts["val"].append(i)
            elif subject in self.train:
                parts["train"].append(i)
        return parts


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
    samples_by_subject: Mapping[str, Sequence[str]] | None = None,
    val_fraction: float = 0.2,
    classes_by_subject: Mapping[str, frozenset[int]] | None = None,
) -> Split:
    """Split ``subjects`` into train / validation / test.

    Args:
        subjects: All subjects available.
        test: Test subjects (may be empty: then no test part).
        val_subjects: How many training subjects to hold out for validation (chosen with
            ``seed``). When 0, or when no training subject would remain, a ``val_fraction``
            of the training recordings is held out instead.
        seed: Seed of the choice (``data.split_seed``; not the model's initialisation seed).
        samples_by_subject: Recording ids per subject (needed for the fraction hold-out).
        val_fraction: Fraction of training recordings for the fraction hold-out.
        classes_by_subject: Classes present in each subject's target labels. When given, the
            validation subjects are drawn (with ``seed``) among the training subjects with two
            or more classes; only when there are fewer such subjects than ``val_subjects`` are
            the remaining places drawn among the single-class (or unlabelled) ones. When None,
            every training subject is equally likely.

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
        if classes_by_subject is None:
            chosen = sorted(rng.choice(rest, size=val_subjects, replace=False).tolist())
        else:
            chosen = _prefer_two_classes(rest, classes_by_subject, val_subjects, rng)
        split = Split(tuple(s for s in rest if s not in chosen), tuple(chosen), tuple(sorted(test)))
    else:
        split = Split(tuple(rest), (), tuple(sorted(test)), _fraction(rest, samples_by_subject or {}, val_fraction, rng))
    check_disjoint(split)
    return split


def _prefer_two_classes(rest: list[str], classes: Mapping[str, frozenset[int]], count: int,
                        rng: np.random.Generator) -> list[str]:
    """``count`` subjects of ``rest``: first among those with two or more classes, then the others."""
    both = [s for s in rest if len(classes.get(s, frozenset())) >= 2]
    other = [s for s in rest if s not in set(both)]
    if len(both) >= count:
        return sorted(rng.choice(both, size=count, replace=False).tolist())
    return sorted(both + rng.choice(other, size=count - len(both), replace=False).tolist())


def _fraction(train: list[str], samples: Mapping[str, Sequence[str]], fraction: float, rng: np.random.Generator) -> tuple[str, ...]:
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


def samples_by_subject(sample_ids: Sequence[str], subjects: Sequence[str]) -> dict[str, list[str]]:
    """Recording ids per subject, in corpus order (``sample_ids[i]`` belongs to ``subjects[i]``).

    Raises:
        DatasetError: The two sequences differ in length.
    """
    if len(sample_ids) != len(subjects):
        raise DatasetError(f"{len(sample_ids)} sample ids but {len(subjects)} subjects")
    out: dict[str, list[str]] = {}
    for sid, subject in zip(sample_ids, subjects, strict=True):
        out.setdefault(subject, []).append(sid)
    return out


def classes_present(labels: Iterable[np.ndarray]) -> frozenset[int]:
    """The classes (label values >= 0) that occur in any of ``labels``; -1 (unannotated) is not a class."""
    found: set[int] = set()
    for y in labels:
        arr = np.asarray(y).ravel()
        found.update(int(v) for v in np.unique(arr[arr >= 0]))
    return frozenset(found)


def classes_by_subject(subjects: Sequence[str], labels: Sequence[np.ndarray]) -> dict[str, frozenset[int]]:
    """Classes present in each subject's target labels (``labels[i]``: recording i's label array).

    Reads only the label arrays (one small int array per recording), never features.

    Raises:
        DatasetError: The two sequences differ in length.
    """
    if len(subjects) != len(labels):
        raise DatasetError(f"{len(subjects)} subjects but {len(labels)} label arrays")
    grouped: dict[str, list[np.ndarray]] = {}
    for subject, y in zip(subjects, labels, strict=True):
        grouped.setdefault(subject, []).append(y)
    return {subject: classes_present(ys) for subject, ys in grouped.items()}


def plan_split(data: DataConfig, sample_ids: Sequence[str], subjects: Sequence[str],
               labels: Sequence[np.ndarray] | None = None) -> Split:
    """The split a training on ``data`` uses (the one rule for training and the CV driver).

    Args:
        data: The data config: test subjects, validation settings and ``split_seed``.
        sample_ids: Recording ids of the corpus.
        subjects: The subject of each recording.
        labels: The target label array of each recording. For the tasks in
            :data:`CLASS_TARGET_TASKS` the validation subjects are then chosen among those with
            two or more classes (see :func:`make_split`); ignored for other tasks.

    Raises:
        ConfigError: A test subject is not in the data.
        DatasetError: Too few subjects or recordings, or sequences of different lengths.
    """
    by_subject = samples_by_subject(sample_ids, subjects)
    classes = classes_by_subject(subjects, labels) if labels is not None and data.task in CLASS_TARGET_TASKS else None
    return make_split(
        sorted(by_subject),
        data.test_subjects,
        val_subjects=data.validation.subjects,
        val_fraction=data.validation.fraction,
        seed=data.split_seed,
        samples_by_subject=by_subject,
        classes_by_subject=classes,
    )
