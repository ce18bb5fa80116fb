"""Training and decoding speed of the ``tiny`` lip reader (issue 12, item 8), side by side in one run.

    python benchmarks/train_vsr.py [--subjects 4] [--items 6] [--epochs 3] [--prep DIR] [--out DIR]

1. A ``synth visemes`` corpus is preprocessed (dlib landmarks, 96 px mouth ROIs), or ``--prep``
   names an earlier output. Stages 1 (char LM) and 2 (visual pretraining) are trained once,
   in-process, so stage 3 starts from real pieces as it does in ``affectlab pipeline``.
2. Stage 3 (``search_spaces/vsr_integrate.yaml``, ``tiny``, greedy validation) for ``--epochs``
   epochs on the same training clips, four ways:

   - ``plain``: a plain PyTorch loop in this process: the lip reader, Adam, teacher-forced NLL
     written out here, then the same validation as the platform (greedy decoding, CER / WER);
   - ``in_process``: ``affectlab train``'s in-process runner (the platform's loop, no Ray);
   - ``ray_train x1`` and ``ray_train x2``: Ray Train with 1 and 2 DDP workers (gloo on CPU; the
     two take half a logical CPU each so that Ray Data keeps one to read with),
     the clips streamed from Parquet by Ray Data.

   Reported: the wall time of the whole training (start-up included), the seconds of the
   epochs after the first (steady state: training + validation, from each run's history, the
   plain loop timed the same way), and training clips per second over those epochs.
3. Decoding of the validation and test clips with the trained lip reader: utterances/s for
   greedy, beam 12 and beam 12 + LM, in one process.

Prints Markdown tables for ``benchmarks/RESULTS.md`` and the 1-minute load average of each row.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
SPACES = REPO / "search_spaces"


def prepare(out: str, subjects: int, items: int) -> str:
    """Synthesise and preprocess a visemes corpus under ``out``; the preprocessing output."""
    from affectlab.data.synth import generate
    from affectlab.preprocess import preprocess

    card = generate("visemes", os.path.join(out, "corpus"), subjects=subjects, items=items, seed=0, size=128,
                    overwrite=True)
    prep = os.path.join(out, "prep")
    preprocess(card, prep, audio="", video="landmarks,mouth", progress=False)
    return prep


def stage_config(stage: str, prep: str, *overrides: str) -> Any:
    """A stage file of ``search_spaces/vsr.yaml``'s pipeline, on ``prep``, with overrides."""
    from affectlab.training.vsr_pipeline import load_pipeline
    from affectlab.training.config import parse_experiment

    pipeline = load_pipeline(str(SPACES / "vsr.yaml"), [f"data.features={prep}", "scaling.torch_threads=1"])
    return parse_experiment(pipeline.stage_docs[stage], source=stage,
                            overrides=[*pipeline.stage_overrides(stage, None), *overrides]).base


def plain_loop(config: Any, epochs: int) -> dict[str, Any]:
    """Stage 3 in a plain PyTorch loop (module docstring); per-epoch seconds and the model."""
    import torch
    import torch.nn.functional as F

    from affectlab.models.vsr_vocab import PAD_ID
    from affectlab.training.runners import batch_seed, build_modules, shard_batches, torch_threads
    from affectlab.training.tasks.vsr import teacher_forcing
    from affectlab.training.vsr_data import load_vsr_data
    from affectlab.training.vsr_run import data_info, vsr_task

    started = time.perf_counter()
    torch.manual_seed(config.training.seed)
    data = load_vsr_data(config, in_process=True)
    task = vsr_task(config, data_info(config))
    model = build_modules(config, task, {})["model"]
    optimizer = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=config.training.lr)
    epoch_s = []
    with torch_threads(config.scaling.torch_threads):
        for epoch in range(1, epochs + 1):
            t0 = time.perf_counter()
            model.train()
            for raw in shard_batches(data.datasets["train"], config.training.batch_size,
                                     seed=batch_seed(config.training.seed, epoch, 0)):
                batch = task.to_device(raw, "cpu")
                inp, tgt = teacher_forcing(batch["tokens"], batch["token_lengths"])
                logits = model(batch["video"], batch["mask"], inp).logits
                loss = F.cross_entropy(logits.flatten(0, 1), tgt.flatten(), ignore_index=PAD_ID)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
            task.evaluate({"model": model}, shard_batches(data.datasets["val"], config.training.batch_size), "cpu",
                          prefix="val_")
            epoch_s.append(time.perf_counter() - t0)
    return {"wall_s": time.perf_counter() - started, "epoch_s": epoch_s, "train_clips": len(data.datasets["train"]),
            "model": model, "task": task, "data": data}


def platform_run(config: Any, out: str) -> dict[str, Any]:
    """Stage 3 through ``affectlab train``'s own code; per-epoch seconds from its history."""
    from affectlab.training.run import train

    started = time.perf_counter()
    result = train(config, out=out)
    return {"wall_s": time.perf_counter() - started, "epoch_s": [row["epoch_s"] for row in result.history],
            "train_clips": result.extra.get("clips", {}).get("train")}


def decode_speed(model: Any, task: Any, data: Any, beam: int) -> list[dict[str, Any]]:
    """Utterances/s of greedy, beam and beam + LM over the validation and test clips."""
    import torch

    from affectlab.models.vsr_decoding import transcribe
    from affectlab.training.runners import shard_batches

    model.eval()
    lm = task.load_lm()
    lm.eval()
    rows = []
    for method, width, lm_weight in (("greedy", 1, 0.0), (f"beam {beam}", beam, 0.0), (f"beam {beam} + LM", beam, 0.5)):
        n, seconds = 0, 0.0
        with torch.no_grad():
            for part in ("val", "test"):
                for raw in shard_batches(data.datasets[part], 8):
                    batch = task.to_device(raw, "cpu")
                    t0 = time.perf_counter()
                    transcribe(model, batch["video"], batch["mask"], vocab=task.vocab,
                               method="greedy" if width == 1 else "beam", beam_width=width,
                               lm=lm if lm_weight else None, lm_weight=lm_weight)
                    seconds += time.perf_counter() - t0
                    n += len(raw["sample_id"])
        rows.append({"method": method, "utterances": n, "seconds": seconds, "per_s": n / seconds})
    return rows


def _steady(epoch_s: list[float]) -> float:
    return sum(epoch_s[1:]) if len(epoch_s) > 1 else sum(epoch_s)


def main() -> None:
    """Run the comparison and print the tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subjects", type=int, default=4)
    parser.add_argument("--items", type=int, default=6)
    parser.add_argument("--epochs", type=int, default=3, help="stage-3 epochs per variant (>= 2)")
    parser.add_argument("--beam", type=int, default=12)
    parser.add_argument("--prep", default=None, help="an earlier `preprocess --video landmarks,mouth` output")
    parser.add_argument("--out", default=None, help="work directory (default: temporary, removed)")
    args = parser.parse_args()
    if args.epochs < 2:
        raise SystemExit("--epochs must be >= 2 (the first epoch is start-up, the others are timed)")
    import ray
    import torch

    from affectlab.runtime import ray_session
    from affectlab.training.run import train

    work = os.path.abspath(args.out or tempfile.mkdtemp(prefix="affectlab-vsr-bench-"))
    print(f"machine: {os.cpu_count()} CPUs, {platform.platform()}, Python {platform.python_version()}, "
          f"torch {torch.__version__}, Ray {ray.__version__}", flush=True)
    with ray_session(num_cpus=os.cpu_count()):
        prep = args.prep or prepare(work, args.subjects, args.items)
        lm, visual = os.path.join(work, "lm"), os.path.join(work, "visual")
        common = ("scaling.runner=in_process", "training.batch_size=8")
        train(stage_config("lm", prep, *common, "training.max_epochs=15"), out=lm)
        train(stage_config("visual", prep, *common, f"data.vsr.init={lm}", "data.vsr.stage2_loss=ctc",
                           "training.max_epochs=1"), out=visual)
        stage3 = ("training.batch_size=8", f"data.vsr.init={visual}", f"training.max_epochs={args.epochs}",
                  f"training.patience={args.epochs}", "data.vsr.decoding.val_method=greedy")
        rows = []
        plain = plain_loop(stage_config("lipreader", prep, *stage3), args.epochs)
        rows.append(("plain PyTorch loop", os.getloadavg()[0], plain))
        print(f"  plain: {plain['wall_s']:.1f} s", flush=True)
        for label, scaling in (("in_process", ("scaling.runner=in_process",)),
                               ("ray_train x1", ("scaling.runner=ray_train", "scaling.num_workers=1")),
                               ("ray_train x2", ("scaling.runner=ray_train", "scaling.num_workers=2",
                                                 "scaling.cpus_per_worker=0.5"))):
            config = stage_config("lipreader", prep, *stage3, *scaling)
            run = platform_run(config, os.path.join(work, label.replace(" ", "_")))
            rows.append((label, os.getloadavg()[0], run))
            print(f"  {label}: {run['wall_s']:.1f} s", flush=True)
        speeds = decode_speed(plain["model"], plain["task"], plain["data"], args.beam)
    base = _steady(plain["epoch_s"])
    clips = plain["train_clips"]
    print(f"\nstage 3 (`tiny`), {clips} training clips, {args.epochs} epochs, batch 8; steady = epochs 2..{args.epochs} "
          "(training + greedy validation)\n")
    print("| variant | wall s (start-up included) | steady s | training clips/s (steady) | steady vs plain | load |")
    print("|---|---|---|---|---|---|")
    for label, load, r in rows:
        steady = _steady(r["epoch_s"])
        epochs = max(len(r["epoch_s"]) - 1, 1)
        print(f"| {label} | {r['wall_s']:.1f} | {steady:.1f} | {clips * epochs / steady:.2f} | {base / steady:.2f}x | "
              f"{load:.1f} |")
    print("\n| decoding | utterances | seconds | utterances/s |")
    print("|---|---|---|---|")
    for r in speeds:
        print(f"| {r['method']} | {r['utterances']} | {r['seconds']:.1f} | {r['per_s']:.2f} |")
    if not args.out:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
