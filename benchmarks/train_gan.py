"""Seed 002's categorical GAN on synthetic faces: acceptance scores and training throughput (issue 14).

    python benchmarks/train_gan.py [--subjects 60] [--items 8] [--iterations 3000] [--eval-every 300]
        [--lr 1e-3] [--update-rate 1] [--part acceptance|throughput|all] [--out /tmp/affectlab-gan-bench]
        [--au-threshold 2] [--va-loss ccc|mse] [--runs gan_au-planted,gan_au-planted-supervised,...]

Steps (each skipped when its output exists, so an interrupted run continues):

1. ``synth faces`` (64 px, 25 fps, ``planted`` and the ``shuffled`` control) and ``preprocess``
   (dlib landmarks, 28 px RGB face crops) on Ray Data;
2. **acceptance** (in-process trainings, 2 torch threads, one after the other): ``gan_au`` and
   ``gan_va`` on both corpora and the supervised-only discriminator (no generator) on the planted
   one; every checkpoint scored by ``affectlab evaluate``'s Ray tasks; the best score over the
   checkpoints (and its iteration) printed beside the shuffled control's floor: the mean F1 of
   predicting every AU present on the held-out frames;
3. **throughput**: iterations/s of the same GAN step (batch 64, update rate 1) as a plain torch loop
   (no platform), the in-process runner, and Ray Train with 1 and 2 workers (gloo, 1 thread
   each), measured side by side in one run; the steady rate excludes the first round (start-up).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

SPACE = Path(__file__).resolve().parents[1] / "search_spaces" / "gan_au.yaml"


def _prepare(root: str, relation: str, args: argparse.Namespace) -> str:
    from affectlab.data.synth import generate
    from affectlab.preprocess import preprocess

    prep = os.path.join(root, relation, "prep")
    if os.path.exists(os.path.join(prep, "_SUCCESS.json")):
        return prep
    card = generate("faces", os.path.join(root, relation, "corpus"), subjects=args.subjects, items=args.items,
                    seed=args.seed, relation=relation, size=64, overwrite=True)
    preprocess(card, prep, video="landmarks,face", face_sizes=[28], grayscale=False, progress=False, echo=print)
    return prep


def _config(prep: str, task: str, args: argparse.Namespace, **extra: str) -> object:
    from affectlab.training.config import load_experiment

    monitor = "val_au_mean_f1" if task != "gan_va" else "val_ccc_mean"
    sets = [f"data.features={prep}", f"data.task={task}", f"training.lr={args.lr}",
            f"training.update_rate={args.update_rate}", f"training.max_iterations={args.iterations}",
            f"training.eval_every={args.eval_every}", f"training.monitor={monitor}", "scaling.runner=in_process",
            "scaling.torch_threads=2", f"data.gan.au_threshold={args.au_threshold}",
            f"data.gan.va_loss={args.va_loss}",
            *[f"{k}={v}" for k, v in extra.items()]]
    return load_experiment(str(SPACE), sets).base


def _all_present_f1(run: str) -> float:
    """Mean over AUs of the F1 of predicting 'present' on every held-out frame: 2p / (1 + p)."""
    import numpy as np

    from affectlab.training.gan_data import load_gan_data
    from affectlab.training.gan_evaluate import run_config

    config, _ = run_config(run)
    au = load_gan_data(config).parts["val"]["au"].astype(float)
    scores = []
    for k in range(au.shape[1]):
        known = au[:, k] >= 0
        p = float(np.mean(au[known, k])) if known.any() else 0.0
        scores.append(2 * p / (1 + p) if p else 0.0)
    return float(np.mean(scores))


RUNS = [("gan_au", "planted", {}), ("gan_au", "shuffled", {}), ("gan_va", "planted", {}),
        ("gan_va", "shuffled", {}), ("gan_au", "planted", {"data.gan.supervised_only": "true"}),
        ("gan_va", "planted", {"data.gan.supervised_only": "true"})]


def _run_name(task: str, relation: str, extra: dict) -> str:
    return f"{task}-{relation}" + ("-supervised" if extra else "")


RUN_NAMES = [_run_name(*run) for run in RUNS]


def acceptance(root: str, runs_root: str, args: argparse.Namespace) -> list[dict]:
    from affectlab.training.gan_evaluate import best_over_checkpoints, evaluate_checkpoints
    from affectlab.training.run import train

    rows = []
    chosen = set(filter(None, args.runs.split(","))) or set(RUN_NAMES)
    for task, relation, extra in RUNS:
        name = _run_name(task, relation, extra)
        if name not in chosen:
            continue
        out = os.path.join(runs_root, name)
        if not os.path.exists(os.path.join(out, "result.json")):
            started = time.perf_counter()
            train(_config(os.path.join(root, relation, "prep"), task, args, **extra), out=out)
            print(f"{name}: trained in {time.perf_counter() - started:.0f} s", flush=True)
        frame = evaluate_checkpoints(out, checkpoints="all", split="test")
        best = best_over_checkpoints(frame)
        row = {"run": name, "checkpoints": len(frame)}
        for key in ("au_mean_f1", "au_mean_accuracy", "real_pct", "ccc_valence", "ccc_arousal"):
            if key in best:
                row[key] = f"{best[key]['value']:.3f} ({best[key]['iteration']})"
        if task == "gan_au":
            row["all_present_f1"] = f"{_all_present_f1(out):.3f}"
        rows.append(row)
        print(json.dumps(row), flush=True)
    return rows


def _plain_loop(prep: str, args: argparse.Namespace, iterations: int) -> float:
    """Iterations/s of a hand-written loop: the same networks, losses and schedule, no platform."""
    import torch

    from affectlab.training.gan_data import load_gan_data
    from affectlab.training.runners import build_modules
    from affectlab.training.tasks import DataInfo, build_task
    from affectlab.training.tasks.gan import generator_loss, steps_discriminator

    config = _config(prep, "gan_au", args)
    data = load_gan_data(config)
    task = build_task(config, DataInfo(model_kwargs=data.model_kwargs))
    modules = build_modules(config, task, data.model_kwargs)
    g, d = modules["generator"], modules["discriminator"]
    opt_g = torch.optim.Adam(g.parameters(), lr=args.lr, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(d.parameters(), lr=args.lr / 2, betas=(0.5, 0.999))
    torch.set_num_threads(2)
    batches = data.train_batches(64, 0)
    started = time.perf_counter()
    for i in range(iterations):
        try:
            raw = next(batches)
        except StopIteration:
            batches = data.train_batches(64, i)
            raw = next(batches)
        batch = task.to_device(raw, "cpu")
        real = batch["image"]
        z = torch.rand(len(real), 100) * 2 - 1
        if steps_discriminator(i, args.update_rate):
            with torch.no_grad():
                fake = g(z)
            loss = task.d_loss(d, d(torch.cat([real, fake])), batch, len(real))
            opt_d.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(d.parameters(), 20.0)
            opt_d.step()
        else:
            loss = generator_loss(d.split_logits(d(g(z)))["rf"])
            opt_g.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(g.parameters(), 20.0)
            opt_g.step()
    return iterations / (time.perf_counter() - started)


def throughput(root: str, args: argparse.Namespace) -> list[dict]:
    from affectlab.training.run import train

    prep = os.path.join(root, "planted", "prep")
    per_round, rounds = args.throughput_iterations, 3
    rows = [{"runner": "plain torch loop (2 threads)", "iterations/s": round(_plain_loop(prep, args, per_round * 2), 2)}]
    settings = [("in-process runner (2 threads)", {"scaling.runner": "in_process", "scaling.torch_threads": "2"}),
                ("Ray Train, 1 worker (2 threads)", {"scaling.runner": "ray_train", "scaling.num_workers": "1",
                                                      "scaling.cpus_per_worker": "2", "scaling.torch_threads": "2"}),
                ("Ray Train, 2 workers (1 thread each)", {"scaling.runner": "ray_train", "scaling.num_workers": "2",
                                                         "scaling.cpus_per_worker": "1", "scaling.torch_threads": "1"})]
    for label, extra in settings:
        out = os.path.join(root, "throughput", label.split(" (")[0].replace(" ", "_").replace(",", ""))
        config = _config(prep, "gan_au", args, **extra, **{
            "training.max_iterations": str(per_round * rounds), "training.eval_every": str(per_round),
            "data.gan.save_checkpoints": "false", "name": "throughput"})
        started = time.perf_counter()
        result = train(config, out=out)
        wall = time.perf_counter() - started
        steady = [row["epoch_s"] for row in result.history[1:]]
        rows.append({"runner": label, "iterations/s": round(per_round * len(steady) / sum(steady), 2),
                     "wall_s (with start-up)": round(wall, 1)})
        print(json.dumps(rows[-1]), flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--subjects", type=int, default=60)
    parser.add_argument("--items", type=int, default=8)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--iterations", type=int, default=3000)
    parser.add_argument("--eval-every", type=int, default=300)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--update-rate", type=int, default=1)
    parser.add_argument("--throughput-iterations", type=int, default=60, help="iterations per measured round")
    parser.add_argument("--part", choices=["acceptance", "throughput", "all"], default="all")
    parser.add_argument("--out", default="/tmp/affectlab-gan-bench")
    parser.add_argument("--au-threshold", type=float, default=2.0,
                        help="data.gan.au_threshold: an AU is present above this intensity (0-5; 0: any trace; "
                             "2: the shipped configs')")
    parser.add_argument("--va-loss", choices=["mse", "ccc"], default="ccc",
                        help="data.gan.va_loss of the VA runs: mse or ccc (1 - CCC over the batch); both are in the "
                             "seed's VA grid")
    parser.add_argument("--runs", default="", help="comma-separated acceptance runs to do (default: all), "
                                                   f"of {', '.join(RUN_NAMES)}")
    args = parser.parse_args()
    unknown = sorted(set(filter(None, args.runs.split(","))) - set(RUN_NAMES))
    if unknown:
        parser.error(f"--runs: unknown {', '.join(unknown)}; choose from {', '.join(RUN_NAMES)}")

    from affectlab.runtime import ray_session

    root = os.path.join(args.out, f"s{args.subjects}-i{args.items}-seed{args.seed}")
    started = time.perf_counter()
    with ray_session():
        for relation in ("planted", "shuffled"):
            _prepare(root, relation, args)
        results = {}
        if args.part in ("acceptance", "all"):
            threshold = f"-au{args.au_threshold:g}" if args.au_threshold else ""
            runs_root = os.path.join(root, f"lr{args.lr}-ur{args.update_rate}-it{args.iterations}{threshold}"
                                           f"-va{args.va_loss}")
            results["acceptance"] = acceptance(root, runs_root, args)
        if args.part in ("throughput", "all"):
            results["throughput"] = throughput(root, args)
    print(json.dumps(results, indent=2))
    print(f"total {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
