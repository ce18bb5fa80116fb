"""Training, regressors and stored outputs of ``data.task: vae_lma`` (seed 004).

:func:`train_vae` is what :func:`affectlab.training.run.train` runs for this task: it builds the
data (:mod:`affectlab.training.vae_data`), trains the VAE with the configured runner (in-process
or Ray Train), restores the best epoch, fits the XGBoost regressors
(:mod:`affectlab.training.vae_regress`) on the training rows and writes, besides the usual run
outputs (``config.yaml``, ``history.parquet``, ``result.json``, ``best_model.pt``):

* ``predictions/test.parquet``: one row per test clip: ``sample_id, subject``, the true PAD
  (``pleasure, arousal, dominance``), and per feature ``real__<f>`` (raw), ``regen__<f>`` (VAE
  reconstruction), ``direct__<f>`` (PAD -> feature), ``selected__<f>`` (correlation-selected),
  ``generated__<f>`` (round trip); per latent dimension ``latent__<k>`` (encoder mean) and
  ``pad_latent__<k>`` (PAD -> latent); per axis ``l2pad__<axis>`` (LMA -> PAD on the real
  features), ``roundtrip__<axis>`` (PAD') and ``mean__<axis>`` (the training mean: the baseline);
* ``vae/correlation.parquet``: per feature its Pearson r with P, A, D on the training rows and
  the axes selected for its correlation-selected regressor.

Every table of the report (:mod:`affectlab.reporting.vae`) is recomputed from these two files.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import torch

from affectlab import storage
from affectlab.training.config import ExperimentConfig
from affectlab.training.loop import saved_weights
from affectlab.training.runners import (InMemoryPart, Reporter, batch_seed, build_modules, run_in_process_batches,
                                       run_ray_train_datasets, torch_threads)
from affectlab.training.splits import Split
from affectlab.training.tasks import DataInfo, VaeTask, build_task
from affectlab.training.vae_data import PAD_AXES, VaeData, load_vae_data
from affectlab.training.vae_regress import Regressors, fit_regressors

__all__ = ["correlation_uri", "predictions_uri", "train_vae", "vae_metrics"]


def predictions_uri(run: str, part: str = "test") -> str:
    """``<run>/predictions/<part>.parquet``."""
    return storage.join(run, "predictions", f"{part}.parquet")


def correlation_uri(run: str) -> str:
    """``<run>/vae/correlation.parquet``."""
    return storage.join(run, "vae", "correlation.parquet")


def _fit_vae(config: ExperimentConfig, data: VaeData, info: DataInfo, *, out: str, reporter: Reporter | None,
             resume_from: str | None) -> Any:
    t = config.training
    if config.scaling.runner == "in_process":
        train, val = InMemoryPart({"x": data.scaled("train")}), InMemoryPart({"x": data.scaled("val")})
        return run_in_process_batches(
            config, info,
            lambda epoch: train.iter_batches(batch_size=t.batch_size, local_shuffle_seed=batch_seed(t.seed, epoch, 0)),
            lambda: val.iter_batches(batch_size=t.batch_size), reporter=reporter, resume_from=resume_from)
    import ray.data

    datasets = {p: ray.data.from_items([{"x": row} for row in data.scaled(p)]) for p in ("train", "val")}
    output, _ = run_ray_train_datasets(config, datasets, info, out=out, reporter=reporter, in_memory=True)
    return output


def _columns(data: VaeData, recon: dict[str, np.ndarray], reg: Regressors, decode: Any) -> dict[str, Any]:
    """The columns of ``predictions/test.parquet`` (module docstring)."""
    rows = data.parts["test"]
    pad = data.pad("test")
    cols: dict[str, Any] = {"sample_id": rows["sample_id"].astype(str).tolist(),
                            "subject": rows["subject"].astype(str).tolist()}
    cols.update({axis: pad[:, k] for k, axis in enumerate(PAD_AXES)})
    generated, pad_prime = reg.round_trip(pad, decode)
    per_feature = {"real": data.raw["test"], "regen": recon["regen"], "direct": reg.features_direct(pad),
                   "selected": reg.features_selected(pad), "generated": generated}
    for kind, values in per_feature.items():
        cols.update({f"{kind}__{f}": values[:, j] for j, f in enumerate(data.feature_names)})
    pad_latent = reg.latent(pad)
    for k in range(recon["latent"].shape[1]):
        cols[f"latent__{k}"], cols[f"pad_latent__{k}"] = recon["latent"][:, k], pad_latent[:, k]
    l2pad, train_mean = reg.pad(data.raw["test"]), data.pad("train").mean(axis=0)
    for k, axis in enumerate(PAD_AXES):
        cols[f"l2pad__{axis}"], cols[f"roundtrip__{axis}"] = l2pad[:, k], pad_prime[:, k]
        cols[f"mean__{axis}"] = np.full(len(pad), train_mean[k])
    return cols


def vae_metrics(frame: pd.DataFrame, features: list[str]) -> dict[str, float]:
    """The headline numbers of a predictions table: ``mae`` (mean of the per-feature reconstruction
    MAEs, raw units), ``pad_latent_mae``, ``direct_mae``, ``selected_mae``, ``roundtrip_mae``,
    ``l2pad_mae_<axis>`` and ``mean_mae_<axis>`` (predicting the training mean)."""
    def feature_mae(kind: str) -> float:
        return float(np.mean([np.abs(frame[f"{kind}__{f}"] - frame[f"real__{f}"]).mean() for f in features]))

    latent = [c.split("__")[1] for c in frame.columns if c.startswith("latent__")]
    out = {"mae": feature_mae("regen"), "direct_mae": feature_mae("direct"), "selected_mae": feature_mae("selected"),
           "pad_latent_mae": float(np.mean([np.abs(frame[f"pad_latent__{k}"] - frame[f"latent__{k}"]).mean()
                                            for k in latent])),
           "roundtrip_mae": float(np.mean([np.abs(frame[f"roundtrip__{a}"] - frame[a]).mean() for a in PAD_AXES]))}
    for axis in PAD_AXES:
        out[f"l2pad_mae_{axis}"] = float(np.abs(frame[f"l2pad__{axis}"] - frame[axis]).mean())
        out[f"mean_mae_{axis}"] = float(np.abs(frame[f"mean__{axis}"] - frame[axis]).mean())
    return out


def _write(out: str, cols: dict[str, Any], data: VaeData, reg: Regressors) -> None:
    storage.write_parquet(pa.Table.from_pydict(cols), predictions_uri(out))
    corr = pa.table({"feature": data.feature_names, **{f"r_{a}": reg.correlation[:, k] for k, a in enumerate(PAD_AXES)},
                     "selected": [[PAD_AXES[k] for k in axes] for axes in reg.selected]})
    storage.write_parquet(corr, correlation_uri(out))


def train_vae(config: ExperimentConfig, *, out: str, reporter: Reporter | None = None,
              resume_from: str | None = None, write: bool = True) -> Any:
    """Train ``data.task: vae_lma`` (see the module docstring); returns a
    :class:`~affectlab.training.run.TrainResult` whose ``test`` holds ``test_loss`` and the
    numbers of :func:`vae_metrics` prefixed ``test_``."""
    from affectlab.training.run import TrainResult, write_outputs

    started = time.perf_counter()
    data = load_vae_data(config)
    info = DataInfo(model_kwargs={"input_dim": len(data.feature_names)},
                    extra={"feature_mean": data.mean.tolist(), "feature_std": data.std.tolist()})
    output = _fit_vae(config, data, info, out=out, reporter=reporter, resume_from=resume_from)
    task = build_task(config, info)
    if not isinstance(task, VaeTask):
        raise TypeError(f"data.task 'vae_lma' built a {type(task).__name__}, not a VaeTask")
    model = build_modules(config, task, info.model_kwargs)["model"]
    model.load_state_dict(output.best_states["model"])
    model.eval()

    def decode(latent: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            return task.raw(model.decode(torch.as_tensor(latent, dtype=torch.float32)).numpy())

    with torch_threads(config.scaling.torch_threads):
        recon = {p: task.predict(model, InMemoryPart({"x": data.scaled(p)}).iter_batches(batch_size=512), "cpu")
                 for p in ("train", "test")}
        s = config.data.vae
        reg = fit_regressors(s.xgb, s.correlation_threshold, data.pad("train"), data.raw["train"],
                             recon["train"]["latent"])
        cols = _columns(data, recon["test"], reg, decode)
    metrics = vae_metrics(pd.DataFrame(cols), data.feature_names)
    best_row = next((r for r in output.history if r["epoch"] == output.best_epoch), output.history[-1])
    subjects = {p: tuple(sorted(set(data.parts[p]["subject"]))) for p in ("train", "val", "test")}
    result = TrainResult(
        config=config, out=out, history=output.history, best_epoch=output.best_epoch,
        val={k: float(v) for k, v in best_row.items() if k.startswith("val_")},
        test={"test_loss": recon["test"]["loss"], **{f"test_{k}": v for k, v in metrics.items()}},
        baseline={f"baseline_l2pad_mae_{a}": metrics[f"mean_mae_{a}"] for a in PAD_AXES},
        split=Split(subjects["train"], subjects["val"], subjects["test"]), stop_reason=output.stop_reason,
        runner=config.scaling.runner, wall_s=time.perf_counter() - started, resumed_from=output.resumed_from,
        extra={"latent_dim": int(recon["test"]["latent"].shape[1]), "split_kind": config.data.vae.split,
               **data.summary()},
    )
    if write:
        write_outputs(result, saved_weights(output.best_states))
        _write(out, cols, data, reg)
    return result
