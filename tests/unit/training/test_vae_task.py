"""``data.task: vae_lma`` pieces: the loss, outlier removal, the split, correlation selection,
config errors and the report tables, on synthetic arrays (no Ray)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch

from affectlab.errors import ConfigError, DatasetError
from affectlab.reporting.document import Document
from affectlab.reporting.vae import SEED004_ORDER, feature_table, summary_table, vae_sweeps_section
from affectlab.training.config import parse_experiment
from affectlab.training.tasks.vae import kl_divergence, vae_loss
from affectlab.training.vae_data import outlier_mask, split_rows
from affectlab.training.vae_regress import fit_regressors, pearson, select_axes

BASE: dict[str, Any] = {"data": {"features": "/nowhere/dataset.yaml", "task": "vae_lma"},
                        "model": {"name": "vae_mlp", "kwargs": {"latent_dim": 1}},
                        "training": {"monitor": "val_mae"}}


def experiment(**data: Any) -> Any:
    base = {**BASE, "data": {**BASE["data"], **data}}
    return parse_experiment({"base": base}).base


# -- loss -------------------------------------------------------------------------------------

def test_kl_is_zero_at_the_prior_and_matches_the_closed_form() -> None:
    assert torch.allclose(kl_divergence(torch.zeros(3, 2), torch.zeros(3, 2)), torch.zeros(3))
    mu, logvar = torch.tensor([[1.0, -2.0]]), torch.tensor([[0.5, -1.0]])
    expected = sum(0.5 * (m**2 + math.exp(v) - 1 - v) for m, v in ((1.0, 0.5), (-2.0, -1.0)))
    assert float(kl_divergence(mu, logvar)[0]) == pytest.approx(expected)


def test_loss_weights_the_two_terms() -> None:
    x, recon = torch.zeros(2, 3), torch.ones(2, 3)  # squared error 3 per example
    mu, logvar = torch.ones(2, 1), torch.zeros(2, 1)  # KL 0.5 per example
    assert float(vae_loss(x, recon, mu, logvar)) == pytest.approx(3.5)
    assert float(vae_loss(x, recon, mu, logvar, reconstruction_weight=2.0, kl_weight=0.1)) == pytest.approx(6.05)
    assert float(vae_loss(x, recon, mu, logvar, kl_weight=0.0)) == pytest.approx(3.0)


# -- outliers and split -----------------------------------------------------------------------

def test_iqr_removes_the_planted_outlier_rows() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(0, 1, (200, 4))
    x[[3, 50], 2] = 40.0
    keep = outlier_mask(x, x, method="iqr", threshold=3.0)
    assert set(np.flatnonzero(~keep)) == {3, 50}


def test_zscore_removes_nothing_from_clean_data_and_none_keeps_all() -> None:
    x = np.random.default_rng(1).normal(0, 1, (300, 5))
    assert outlier_mask(x, x, method="zscore", threshold=5.0).all()
    assert outlier_mask(x, x * 100, method="none", threshold=0.0).all()
    with pytest.raises(ValueError, match=r"data.vae.outliers='mad' is not one of \['none', 'iqr', 'zscore'\]"):
        outlier_mask(x, x, method="mad", threshold=1.0)


def test_subject_split_is_disjoint_and_seeded() -> None:
    rows = pd.DataFrame({"subject": [f"s{i // 10}" for i in range(60)]})
    a = split_rows(rows, how="subject", test_fraction=0.2, val_fraction=0.1, seed=3)
    b = split_rows(rows, how="subject", test_fraction=0.2, val_fraction=0.1, seed=3)
    assert all(np.array_equal(a[p], b[p]) for p in a)
    test_subjects = set(rows["subject"].iloc[a["test"]])
    assert len(test_subjects) == 2  # ceil(0.2 * 6)
    assert not test_subjects & set(rows["subject"].iloc[np.concatenate([a["train"], a["val"]])])
    assert sorted(np.concatenate(list(a.values()))) == list(range(60))


def test_subject_split_needs_two_subjects() -> None:
    with pytest.raises(DatasetError, match="data.vae.split=subject needs >= 2 subjects"):
        split_rows(pd.DataFrame({"subject": ["s1"] * 10}), how="subject", test_fraction=0.2, val_fraction=0.1,
                   seed=0)


# -- correlation selection ----------------------------------------------------------------------

def test_seed_example_max_stride_length_keeps_arousal_and_dominance() -> None:
    # SEED-NOTES D.2: max_stride_length has r = P 0.099946, A 0.218093, D 0.151456 -> A and D
    r = np.array([[0.099946, 0.218093, 0.151456]])
    assert select_axes(r, 0.1) == [[1, 2]]
    assert select_axes(-r, 0.1) == [[1, 2]]  # |r|
    assert select_axes(r, 0.3) == [[]]


def test_pearson_matches_numpy_and_constant_columns_are_zero() -> None:
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(50, 3)), rng.normal(size=(50, 2))
    x[:, 2] = 1.0
    r = pearson(x, y)
    assert r[0, 1] == pytest.approx(np.corrcoef(x[:, 0], y[:, 1])[0, 1])
    assert np.all(r[2] == 0)


def test_selected_regressor_without_axes_predicts_the_training_mean() -> None:
    rng = np.random.default_rng(0)
    pad = rng.uniform(-1, 1, (120, 3))
    feats = np.stack([2 * pad[:, 1] + rng.normal(0, 0.05, 120), rng.normal(5, 1, 120)], axis=1)
    reg = fit_regressors({"n_estimators": 20}, 0.5, pad, feats, feats[:, :1])  # chance |r| < 0.5
    assert reg.selected[0] == [1] and reg.selected[1] == []
    pred = reg.features_selected(pad[:5])
    assert np.allclose(pred[:, 1], feats[:, 1].mean())
    assert np.abs(pred[:, 0] - feats[:5, 0]).mean() < 0.3


# -- config errors ------------------------------------------------------------------------------

def test_bad_outlier_method_names_the_key() -> None:
    with pytest.raises(ConfigError, match=r"data\.vae\.outliers"):
        experiment(vae={"outliers": "mad"})


def test_negative_kl_weight_names_the_key() -> None:
    with pytest.raises(ConfigError, match=r"data\.vae\.kl_weight"):
        experiment(vae={"kl_weight": -1})


def test_vae_task_with_another_model_names_both() -> None:
    with pytest.raises(ConfigError, match=r"data.task='vae_lma' does not fit model.name='emotion_cnn'"):
        parse_experiment({"base": {**BASE, "model": {"name": "emotion_cnn"}}})


def test_unknown_vae_key_is_an_error() -> None:
    with pytest.raises(ConfigError, match=r"data\.vae\.kl"):
        experiment(vae={"kl": 1.0})


def test_defaults() -> None:
    s = experiment().data.vae
    assert (s.outliers, s.threshold(), s.split, s.correlation_threshold) == ("iqr", 3.0, "subject", 0.1)


# -- report tables --------------------------------------------------------------------------------

def predictions(error: float = 0.1, latent: int = 1, n: int = 4) -> pd.DataFrame:
    """A predictions table like ``vae_run`` writes, features in reverse seed order."""
    rng = np.random.default_rng(0)
    cols: dict[str, Any] = {}
    for f in reversed(SEED004_ORDER):
        real = rng.normal(size=n)
        cols[f"real__{f}"], cols[f"regen__{f}"] = real, real + error
        cols[f"direct__{f}"] = cols[f"selected__{f}"] = real
    for k in range(latent):
        cols.update({f"latent__{k}": np.zeros(n), f"pad_latent__{k}": np.full(n, 0.5)})
    for a in ("pleasure", "arousal", "dominance"):
        cols.update({a: np.zeros(n), f"l2pad__{a}": np.full(n, 0.2), f"roundtrip__{a}": np.full(n, 0.3),
                     f"mean__{a}": np.full(n, 0.4)})
    return pd.DataFrame(cols)


def test_report_tables_follow_the_seed_order_and_recompute_the_mae() -> None:
    frame = predictions()
    table = feature_table(frame)
    assert list(table["feature"]) == list(SEED004_ORDER)
    assert np.allclose(table["MAE"], 0.1) and np.allclose(table["MSE"], 0.01)
    summary = dict(zip(summary_table(frame)["quantity"], summary_table(frame)["MAE"], strict=True))
    assert summary["overall reconstruction MAE (mean of per-feature MAEs)"] == pytest.approx(0.1)
    assert summary["PAD -> latent"] == pytest.approx(0.5)
    assert summary["round trip PAD -> latent -> decoder -> PAD' (mean over axes)"] == pytest.approx(0.3)


def test_sweep_section_tabulates_mae_against_latent_size(tmp_path: Any) -> None:
    for latent, error in ((2, 0.05), (1, 0.2)):
        trial = tmp_path / "trials" / f"t{latent}"
        (trial / "predictions").mkdir(parents=True)
        (trial / "vae").mkdir()
        predictions(error, latent).to_parquet(trial / "predictions" / "test.parquet")
        pd.DataFrame({"feature": ["x"]}).to_parquet(trial / "vae" / "correlation.parquet")
    doc, pngs = Document("t"), {}
    vae_sweeps_section(doc, [str(tmp_path)], lambda name, data: pngs.update({name: data}))
    text = doc.to_markdown()
    assert "| 1 | t1 | 0.2 |" in text and "| 2 | t2 | 0.05 |" in text
    assert list(pngs) == ["vae_sweep1_mae_vs_latent.png"] and pngs["vae_sweep1_mae_vs_latent.png"][:4] == b"\x89PNG"


@pytest.mark.parametrize(("xgb", "message"), [
    ({"nestimators": 5}, r"unknown XGBRegressor keyword\(s\) \['nestimators'\]"),
    ({"n_estimators": "many"}, "n_estimators must be an integer >= 1, got 'many'"),
    ({"n_estimators": 0}, "n_estimators must be an integer >= 1, got 0"),
    ({"max_depth": "deep"}, "XGBRegressor rejects these settings: .*max_depth"),
    ({"tree_method": "bogus"}, "XGBRegressor rejects these settings: .*bogus"),
])
def test_xgb_settings_are_checked_when_the_config_loads(xgb: dict, message: str) -> None:
    from affectlab.training.vae_config import VaeSettings

    assert VaeSettings(xgb={"n_estimators": 3, "max_depth": 2}).xgb["n_estimators"] == 3  # valid ones pass
    with pytest.raises(ValueError, match=message):
        VaeSettings(xgb=xgb)
