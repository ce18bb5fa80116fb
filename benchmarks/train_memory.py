"""Peak memory of the driver and of a Ray Train worker while training one epoch on a synthetic
mouth-ROI set of N and 10 x N clips, side by side: the streaming data path should keep both flat.

    python benchmarks/train_memory.py [--clips 40] [--frames 50] [--size 96] [--workers 1]

A synthetic ``mouth`` feature set (``T x S x S`` uint8 clips, the layout ``affectlab preprocess
--video mouth`` writes, 8 clips per Parquet file as its commits produce) is written for N and
10 x N clips. Each size is trained in a fresh Python process (so ``ru_maxrss`` is that run's
peak): :func:`affectlab.training.streaming.sequence_datasets` plans a subject-disjoint split from
the small columns and streams each part from Parquet;
:func:`affectlab.training.runners.run_ray_train_datasets` trains one epoch with a tiny
frame-sequence regressor (a task registered by this script and shipped to the workers by the
runner). The driver's peak is its own ``ru_maxrss``; the worker reports its ``ru_maxrss`` as a
metric. The printed ratio 10N / N should stay within 1.2x for both.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

import numpy as np

SUBJECTS = 5


def write_mouth_set(out: str, clips: int, frames: int, size: int, seed: int = 0) -> float:
    """Write ``clips`` random mouth clips under ``<out>/features/mouth/version=vbench``; returns MB."""
    import pyarrow as pa

    from affectlab import storage
    from affectlab.features import io
    from affectlab.features.arrow import nested_list_array

    rng = np.random.default_rng(seed)
    directory = io.set_dir(out, "features", "mouth", "vbench")
    total = 0
    for part, start in enumerate(range(0, clips, 8)):
        rows = range(start, min(start + 8, clips))
        arrays = [rng.integers(0, 256, size=(int(frames * rng.uniform(0.6, 1.0)), size, size), dtype=np.uint8) for _ in rows]
        total += sum(a.nbytes for a in arrays)
        table = pa.table({
            "sample_id": [f"clip{i:05d}" for i in rows],
            "subject": [f"s{i % SUBJECTS:02d}" for i in rows],
            "n_frames": [len(a) for a in arrays],
            "frame_rate_hz": [25.0] * len(arrays),
            "mouth": nested_list_array(arrays),
        })
        storage.write_parquet(table, storage.join(directory, f"part-{part:05d}.parquet"))
    return total / 2**20


def _register_benchmark_task() -> None:
    """A tiny frame-sequence regressor: predict each clip's mean brightness from its frames."""
    import torch
    from torch import nn

    from affectlab.models import MODELS
    from affectlab.training.streaming import pad_sequences
    from affectlab.training.tasks import TASKS, SingleModelTask, TaskSpec, register_task

    class FrameMean(nn.Module):
        def __init__(self, input_dim: int = 1) -> None:
            super().__init__()
            self.pool = nn.AdaptiveAvgPool2d(8)
            self.head = nn.Linear(64, 1)

        def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:  # x (B, T, S, S)
            b, t = x.shape[:2]
            per_frame = self.head(self.pool(x.reshape(b * t, 1, *x.shape[2:])).reshape(b, t, 64)).squeeze(-1)
            return (per_frame * mask).sum(1) / mask.sum(1).clamp_min(1)  # (B,)

    class ClipBrightness(SingleModelTask):
        metrics = ("loss", "worker_maxrss_mb")

        def to_device(self, batch, device):
            x, mask = pad_sequences(list(batch["mouth"]), np.float32)
            x = torch.as_tensor(x / 255.0, device=device)
            m = torch.as_tensor(mask, device=device)
            target = (x.mean(dim=(2, 3)) * m).sum(1) / m.sum(1)
            return {"x": x, "mask": m, "y": target}

        def train_loss(self, model, batch):
            return ((model(batch["x"], batch["mask"].float()) - batch["y"]) ** 2).mean()

        def step_weight(self, batch):
            return float(batch["x"].shape[0])

        def evaluate(self, modules, batches, device, *, prefix):
            total, n = 0.0, 0
            with torch.no_grad():
                for batch in batches:
                    b = self.to_device(batch, device)
                    total += float(self.train_loss(modules["model"], b)) * b["x"].shape[0]
                    n += b["x"].shape[0]
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            return {f"{prefix}loss": total / max(n, 1), f"{prefix}worker_maxrss_mb": peak}

    if "bench_clip" not in TASKS:
        MODELS["bench_frame_mean"] = FrameMean
        register_task(TaskSpec("bench_clip", lambda config, info: ClipBrightness(config), ("bench_frame_mean",),
                               ClipBrightness.metrics, {"input_dim": 1}, "benchmark only"))


def train_once(root: str, workers: int) -> dict:
    """One epoch on the set under ``root``, in this process; returns the peaks (MB) and timings."""
    import ray

    from affectlab.training.config import ExperimentConfig
    from affectlab.training.runners import run_ray_train_datasets
    from affectlab.training.streaming import sequence_datasets
    from affectlab.training.tasks import DataInfo

    import ray.cloudpickle

    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    _register_benchmark_task()
    ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
    config = ExperimentConfig.model_validate({
        "name": "memory", "data": {"features": root, "feature_set": "mouth", "task": "bench_clip",
                                   "test_subjects": ["s00"]},
        "model": {"name": "bench_frame_mean"},
        "training": {"max_epochs": 1, "batch_size": 8, "lr": 1e-3, "monitor": "val_loss", "prev_rounds": 1,
                     "patience": 1, "last_top_results": 1},
        "scaling": {"num_workers": workers, "cpus_per_worker": 1},
    })
    started = time.perf_counter()
    data = sequence_datasets(config.data, "mouth")
    datasets = {"train": data.datasets["train"], "val": data.datasets["val"]}
    output, _ = run_ray_train_datasets(config, datasets, DataInfo(), out=os.path.join(root, "run"))
    seconds = time.perf_counter() - started
    ray.shutdown()
    return {"driver_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "worker_mb": output.history[-1]["val_worker_maxrss_mb"], "seconds": seconds,
            "train_clips": data.counts["train"], "loss": output.history[-1]["val_loss"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--clips", type=int, default=40, help="N (the large set has 10 x N)")
    parser.add_argument("--frames", type=int, default=50, help="frames of the longest clip")
    parser.add_argument("--size", type=int, default=96, help="mouth ROI side")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--_train", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args._train:
        print(json.dumps(train_once(args._train, args.workers)))
        return
    results = {}
    with tempfile.TemporaryDirectory(prefix="affectlab-mem-") as tmp:
        for clips in (args.clips, 10 * args.clips):
            root = os.path.join(tmp, f"n{clips}")
            mb = write_mouth_set(root, clips, args.frames, args.size)
            proc = subprocess.run([sys.executable, __file__, "--_train", root, "--workers", str(args.workers)],
                                  capture_output=True, text=True, check=False)
            if proc.returncode != 0:
                sys.exit(f"training on {clips} clips failed:\n{proc.stderr[-4000:]}")
            results[clips] = {**json.loads(proc.stdout.strip().splitlines()[-1]), "data_mb": mb}
            r = results[clips]
            print(f"{clips:5d} clips ({mb:7.1f} MB of frames, {r['train_clips']} training clips): "
                  f"driver peak {r['driver_mb']:7.1f} MB, worker peak {r['worker_mb']:7.1f} MB, {r['seconds']:.1f} s",
                  flush=True)
    small, large = results[args.clips], results[10 * args.clips]
    print(f"ratio 10N/N: data {large['data_mb'] / small['data_mb']:.2f}x, driver {large['driver_mb'] / small['driver_mb']:.2f}x, "
          f"worker {large['worker_mb'] / small['worker_mb']:.2f}x (goal: <= 1.2x); load {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
