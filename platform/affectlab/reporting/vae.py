"""Report tables of ``data.task: vae_lma`` runs (seed 004), recomputed from the stored outputs.

Every number comes from ``predictions/test.parquet`` and ``vae/correlation.parquet`` of the run
(:mod:`affectlab.training.vae_run`), never from ``result.json``:

* the 27-feature reconstruction table in the seed's order (``feature | MSE | MAE | regen | real``,
  the example pair from the first test clip), then the overall MAE (mean of the per-feature MAEs);
* PAD -> latent MAE, PAD -> feature MAE (direct and correlation-selected), LMA -> PAD MAE per axis
  beside predicting the training mean, and the round trip PAD -> latent -> decoder -> PAD' MAE;
* the feature x PAD correlation table with the axes each correlation-selected regressor uses;
* for a sweep whose trials are VAE runs (the latent-size grid), the test MAEs per latent size and
  their plot against it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd

from affectlab import storage
from affectlab.reporting.document import Document, Image, Table
from affectlab.training.vae_data import PAD_AXES
from affectlab.training.vae_run import correlation_uri, predictions_uri, vae_metrics

__all__ = ["SEED004_ORDER", "feature_table", "is_vae_run", "mae_vs_latent_png", "summary_table", "sweep_table",
           "vae_section", "vae_sweeps_section"]

# The order of seed 004's per-feature table (SEED-NOTES D.4), which differs from the adapter's.
SEED004_ORDER = (
    "max_hand_distance", "avg_l_hand_hip_distance", "avg_r_hand_hip_distance", "max_stride_length",
    "avg_l_hand_chest_distance", "avg_r_hand_chest_distance", "avg_l_elbow_hip_distance", "avg_r_elbow_hip_distance",
    "avg_chest_pelvis_distance", "avg_neck_cnest_distance", "avg_neck_rotation_w", "avg_neck_rotation_x",
    "avg_neck_rotation_y", "avg_neck_rotation_z", "avg_total_body_volume", "avg_triangle_area_hands_neck",
    "avg_triangle_area_feet_hips", "l_hand_speed", "r_hand_speed", "l_foot_speed", "r_foot_speed", "neck_speed",
    "l_hand_acceleration_magnitude", "r_hand_acceleration_magnitude", "l_foot_acceleration_magnitude",
    "r_foot_acceleration_magnitude", "neck_acceleration_magnitude",
)


def _features(frame: pd.DataFrame) -> list[str]:
    """The run's features, seed-004 features first in the seed's order, any others after."""
    names = [c.split("__", 1)[1] for c in frame.columns if c.startswith("real__")]
    return [f for f in SEED004_ORDER if f in names] + [f for f in names if f not in SEED004_ORDER]


def feature_table(frame: pd.DataFrame) -> pd.DataFrame:
    """``feature | MSE | MAE | regen | real`` (raw units) of the VAE reconstruction, seed order."""
    rows = []
    for f in _features(frame):
        err = frame[f"regen__{f}"] - frame[f"real__{f}"]
        rows.append({"feature": f, "MSE": float((err**2).mean()), "MAE": float(err.abs().mean()),
                     "regen": float(frame[f"regen__{f}"].iloc[0]), "real": float(frame[f"real__{f}"].iloc[0])})
    return pd.DataFrame(rows)


def summary_table(frame: pd.DataFrame) -> pd.DataFrame:
    """The headline MAEs (:func:`affectlab.training.vae_run.vae_metrics`) as ``quantity | MAE``."""
    m = vae_metrics(frame, _features(frame))
    rows = [("overall reconstruction MAE (mean of per-feature MAEs)", m["mae"]),
            ("PAD -> latent", m["pad_latent_mae"]), ("PAD -> feature, direct (mean over features)", m["direct_mae"]),
            ("PAD -> feature, correlation-selected (mean over features)", m["selected_mae"])]
    rows += [(f"LMA -> PAD, {a}", m[f"l2pad_mae_{a}"]) for a in PAD_AXES]
    rows += [(f"predicting the training mean, {a}", m[f"mean_mae_{a}"]) for a in PAD_AXES]
    rows.append(("round trip PAD -> latent -> decoder -> PAD' (mean over axes)", m["roundtrip_mae"]))
    return pd.DataFrame(rows, columns=["quantity", "MAE"])


def per_feature_regressions(frame: pd.DataFrame) -> pd.DataFrame:
    """Per feature: MAE of the direct and the correlation-selected PAD -> feature regressors."""
    rows = [{"feature": f, "direct MAE": float((frame[f"direct__{f}"] - frame[f"real__{f}"]).abs().mean()),
             "selected MAE": float((frame[f"selected__{f}"] - frame[f"real__{f}"]).abs().mean())}
            for f in _features(frame)]
    return pd.DataFrame(rows)


def is_vae_run(uri: str) -> bool:
    """True when the run stored VAE predictions."""
    return storage.exists(predictions_uri(uri)) and storage.exists(correlation_uri(uri))


def vae_section(doc: Document, uri: str, write_png: Callable[[str, bytes], Any] | None = None, *,
                prefix: str = "run") -> None:
    """Append the VAE tables of run ``uri`` (module docstring); nothing when it has no stored outputs."""
    if not is_vae_run(uri):
        doc.text(f"{uri}: no VAE predictions stored (predictions/test.parquet, vae/correlation.parquet).")
        return
    frame = storage.read_parquet(predictions_uri(uri)).to_pandas()
    corr = storage.read_parquet(correlation_uri(uri)).to_pandas()
    latent = sum(c.startswith("latent__") for c in frame.columns)
    doc.heading(f"VAE over body motion: {len(frame)} test clips, latent size {latent}", 3)
    doc.table(Table.from_frame(feature_table(frame), caption="reconstruction per feature (raw units, test clips; "
                                                              "regen / real: the first test clip), seed 004's order"))
    doc.table(Table.from_frame(summary_table(frame), caption="test MAEs of the VAE and the XGBoost regressors"))
    doc.table(Table.from_frame(per_feature_regressions(frame), caption="PAD -> feature regressors per feature"))
    order = {f: i for i, f in enumerate(_features(frame))}
    corr = corr.assign(selected=[", ".join(s) for s in corr["selected"]]).sort_values(
        "feature", key=lambda s: s.map(lambda f: order.get(f, np.inf)))
    doc.table(Table.from_frame(corr.rename(columns={f"r_{a}": f"r {a}" for a in PAD_AXES}),
                               caption="Pearson r of each feature with P, A, D (training clips) and the axes its "
                                       "correlation-selected regressor uses"))


# -- latent-size sweeps ---------------------------------------------------------------------------

def sweep_table(sweep: str) -> pd.DataFrame:
    """One row per trial of ``sweep`` that stored VAE predictions: ``latent size`` and its test
    MAEs (recomputed from ``<trial>/predictions/test.parquet``), sorted by latent size."""
    rows = []
    for uri in storage.list_files(storage.join(sweep, "trials"), suffix="correlation.parquet"):
        trial = uri.rsplit("/", 2)[0]
        if not is_vae_run(trial):
            continue
        frame = storage.read_parquet(predictions_uri(trial)).to_pandas()
        m = vae_metrics(frame, _features(frame))
        latent = sum(c.startswith("latent__") for c in frame.columns)
        rows.append({"latent size": latent, "trial": trial.rsplit("/", 1)[-1],
                     "reconstruction MAE": m["mae"], "PAD -> latent MAE": m["pad_latent_mae"],
                     "round trip MAE": m["roundtrip_mae"]})
    return pd.DataFrame(rows).sort_values(["latent size", "trial"]) if rows else pd.DataFrame()


def mae_vs_latent_png(table: pd.DataFrame) -> bytes:
    """Test reconstruction and round-trip MAE against the latent size."""
    from affectlab.reporting import plots  # before pyplot: selects the non-interactive backend
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(8.4, 3.3))
    for ax, column in zip(axes, ("reconstruction MAE", "round trip MAE"), strict=True):
        ax.plot(table["latent size"], table[column], "o-")
        ax.set_xlabel("latent size")
        ax.set_ylabel(f"test {column}")
        ax.grid(alpha=0.3)
    return plots.figure_png(fig)


def vae_sweeps_section(doc: Document, sweeps: list[str], write_png: Callable[[str, bytes], Any]) -> None:
    """Append, per sweep whose trials are VAE runs, the test MAEs against the latent size."""
    for i, sweep in enumerate(sweeps, start=1):
        table = sweep_table(sweep)
        if table.empty:
            continue
        doc.heading(f"VAE latent-size sweep: {sweep}", 2)
        doc.table(Table.from_frame(table, caption="test MAEs per trial (raw units), from each trial's predictions"))
        name = f"vae_sweep{i}_mae_vs_latent.png"
        write_png(name, mae_vs_latent_png(table))
        doc.image(Image(name, "test reconstruction MAE and round-trip PAD MAE against the latent size"))
