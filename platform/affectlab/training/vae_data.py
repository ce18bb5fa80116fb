"""The data of ``data.task: vae_lma``: LMA feature rows with PAD, outliers, split and scaling.

1. **Rows**: ``data.features`` names an ``lma`` dataset card (its YAML, or the directory holding
   ``dataset.yaml``); the card's table is read through the ``lma`` adapter (features in the
   card's ``options.features`` order, PAD from the ``pleasure, arousal, dominance`` columns).
   Rows without the three PAD values are left out (the regressors need them).
2. **Split** (``data.vae.split``): ``subject`` (default) puts whole subjects in the test part, a
   seeded draw of ``ceil(test_fraction * subjects)`` of them (``data.split_seed``). Subject-disjoint
   by default because each subject's body adds an offset to the distances and volumes: rows of
   one subject on both sides would let the VAE and the regressors profit from having seen that
   body, and overstate what generalises to a new person. ``random`` draws ``test_fraction`` of the
   rows (seeded), the likely protocol of the seed (whose ratio is not given). The validation
   part (early stopping only) is a seeded ``val_fraction`` of the remaining training rows.
3. **Outliers** (``data.vae.outliers``): per-feature bounds fitted on the training rows (IQR:
   ``[Q1 - k IQR, Q3 + k IQR]``; z-score: ``|x - mean| <= k std``); a row of any part with any
   feature outside them is removed. The counts removed per part go to ``result.json``.
4. **Scaling**: with ``data.vae.standardise`` every feature is z-scored with the mean / std of
   the training rows left after step 3 (a constant feature keeps std 1).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from affectlab import storage
from affectlab.errors import DatasetError
from affectlab.training.config import ExperimentConfig

__all__ = ["PAD_AXES", "VaeData", "load_lma_rows", "load_vae_data", "outlier_mask", "split_rows"]

PAD_AXES = ("pleasure", "arousal", "dominance")
PARTS = ("train", "val", "test")


@dataclass
class VaeData:
    """The rows of each part (raw features, PAD, ids) and the training rows' scaling."""

    feature_names: list[str]
    parts: dict[str, pd.DataFrame]  # part -> sample_id, subject, pleasure, arousal, dominance
    raw: dict[str, np.ndarray]  # part -> (N, D) float64, raw units
    mean: np.ndarray  # (D,)
    std: np.ndarray  # (D,)
    outliers: dict[str, Any] = field(default_factory=dict)

    def scaled(self, part: str) -> np.ndarray:
        """The part's features standardised with the training statistics, float32 (N, D)."""
        return ((self.raw[part] - self.mean) / self.std).astype(np.float32)

    def pad(self, part: str) -> np.ndarray:
        """PAD (N, 3) of the part."""
        return self.parts[part][list(PAD_AXES)].to_numpy(np.float64)

    def summary(self) -> dict[str, Any]:
        """Counts and settings for ``result.json``."""
        return {"features": self.feature_names, "rows": {p: len(f) for p, f in self.parts.items()},
                "outliers": self.outliers}


def _card_path(features: str) -> str:
    if features.endswith((".yaml", ".yml")):
        return features
    return storage.join(features, "dataset.yaml")


def load_lma_rows(features: str) -> tuple[list[str], pd.DataFrame, np.ndarray]:
    """``(feature names, rows (sample_id, subject, P, A, D), features (N, D))`` of an ``lma`` card.

    Raises:
        DatasetError: The card is not an ``lma`` card, or no row has all three PAD values.
    """
    from affectlab.data.cards import build_manifest, load_card

    path = _card_path(features)
    if not storage.exists(path):
        raise DatasetError(f"data.features={features!r}: no dataset card at {path} (data.task vae_lma reads an "
                           "lma dataset card, e.g. the dataset.yaml written by `affectlab synth lma`)")
    loaded = load_card(path)
    if loaded.adapter.name != "lma":
        raise DatasetError(f"data.features={features!r}: card {path} uses adapter {loaded.adapter.name!r}; "
                           "data.task vae_lma needs an 'lma' card")
    manifest = build_manifest(loaded).to_pandas()
    names = list(loaded.options.features)
    columns = {"valence": "pleasure", "arousal": "arousal", "dominance": "dominance"}
    missing = [c for c in columns if c not in manifest.columns]
    if missing:
        raise DatasetError(f"{path}: the table has no PAD column(s) {[columns[c] for c in missing]}")
    rows = manifest.rename(columns=columns)[["sample_id", "subject", *PAD_AXES]]
    keep = rows[list(PAD_AXES)].notna().all(axis=1).to_numpy()
    if not keep.any():
        raise DatasetError(f"{path}: no row has all of {list(PAD_AXES)}")
    matrix = np.stack(manifest["features"].to_numpy()).astype(np.float64)
    return names, rows[keep].reset_index(drop=True), matrix[keep]


def split_rows(rows: pd.DataFrame, *, how: str, test_fraction: float, val_fraction: float,
               seed: int) -> dict[str, np.ndarray]:
    """Row indices of ``train``, ``val`` and ``test`` (module docstring, step 2).

    Raises:
        DatasetError: Too few subjects (or rows) to leave a training and a test part.
    """
    rng = np.random.default_rng(seed)
    n = len(rows)
    if how == "subject":
        subjects = np.array(sorted(rows["subject"].unique()))
        if len(subjects) < 2:
            raise DatasetError(f"data.vae.split=subject needs >= 2 subjects, the corpus has {list(subjects)}; "
                               "use data.vae.split=random")
        test_subjects = set(rng.permutation(subjects)[:max(1, min(len(subjects) - 1,
                                                                 math.ceil(test_fraction * len(subjects))))])
        is_test = rows["subject"].isin(test_subjects).to_numpy()
    else:
        is_test = np.zeros(n, bool)
        is_test[rng.permutation(n)[:max(1, round(test_fraction * n))]] = True
    rest = rng.permutation(np.flatnonzero(~is_test))
    n_val = max(1, round(val_fraction * len(rest)))
    if len(rest) - n_val < 2:
        raise DatasetError(f"only {len(rest)} training rows before validation; add rows or lower "
                           "data.vae.test_fraction")
    return {"train": np.sort(rest[n_val:]), "val": np.sort(rest[:n_val]), "test": np.flatnonzero(is_test)}


def outlier_mask(fit: np.ndarray, x: np.ndarray, *, method: str, threshold: float) -> np.ndarray:
    """Rows of ``x`` (N, D) to keep under bounds fitted on ``fit`` (M, D) (step 3).

    Raises:
        ValueError: Unknown method (the valid ones listed).
    """
    if method == "none":
        return np.ones(len(x), bool)
    if method == "iqr":
        q1, q3 = np.percentile(fit, [25, 75], axis=0)
        low, high = q1 - threshold * (q3 - q1), q3 + threshold * (q3 - q1)
    elif method == "zscore":
        mean, std = fit.mean(axis=0), fit.std(axis=0)
        low, high = mean - threshold * std, mean + threshold * std
    else:
        raise ValueError(f"data.vae.outliers={method!r} is not one of ['none', 'iqr', 'zscore']")
    return ((x >= low) & (x <= high)).all(axis=1)


def load_vae_data(config: ExperimentConfig) -> VaeData:
    """Read, split, clean and scale the rows (see the module docstring)."""
    s = config.data.vae
    names, rows, matrix = load_lma_rows(config.data.features)
    index = split_rows(rows, how=s.split, test_fraction=s.test_fraction, val_fraction=s.val_fraction,
                       seed=config.data.split_seed)
    fit = matrix[index["train"]]
    parts, raw, removed = {}, {}, {}
    for part in PARTS:
        keep = outlier_mask(fit, matrix[index[part]], method=s.outliers, threshold=s.threshold())
        removed[part] = int((~keep).sum())
        parts[part] = rows.iloc[index[part][keep]].reset_index(drop=True)
        raw[part] = matrix[index[part][keep]]
    if len(raw["train"]) < 2 or len(raw["test"]) == 0:
        raise DatasetError(f"after outlier removal ({s.outliers}, k={s.threshold()}) {len(raw['train'])} training "
                           f"and {len(raw['test'])} test rows are left; raise data.vae.outlier_threshold")
    mean, std = raw["train"].mean(axis=0), raw["train"].std(axis=0)
    if not s.standardise:
        mean, std = np.zeros_like(mean), np.ones_like(std)
    std = np.where(std > 0, std, 1.0)
    outliers = {"method": s.outliers, "threshold": s.threshold(), "removed": removed,
                "removed_total": sum(removed.values())}
    return VaeData(names, parts, raw, mean, std, outliers)
