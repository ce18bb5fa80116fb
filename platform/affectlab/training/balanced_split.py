"""Identity-disjoint train/test split whose label distribution is the most alike between the parts.

Seed 002 (§3.1.4, SEED-NOTES C.1): videos are drawn at random until about 80 % of the frames are
in training, every video of a person goes to the same part, the draw is repeated several times
and the one with the most similar train/test distribution is kept. This module does that for any
per-row labels (multi-label 0/1 AUs and/or continuous VA), reusable by every task.

>>> split = balanced_identity_split(ids, au=au, va=va, test_fraction=0.2, n_draws=50, seed=0)
>>> split.test_identities, split.test_fraction, split.distance, split.worst_distance

Distance between a train part and a test part (:func:`label_distance`), smaller = more alike:

* AU term: the mean over AU columns of ``|p_train - p_test|``, where ``p`` is the share of rows
  whose value is 1 among the rows where that AU is labelled (NaN = missing, ignored). In [0, 1].
* VA term: for each VA column, both parts are histogrammed on the same ``va_bins`` equal-width bins
  spanning that column's range over all kept rows; the term is the total-variation distance
  ``0.5 * sum |h_train - h_test|`` of the normalised histograms (NaN ignored), averaged over VA
  columns. In [0, 1]; it reacts to differences of mean, spread and shape alike.
* Distance = AU term + VA term (each present term weighted 1). A part with no labelled value in
  some column counts that column as maximally different (1).

A draw: the identities are shuffled; going through them in that order, an identity is moved to
the test part when that brings the test row count closer to ``test_fraction * rows`` (the first
identity always goes to test, at least one identity always stays in train).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from affectlab.errors import ConfigError

__all__ = ["BalancedSplit", "balanced_identity_split", "label_distance"]


@dataclass(frozen=True)
class BalancedSplit:
    """The chosen draw of :func:`balanced_identity_split`.

    Attributes:
        train_identities: Identities of the train part (sorted by their string form).
        test_identities: Identities of the test part (sorted), disjoint from ``train_identities``.
        train_mask: Bool ``(N,)`` over the *input* rows: row is in train.
        test_mask: Bool ``(N,)`` over the input rows: row is in test (dropped rows are in neither).
        kept_mask: Bool ``(N,)``: rows that survived ``drop_frames_without_au``.
        n_dropped: Rows removed by ``drop_frames_without_au`` (0 without it).
        test_fraction: Achieved test rows / kept rows.
        distance: :func:`label_distance` of the chosen draw (the minimum over draws).
        worst_distance: The largest distance over all draws (to show the gain of choosing).
        draw_distances: Distance of every draw, in draw order.
        draw_test_identities: Test identities of every draw, in draw order.
        chosen_draw: Index of the chosen draw (the first one with the minimal distance).
    """

    train_identities: tuple
    test_identities: tuple
    train_mask: np.ndarray
    test_mask: np.ndarray
    kept_mask: np.ndarray
    n_dropped: int
    test_fraction: float
    distance: float
    worst_distance: float
    draw_distances: tuple[float, ...]
    draw_test_identities: tuple[frozenset, ...]
    chosen_draw: int


def _as_2d(name: str, values: np.ndarray | Sequence | None) -> np.ndarray | None:
    if values is None:
        return None
    array = np.asarray(values, dtype=float)
    if array.ndim == 1:
        array = array[:, None]
    if array.ndim != 2:
        raise ConfigError(f"{name}: expected shape (rows,) or (rows, columns), got {array.shape}")
    return array


def _va_edges(va: np.ndarray, bins: int) -> list[np.ndarray]:
    edges = []
    for column in va.T:
        finite = column[np.isfinite(column)]
        lo, hi = (float(finite.min()), float(finite.max())) if finite.size else (0.0, 1.0)
        if hi <= lo:
            hi = lo + 1.0
        edges.append(np.linspace(lo, hi, bins + 1))
    return edges


def _au_rates(au: np.ndarray) -> np.ndarray:
    labelled = np.isfinite(au)
    counts = labelled.sum(axis=0)
    positives = np.where(labelled, au, 0.0).sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, positives / np.maximum(counts, 1), np.nan)


def _histogram(column: np.ndarray, edges: np.ndarray) -> np.ndarray | None:
    finite = column[np.isfinite(column)]
    if finite.size == 0:
        return None
    counts, _ = np.histogram(np.clip(finite, edges[0], edges[-1]), bins=edges)
    return counts / counts.sum()


def label_distance(train_mask: np.ndarray, test_mask: np.ndarray, au: np.ndarray | Sequence | None = None,
                   va: np.ndarray | Sequence | None = None, va_bins: int = 10,
                   va_edges: Sequence[np.ndarray] | None = None) -> float:
    """Distance between the label distributions of two row sets (module docstring has the definition).

    Args:
        train_mask: Bool ``(N,)`` rows of the first part.
        test_mask: Bool ``(N,)`` rows of the second part.
        au: ``(N, A)`` 0/1 AU labels, NaN = missing (or None).
        va: ``(N, D)`` or ``(N,)`` continuous labels, NaN = missing (or None).
        va_bins: Equal-width bins per VA column (when ``va_edges`` is not given).
        va_edges: Bin edges per VA column; default: ``va_bins`` bins over the range of the rows in
            either part.
    """
    au2, va2 = _as_2d("au", au), _as_2d("va", va)
    train_mask, test_mask = np.asarray(train_mask, bool), np.asarray(test_mask, bool)
    total = 0.0
    if au2 is not None:
        gaps = np.abs(_au_rates(au2[train_mask]) - _au_rates(au2[test_mask]))
        total += float(np.mean(np.where(np.isfinite(gaps), gaps, 1.0))) if gaps.size else 0.0
    if va2 is not None and va2.shape[1]:
        edges = list(va_edges) if va_edges is not None else _va_edges(va2[train_mask | test_mask], va_bins)
        terms = []
        for j, column_edges in enumerate(edges):
            a, b = _histogram(va2[train_mask, j], column_edges), _histogram(va2[test_mask, j], column_edges)
            terms.append(1.0 if a is None or b is None else 0.5 * float(np.abs(a - b).sum()))
        total += float(np.mean(terms))
    return total


def balanced_identity_split(identities: Sequence | np.ndarray, au: np.ndarray | Sequence | None = None,
                            va: np.ndarray | Sequence | None = None, test_fraction: float = 0.2,
                            n_draws: int = 20, seed: int = 0, drop_frames_without_au: bool = False,
                            va_bins: int = 10) -> BalancedSplit:
    """Draw ``n_draws`` identity-disjoint splits and keep the one whose labels are the most alike.

    Args:
        identities: Per-row identity (person) ids, length N; rows of one identity never straddle parts.
        au: Per-row multi-label AU matrix ``(N, A)`` of 0/1, NaN where unlabelled (or None).
        va: Per-row continuous labels ``(N, D)`` or ``(N,)``, e.g. valence/arousal, NaN = missing (or None).
        test_fraction: Target share of (kept) rows in test, in (0, 1); about 0.2 in the seed.
        n_draws: K, the number of random draws compared (>= 1).
        seed: Seed of the numpy generator that shuffles identities (same inputs + seed = same split).
        drop_frames_without_au: First remove rows with no positive AU (all 0 or all NaN: the seed's
            "frames without Action Units are not selected"); needs ``au``. Counted in ``n_dropped``.
        va_bins: Equal-width bins per VA column for the VA term of the distance (>= 1).

    Returns:
        A :class:`BalancedSplit` (masks over the input rows).

    Raises:
        ConfigError: Fewer than 2 identities (after dropping), ``test_fraction`` outside (0, 1),
            lengths that differ, ``n_draws`` or ``va_bins`` below 1, no label array, or
            ``drop_frames_without_au`` without ``au``; the message names the argument.
    """
    ids = np.asarray(identities, dtype=object)
    if ids.ndim != 1:
        raise ConfigError(f"identities: expected one id per row (1-D), got shape {ids.shape}")
    n = len(ids)
    au2, va2 = _as_2d("au", au), _as_2d("va", va)
    problems = []
    if au2 is None and va2 is None:
        problems.append("au, va: give at least one label array")
    for name, array in (("au", au2), ("va", va2)):
        if array is not None and len(array) != n:
            problems.append(f"{name}: {len(array)} rows but identities has {n}")
    if isinstance(test_fraction, bool) or not isinstance(test_fraction, (int, float)) or not 0 < test_fraction < 1:
        problems.append(f"test_fraction={test_fraction!r}: must be in (0, 1), e.g. 0.2")
    if isinstance(n_draws, bool) or not isinstance(n_draws, int) or n_draws < 1:
        problems.append(f"n_draws={n_draws!r}: must be an integer >= 1")
    if isinstance(va_bins, bool) or not isinstance(va_bins, int) or va_bins < 1:
        problems.append(f"va_bins={va_bins!r}: must be an integer >= 1")
    if drop_frames_without_au and au2 is None:
        problems.append("drop_frames_without_au=True: needs au")
    if problems:
        raise ConfigError("balanced_identity_split: " + "; ".join(problems))

    kept = np.ones(n, dtype=bool)
    if drop_frames_without_au and au2 is not None:
        kept = np.nan_to_num(au2, nan=0.0).max(axis=1, initial=0.0) >= 1.0
    unique = sorted(set(ids[kept].tolist()), key=str)
    if len(unique) < 2:
        raise ConfigError(f"identities: need at least 2 distinct identities (after dropping rows), got {len(unique)}")
    index = {identity: i for i, identity in enumerate(unique)}
    codes = np.array([index.get(identity, -1) if keep else -1 for identity, keep in zip(ids.tolist(), kept)], dtype=int)
    sizes = np.bincount(codes[codes >= 0], minlength=len(unique))
    rows_per_id = {identity: int(sizes[i]) for i, identity in enumerate(unique)}
    n_kept = int(kept.sum())
    target = test_fraction * n_kept
    edges = _va_edges(va2[kept], va_bins) if va2 is not None else None

    rng = np.random.default_rng(seed)
    draws: list[frozenset] = []
    distances: list[float] = []
    for _ in range(n_draws):
        order = [unique[i] for i in rng.permutation(len(unique))]
        test: list = []
        count = 0
        for identity in order[:-1]:  # the last identity in the order always stays in train
            size = rows_per_id[identity]
            if not test or abs(count + size - target) < abs(count - target):
                test.append(identity)
                count += size
        test_set = frozenset(test)
        test_mask = np.isin(codes, [index[i] for i in test_set])
        distances.append(label_distance(kept & ~test_mask, test_mask, au=au2, va=va2, va_edges=edges))
        draws.append(test_set)

    best = int(np.argmin(distances))
    test_mask = np.isin(codes, [index[i] for i in draws[best]])
    train_mask = kept & ~test_mask
    return BalancedSplit(
        train_identities=tuple(i for i in unique if i not in draws[best]),
        test_identities=tuple(i for i in unique if i in draws[best]),
        train_mask=train_mask, test_mask=test_mask, kept_mask=kept, n_dropped=int(n - n_kept),
        test_fraction=float(test_mask.sum() / n_kept), distance=distances[best], worst_distance=max(distances),
        draw_distances=tuple(distances), draw_test_identities=tuple(draws), chosen_draw=best,
    )
