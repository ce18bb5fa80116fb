"""Optuna TPE + ASHA against a full grid, on the synthetic speech-AU corpus.

Trains every configuration of a small grid for the full epoch budget, then runs the sweep
(``affectlab.tuning.run_sweep``: TPE proposing from the same values, ASHA stopping poor trials)
with a few searcher seeds, and prints side by side: the best validation UAR each found, the gap
to the grid's best, and the training epochs each spent. Both sides score a configuration the way
the sweep does: by the validation UAR of the epoch whose weights its training keeps. Both use the same training code, data,
seeds and per-trial resources; every training is deterministic on CPU for a given config.

    .venv/bin/python benchmarks/sweep_efficiency.py                  # synthesises + preprocesses
    .venv/bin/python benchmarks/sweep_efficiency.py --features DIR   # reuse a preprocess output

Target (issue 7): the sweep gets within 2 UAR points of the grid's best with at most 40 % of the
grid's epochs.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
GRID = {
    "training.lr": [1e-3, 3e-3, 1e-2],
    "model.name": ["stacked_intraatt", "stacked2_intraatt", "enc_interatt_dec_intraatt"],
    "model.kwargs.window_mode": ["pa", "bi"],
}


def _base_overrides(features: str, epochs: int) -> list[str]:
    return [
        f"data.features={features}", "data.target.au=AU17", "data.target.kind=occurrence", "model.name=stacked_intraatt",
        "model.kwargs={hidden: 16, dropout: 0.1, window: 10}", f"training.max_epochs={epochs}",
        f"training.patience={epochs}", "training.seed=0", "scaling.runner=in_process", "scaling.torch_threads=1",
    ]


def _sweep_file(tmp: str, features: str, epochs: int, samples: int, seed: int, grace: int = 2, rf: float = 3) -> object:
    """The benchmark's sweep: au_003's base, the grid's values as choices, ASHA on the epochs."""
    from affectlab.tuning import load_sweep

    space = {key: {"choice": values} for key, values in GRID.items()}
    overrides = [*_base_overrides(features, epochs), f"space={json.dumps(space)}",
                 f"tune={json.dumps({'metric': 'val_uar', 'mode': 'max', 'num_samples': samples, 'seed': seed, 'startup_trials': 3, 'asha': {'grace_period': grace, 'reduction_factor': rf, 'max_t': epochs}})}"]
    return load_sweep(str(REPO / "search_spaces" / "au_003.yaml"), overrides)


def _corpus(tmp: str) -> str:
    from affectlab.data.synth import generate
    from affectlab.preprocess import preprocess

    card = generate("speech-au", os.path.join(tmp, "corpus"), subjects=4, items=6, seed=0)
    out = os.path.join(tmp, "preprocessed")
    preprocess(card, out, audio="egemaps", progress=False)
    return out


def run_grid(sweep: object, out: str) -> tuple[float, dict, int, float]:
    """Every grid point for the full budget; returns (best val_uar, its params, epochs, seconds)."""
    from ray import tune

    from affectlab.tuning.sweep import make_trainable, shared_corpus, trial_resources

    trainable = tune.with_parameters(make_trainable(sweep, out=out), corpus=shared_corpus(sweep))
    tuner = tune.Tuner(
        tune.with_resources(trainable, trial_resources(sweep)),
        param_space={key: tune.grid_search(values) for key, values in GRID.items()},
        tune_config=tune.TuneConfig(reuse_actors=True),
        run_config=tune.RunConfig(name="grid", storage_path=os.path.join(out, "tune"), verbose=0),
    )
    started = time.perf_counter()
    results = tuner.fit()
    seconds = time.perf_counter() - started
    scored = [(kept_metric(r.metrics_dataframe, "val_uar"), r.config, len(r.metrics_dataframe))
              for r in results if r.error is None]
    best = max(scored, key=lambda s: s[0])
    return best[0], best[1], sum(s[2] for s in scored), seconds


def kept_metric(history: object, metric: str) -> float:
    """A configuration's worth by the sweep's own rule: ``metric`` of the epoch whose weights its
    training keeps after the last epoch (``best_epoch``), not its best epoch overall
    (:func:`affectlab.tuning.searcher.kept_value`).

    Args:
        history: The trial's per-epoch results (a DataFrame with ``epoch``, ``best_epoch`` and
            ``metric`` columns, as Tune's ``Result.metrics_dataframe``).
        metric: The sweep metric.
    """
    from affectlab.tuning.searcher import kept_value

    rows = history.to_dict("records")  # type: ignore[attr-defined]
    curve = {int(row.get("epoch", row.get("training_iteration"))): float(row[metric]) for row in rows}
    return kept_value(curve, rows[-1], metric).value


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--features", help="preprocess output to reuse (default: synthesise one)")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--samples", type=int, default=12)
    parser.add_argument("--seeds", default="0,1,2,3,4,5")
    parser.add_argument("--grace", type=int, default=2, help="ASHA grace period (epochs)")
    parser.add_argument("--reduction-factor", type=float, default=3)
    parser.add_argument("--num-cpus", type=int, default=2)
    args = parser.parse_args()
    os.environ.setdefault("RAY_AIR_NEW_OUTPUT", "0")

    from affectlab.runtime import ray_session
    from affectlab.tuning import run_sweep

    with tempfile.TemporaryDirectory(prefix="affectlab-bench-") as tmp, ray_session(num_cpus=args.num_cpus):
        features = args.features or _corpus(tmp)
        base = _sweep_file(tmp, features, args.epochs, args.samples, 0)
        n_grid = len(list(itertools.product(*GRID.values())))
        grid_uar, grid_params, grid_epochs, grid_s = run_grid(base, os.path.join(tmp, "grid"))
        rows = []
        for seed in [int(s) for s in args.seeds.split(",")]:
            sweep = _sweep_file(tmp, features, args.epochs, args.samples, seed, args.grace, args.reduction_factor)
            started = time.perf_counter()
            summary = run_sweep(sweep, out=os.path.join(tmp, f"sweep-{seed}"), echo=None)
            rows.append((seed, summary.best_value, summary.epochs_now, time.perf_counter() - started, summary.best_params))

    print(f"\nsweep: {args.samples} trials, ASHA grace {args.grace}, reduction factor {args.reduction_factor:g}")
    print(f"grid: {n_grid} configs x {args.epochs} epochs -> {grid_epochs} epochs, {grid_s:.0f} s; "
          f"best val_uar {grid_uar:.4f} with {grid_params}")
    print(f"{'searcher seed':>13} | {'best val_uar':>12} | {'gap (UAR pts)':>13} | {'epochs':>6} | "
          f"{'epochs / grid':>13} | {'seconds':>7} | meets target")
    for seed, uar, epochs, seconds, _params in rows:
        gap = 100 * (grid_uar - uar)
        ratio = epochs / grid_epochs
        ok = gap <= 2.0 and ratio <= 0.40
        print(f"{seed:>13} | {uar:>12.4f} | {gap:>13.2f} | {epochs:>6} | {ratio:>13.1%} | {seconds:>7.0f} | {ok}")
    print(json.dumps({"grid": {"configs": n_grid, "epochs": grid_epochs, "best_val_uar": grid_uar, "seconds": grid_s},
                      "sweeps": [{"seed": s, "best_val_uar": u, "epochs": e, "seconds": round(t, 1), "params": p}
                                 for s, u, e, t, p in rows]}, default=str))


if __name__ == "__main__":
    main()
