"""``data.vae``: the settings of ``data.task: vae_lma`` (seed 004, SEED-NOTES Part D).

For this task ``data.features`` names the ``lma`` dataset card (``dataset.yaml``, or the directory
holding it): ``affectlab preprocess`` keeps only the clip labels (PAD) of an ``lma`` card, so the
features are read from the card's table through the ``lma`` adapter.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, field_validator

from affectlab.config import StrictModel

__all__ = ["DEFAULT_OUTLIER_THRESHOLD", "VaeSettings"]

DEFAULT_OUTLIER_THRESHOLD = {"iqr": 3.0, "zscore": 4.0}


class VaeSettings(StrictModel):
    """Loss weights, scaling, outlier removal, split and regressors of ``data.task: vae_lma``."""

    reconstruction_weight: float = Field(default=1.0, ge=0, description="weight of the squared reconstruction error")
    kl_weight: float = Field(default=1.0, ge=0, description="weight of the KL divergence to N(0, I)")
    standardise: bool = Field(default=True, description="z-score every feature with the training rows' mean / "
                                                        "std before the VAE (metrics are always in raw units)")
    outliers: Literal["none", "iqr", "zscore"] = Field(
        default="iqr", description="drop rows with any feature outside [Q1 - k IQR, Q3 + k IQR] (iqr) or with "
                                   "|z| > k (zscore), bounds fitted on the training rows")
    outlier_threshold: float | None = Field(default=None, gt=0,
                                            description="k; default 3.0 for iqr, 4.0 for zscore")
    split: Literal["subject", "random"] = Field(
        default="subject", description="test rows: whole subjects (default) or a seeded random fraction of rows")
    test_fraction: float = Field(default=0.2, gt=0, lt=1)
    val_fraction: float = Field(default=0.1, gt=0, lt=1, description="of the training rows, for early stopping")
    correlation_threshold: float = Field(default=0.1, ge=0, le=1,
                                         description="|Pearson r| a PAD axis needs to feed a feature's "
                                                     "correlation-selected regressor")
    xgb: dict[str, Any] = Field(default_factory=lambda: {"n_estimators": 200, "max_depth": 3, "learning_rate": 0.1},
                                description="keyword arguments of every xgboost.XGBRegressor")

    @field_validator("xgb")
    @classmethod
    def _known_xgb_keywords(cls, value: dict[str, Any]) -> dict[str, Any]:
        """Reject keywords XGBRegressor does not know and values it cannot fit with, at load time
        (not after the VAE has trained): one tree is fitted on four rows with these settings."""
        import numpy as np
        import xgboost

        known = set(xgboost.XGBRegressor().get_params())
        unknown = sorted(set(value) - known)
        if unknown:
            raise ValueError(f"unknown XGBRegressor keyword(s) {unknown}; valid: {sorted(known)}")
        n_estimators = value.get("n_estimators", 1)
        if isinstance(n_estimators, bool) or not isinstance(n_estimators, int) or n_estimators < 1:
            raise ValueError(f"n_estimators must be an integer >= 1, got {n_estimators!r}")
        trial = {**value, "n_estimators": 1, "n_jobs": 1}
        try:
            xgboost.XGBRegressor(**trial).fit(np.arange(8.0).reshape(4, 2), np.arange(4.0))
        except (xgboost.core.XGBoostError, TypeError, ValueError) as exc:
            raise ValueError(f"XGBRegressor rejects these settings: {str(exc).splitlines()[0][:300]}") from None
        return value

    def threshold(self) -> float:
        """``outlier_threshold`` or the method's default."""
        return self.outlier_threshold or DEFAULT_OUTLIER_THRESHOLD.get(self.outliers, 0.0)
