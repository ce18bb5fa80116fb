"""Training overheads: one Ray Train worker vs a plain PyTorch loop, and the LOSO grid vs its trainings.

1. Epoch time of the seed-003 model (``enc_interatt_dec`` by default) on the same windows:
   a plain PyTorch loop (forward, masked BCE, backward, Adam step, then a validation pass; no
   Ray) against the same epochs inside one Ray Train ``TorchTrainer`` worker (our loop:
   Ray Data shard, per-epoch ``ray.train.report`` with a checkpoint). Reported: median epoch
   seconds (epoch 1 excluded) and the ratio (target <= 1.15).
2. A LOSO grid (``affectlab cv``; parallel Tune trials, in-process trainings): its wall time
   against the sum of its trainings' times divided by the CPUs (1.0 = perfect packing).

Usage::

    python benchmarks/train_seq2seq.py [--features PRE_DIR] [--epochs 6] [--arch enc_interatt_dec]

Without ``--features`` a speech-au corpus (4 subjects x 6 utterances) is synthesised and
preprocessed into a temporary directory first.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time

import numpy as np
import torch


def _corpus(tmp: str, subjects: int, items: int) -> str:
    from affectlab.data.synth import generate
    from affectlab.preprocess import preprocess

    card = generate("speech-au", f"{tmp}/corpus", subjects=subjects, items=items, seed=0)
    preprocess(card, f"{tmp}/pre", audio=["egemaps"], progress=False)
    return f"{tmp}/pre"


def _config(features: str, arch: str, epochs: int, **extra: str):
    from affectlab.training.config import load_experiment

    sets = [f"data.features={features}", f"model.name={arch}", f"training.max_epochs={epochs}",
            f"training.prev_rounds={epochs}", "data.test_subjects=[s01]", "data.target.au=AU12",
            *(f"{k}={v}" for k, v in extra.items())]
    return load_experiment("search_spaces/au_003.yaml", sets).base


def plain_epochs(config, prepared, epochs: int) -> list[float]:
    """Seconds per epoch of a minimal PyTorch loop (train + validation) on the same windows."""
    from affectlab.training.data import batches
    from affectlab.training.losses import class_weights, masked_bce_with_logits
    from affectlab.training.runners import build

    torch.set_num_threads(1)
    model = build(config, prepared.model_kwargs)
    opt = torch.optim.Adam(model.parameters(), lr=config.training.lr)
    weights = torch.as_tensor(class_weights(prepared.class_counts), dtype=torch.float32)
    times = []
    for epoch in range(1, epochs + 1):
        start = time.perf_counter()
        model.train()
        for b in batches(prepared.train, config.training.batch_size, seed=epoch):
            x, y, m = (torch.as_tensor(b[k]) for k in ("x", "y", "mask"))
            opt.zero_grad()
            loss = masked_bce_with_logits(model(x, m), y.clamp_min(0), m & (y >= 0), class_weights=weights)
            (loss + model.regularization_loss()).backward()
            opt.step()
        model.eval()
        with torch.no_grad():
            for b in batches(prepared.val, config.training.batch_size):
                model(torch.as_tensor(b["x"]), torch.as_tensor(b["mask"]))
        times.append(time.perf_counter() - start)
    return times


def ray_train_epochs(config, out: str) -> tuple[list[float], float]:
    """Seconds per epoch cycle in one Ray Train worker (from ``elapsed_s``), and the run's wall time."""
    from affectlab.training.run import train

    start = time.perf_counter()
    result = train(config, out=out)
    elapsed = [row["elapsed_s"] for row in result.history]
    # full epoch cycle: training + validation + ray.train.report with its checkpoint
    return [elapsed[0], *np.diff(elapsed).tolist()], time.perf_counter() - start


def main() -> None:
    import ray

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--features", help="preprocess output dir (default: synthesise one)")
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--arch", default="enc_interatt_dec")
    parser.add_argument("--cv-archs", default="stacked")
    parser.add_argument("--cv-epochs", type=int, default=5)
    args = parser.parse_args()
    ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
    tmp = tempfile.mkdtemp(prefix="bench-train-")
    features = args.features or _corpus(tmp, 4, 6)

    from affectlab.training.data import prepare

    config = _config(features, args.arch, args.epochs, **{"scaling.num_workers": "1"})
    prepared = prepare(config)
    plain = plain_epochs(config, prepared, args.epochs)
    ray_epochs, ray_wall = ray_train_epochs(config, f"{tmp}/ray1")
    p, r = statistics.median(plain[1:]), statistics.median(ray_epochs[1:])
    print(f"windows: train {len(prepared.train)}, val {len(prepared.val)}; model {args.arch}; {args.epochs} epochs")
    print(f"plain PyTorch loop   median epoch {p:.3f} s   epochs {np.round(plain, 3).tolist()}")
    print(f"Ray Train, 1 worker  median epoch {r:.3f} s   epochs {np.round(ray_epochs, 3).tolist()}")
    print(f"ratio Ray Train / plain = {r / p:.3f}  (target <= 1.15); Ray Train run wall {ray_wall:.1f} s incl. start-up")

    from affectlab.training.cv import run_cv

    cv_config = _config(features, args.cv_archs.split(",")[0], args.cv_epochs)
    result = run_cv(cv_config, out=f"{tmp}/cv", aus=["AU12"], kinds=["occurrence", "onset"], archs=args.cv_archs.split(","))
    t = result.timing
    print(f"LOSO grid: {t['trainings']} trainings, wall {t['grid_wall_s']:.1f} s; sum of trainings "
          f"{t['sum_training_s']:.1f} s / {t['cpus']} CPUs = {t['ideal_wall_s']:.1f} s; ratio {t['ratio']:.2f}")
    print(json.dumps({"plain_epoch_s": p, "ray_epoch_s": r, "ratio": r / p, "cv": t}))


if __name__ == "__main__":
    main()
