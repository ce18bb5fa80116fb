"""XGBoost regressors between PAD and the LMA features, and the generation round trip (seed 004).

All models are ``xgboost.XGBRegressor(**data.vae.xgb)``, fitted on the training rows only:

* **PAD -> latent**: one regressor per latent dimension, targets the encoder's ``mu``;
* **PAD -> feature** (direct): one regressor per feature, raw units;
* **LMA -> PAD**: one regressor per axis (the seed's ``l2p``, ``l2a``, ``l2d``) on features
  z-scored with the training rows' mean / std (the seed's separate ``scaler``);
* **correlation-selected**: per feature, the PAD axes whose Pearson |r| with it on the training
  rows is >= ``correlation_threshold``; the feature is regressed on those axes only (none
  selected: the training mean is predicted);
* **round trip**: PAD -> latent (XGB) -> decoder -> features (raw) -> scaler -> LMA -> PAD -> PAD'.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import xgboost

__all__ = ["Regressors", "fit_regressors", "pearson", "select_axes"]


def pearson(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Pearson r of every column of ``x`` (N, D) with every column of ``y`` (N, K): (D, K); 0 for a
    constant column."""
    xc, yc = x - x.mean(axis=0), y - y.mean(axis=0)
    denom = np.sqrt((xc**2).sum(axis=0))[:, None] * np.sqrt((yc**2).sum(axis=0))[None, :]
    with np.errstate(invalid="ignore", divide="ignore"):
        r = (xc.T @ yc) / denom
    return np.nan_to_num(r)


def select_axes(r: np.ndarray, threshold: float) -> list[list[int]]:
    """Per feature (row of ``r`` (D, 3)), the axes with ``|r| >= threshold``."""
    return [[k for k in range(r.shape[1]) if abs(r[j, k]) >= threshold] for j in range(r.shape[0])]


class Regressors:
    """The fitted regressors (see the module docstring)."""

    def __init__(self, params: dict[str, Any], mean: np.ndarray, std: np.ndarray, threshold: float) -> None:
        self.params = {"verbosity": 0, "n_jobs": 1, "random_state": 0, **params}
        self.mean, self.std, self.threshold = mean, std, threshold
        self.pad_to_latent: list[xgboost.XGBRegressor] = []
        self.pad_to_feature: list[xgboost.XGBRegressor] = []
        self.lma_to_pad: list[xgboost.XGBRegressor] = []
        self.selected: list[list[int]] = []
        self.selected_models: list[xgboost.XGBRegressor | float] = []
        self.correlation = np.zeros((0, 3))

    def _fit(self, x: np.ndarray, y: np.ndarray) -> xgboost.XGBRegressor:
        return xgboost.XGBRegressor(**self.params).fit(x, y)

    def fit(self, pad: np.ndarray, features: np.ndarray, latent: np.ndarray) -> Regressors:
        """Fit every model on training PAD (N, 3), raw features (N, D) and latents (N, L)."""
        self.pad_to_latent = [self._fit(pad, latent[:, k]) for k in range(latent.shape[1])]
        self.pad_to_feature = [self._fit(pad, features[:, j]) for j in range(features.shape[1])]
        scaled = (features - self.mean) / self.std
        self.lma_to_pad = [self._fit(scaled, pad[:, k]) for k in range(pad.shape[1])]
        self.correlation = pearson(features, pad)
        self.selected = select_axes(self.correlation, self.threshold)
        self.selected_models = [self._fit(pad[:, axes], features[:, j]) if axes else float(features[:, j].mean())
                                for j, axes in enumerate(self.selected)]
        return self

    def latent(self, pad: np.ndarray) -> np.ndarray:
        """PAD (N, 3) -> latent (N, L)."""
        return np.stack([m.predict(pad) for m in self.pad_to_latent], axis=1)

    def features_direct(self, pad: np.ndarray) -> np.ndarray:
        """PAD (N, 3) -> raw features (N, D), one regressor each."""
        return np.stack([m.predict(pad) for m in self.pad_to_feature], axis=1)

    def features_selected(self, pad: np.ndarray) -> np.ndarray:
        """PAD (N, 3) -> raw features (N, D) from the correlation-selected axes."""
        cols = [np.full(len(pad), m) if isinstance(m, float) else m.predict(pad[:, axes])
                for m, axes in zip(self.selected_models, self.selected, strict=True)]
        return np.stack(cols, axis=1)

    def pad(self, features: np.ndarray) -> np.ndarray:
        """Raw features (N, D) -> scaler -> PAD (N, 3)."""
        scaled = (features - self.mean) / self.std
        return np.stack([m.predict(scaled) for m in self.lma_to_pad], axis=1)

    def round_trip(self, pad: np.ndarray, decode: Callable[[np.ndarray], np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """PAD (N, 3) -> latent -> ``decode`` (raw features (N, D)) -> PAD'; returns ``(features, PAD')``."""
        generated = decode(self.latent(pad))
        return generated, self.pad(generated)


def fit_regressors(params: dict[str, Any], threshold: float, pad: np.ndarray, features: np.ndarray,
                   latent: np.ndarray) -> Regressors:
    """:class:`Regressors` fitted on the training rows; the scaler is the training rows' mean / std."""
    std = features.std(axis=0)
    return Regressors(params, features.mean(axis=0), np.where(std > 0, std, 1.0), threshold).fit(pad, features, latent)
