"""Emotion from faces, speech and their fusion on synthetic RAVDESS video (issue 13's acceptance).

    python benchmarks/emotion_faces.py [--actors 24] [--items 14] [--size 96] [--crop 48]
        [--epochs 30] [--skip 21] [--frame-step 3] [--out /tmp/affectlab-emotion-bench] [--seed-recipe]

Steps (each skipped when its output exists, so an interrupted run continues):

1. ``synth ravdess`` with video, ``planted`` and ``shuffled`` (the control), ``--actors`` x ``--items``;
2. ``preprocess``: dlib landmarks, ``--crop`` px grey face crops, eGeMAPS functionals (Ray Data);
3. the mean-face ablation as ONE grid sweep (``tune.search: grid`` over ``data.emotion.mean_face``,
   two in-process trials side by side) on the planted corpus, actors 1-18 / 19-20 / 21-24;
4. the face model on the shuffled corpus (same recipe, mean face on);
5. the speech classifier (eGeMAPS functionals, z-scored per speaker and, for comparison, only
   globally) on both corpora and late fusion with the face run;
6. leave-one-actor-out of the speech classifier (``affectlab cv``'s emotion grid) on both corpora:
   every recording scored once by a model that never saw its actor (the pooled row).

Prints one table: setting | frame accuracy | full-video accuracy | test videos. The recipe is
``search_spaces/emotion.yaml`` (the seed's) at ``--crop`` px with lighter regularisation
(conv dropout 0.1, dense 0.3, no cutout) unless ``--seed-recipe``: on this small synthetic
corpus the seed's dropout 0.5 / 0.6 + 0.4 cutout learns far more slowly (RESULTS.md).
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

SPACE = Path(__file__).resolve().parents[1] / "search_spaces" / "emotion.yaml"


def _split(actors: int) -> str:
    names = [f"actor_{i:02d}" for i in range(1, actors + 1)]
    test = names[20:] if actors == 24 else names[-2:]
    val = names[18:20] if actors == 24 else names[-4:-2]
    train = [n for n in names if n not in test and n not in val]
    return "{" + ", ".join(f"{k}: [{', '.join(v)}]" for k, v in (("train", train), ("val", val), ("test", test))) + "}"


def _prepare(root: str, relation: str, args: argparse.Namespace) -> str:
    from affectlab.data.synth import generate
    from affectlab.features import io
    from affectlab.preprocess import preprocess

    prep = os.path.join(root, relation, "prep")
    if os.path.exists(os.path.join(prep, "_SUCCESS.json")):
        return prep
    started = time.perf_counter()
    card = generate("ravdess", os.path.join(root, relation, "corpus"), subjects=args.actors, items=args.items,
                    seed=args.seed, relation=relation, video=True, size=args.size, overwrite=True)
    synth_s = time.perf_counter() - started
    preprocess(card, prep, audio="egemaps,functionals", video="landmarks,face", face_sizes=[args.crop],
               progress=False, echo=print)
    detected = io.load_features(prep, "landmarks", columns=["detected_fraction"]).column("detected_fraction")
    print(f"{relation}: synth {synth_s:.0f} s, preprocess {time.perf_counter() - started - synth_s:.0f} s, "
          f"detected fraction min {min(detected.to_pylist()):.3f}", flush=True)
    return prep


def _overrides(prep: str, args: argparse.Namespace) -> list[str]:
    sets = [f"data.features={prep}", f"data.emotion.split={_split(args.actors)}",
            f"data.emotion.crop_size={args.crop}", f"data.emotion.input_size={args.crop}",
            f"data.emotion.skip_first_frames={args.skip}", f"data.emotion.frame_step={args.frame_step}",
            f"training.max_epochs={args.epochs}",
            f"training.patience={args.epochs}", "scaling.runner=in_process", "scaling.torch_threads=1"]
    if not args.seed_recipe:
        sets += ["model.kwargs={conv_dropout: 0.1, dense_dropout: 0.3}", "data.emotion.cutout=0.0"]
    return sets


SPEECH = ["data.emotion.modality=speech", "data.feature_set=egemaps_functionals", "model.name=speech_emotion_mlp",
          "model.kwargs={hidden: [64], dropout: 0.3}", "training.max_epochs=60", "training.patience=15",
          "training.batch_size=16", "scaling.torch_threads=2"]


def _row(name: str, result: dict) -> dict:
    test = result["test"]
    return {"setting": name, "frame_accuracy": test.get("test_accuracy"),
            "video_accuracy": test.get("test_video_accuracy"), "test_videos": result["videos"]["test"]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--actors", type=int, default=24)
    parser.add_argument("--items", type=int, default=14)
    parser.add_argument("--size", type=int, default=96)
    parser.add_argument("--crop", type=int, default=48)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--skip", type=int, default=21, help="frames skipped at the start (the seed: 21)")
    parser.add_argument("--frame-step", type=int, default=3, help="keep every n-th frame (the seed: 3)")
    parser.add_argument("--seed-recipe", action="store_true", help="the seed's dropout and cutout")
    parser.add_argument("--out", default="/tmp/affectlab-emotion-bench")
    args = parser.parse_args()

    from affectlab.runtime import ray_session
    from affectlab.training.config import load_experiment
    from affectlab.training.cv import run_cv
    from affectlab.training.emotion_run import fuse
    from affectlab.training.run import train
    from affectlab.tuning import load_sweep, run_sweep

    root = os.path.abspath(args.out)
    rows, started = [], time.perf_counter()
    with ray_session():
        preps = {rel: _prepare(root, rel, args) for rel in ("planted", "shuffled")}
        tag = f"skip{args.skip}_step{args.frame_step}_e{args.epochs}" + ("_seed_recipe" if args.seed_recipe else "")
        runs = os.path.join(root, f"runs_{tag}")  # a resumed grid must not mix settings
        grid = load_sweep(str(SPACE), [*_overrides(preps["planted"], args), "tune.search=grid",
                                       "space={data.emotion.mean_face: {grid: [true, false]}}",
                                       "tune.asha=null", "tune.num_samples=2", "tune.max_concurrent=2"])
        t0 = time.perf_counter()
        run_sweep(grid, out=os.path.join(runs, "mean_face_grid"), echo=print, resume=os.path.exists(
            os.path.join(runs, "mean_face_grid")))
        print(f"mean-face grid: {time.perf_counter() - t0:.0f} s", flush=True)
        trials = os.path.join(runs, "mean_face_grid", "trials")
        face_with = None
        for trial in sorted(os.listdir(trials)):
            result = json.loads(Path(trials, trial, "result.json").read_text())
            name = f"face, {'with' if result['mean_face'] else 'without'} mean face"
            rows.append(_row(name, result))
            if result["mean_face"]:
                face_with = os.path.join(trials, trial)
        shuffled = os.path.join(runs, "face_shuffled")
        rows.append(_row("face, shuffled control", train(
            load_experiment(str(SPACE), _overrides(preps["shuffled"], args)).base, out=shuffled).summary()))
        for rel in ("planted", "shuffled"):
            for norm in ("per_speaker", "global"):
                out = os.path.join(runs, f"speech_{rel}" + ("" if norm == "per_speaker" else f"_{norm}"))
                name = f"speech ({norm.replace('_', '-')} z-score){', shuffled control' if rel == 'shuffled' else ''}"
                rows.append(_row(name, train(load_experiment(str(SPACE), [
                    *_overrides(preps[rel], args), *SPEECH, f"data.normalisation={norm}"]).base, out=out).summary()))
        fused = fuse(face_with, os.path.join(runs, "speech_planted"), os.path.join(runs, "fusion"))
        rows.append({"setting": "fusion (face with mean face + speech)", "frame_accuracy": None,
                     "video_accuracy": fused["test"]["test_fusion_video_accuracy"],
                     "test_videos": fused["recordings"]})
        for rel in ("planted", "shuffled"):
            t0 = time.perf_counter()
            loso = run_cv(load_experiment(str(SPACE), [*_overrides(preps[rel], args), *SPEECH]).base,
                          out=os.path.join(runs, f"speech_loso_{rel}"))
            pooled = json.loads(Path(loso.out, "pooled.json").read_text())
            print(f"speech LOSO ({rel}): {len(loso.rows)} folds in {time.perf_counter() - t0:.0f} s", flush=True)
            rows.append({"setting": f"speech, leave one actor out, pooled{', shuffled control' if rel == 'shuffled' else ''}",
                         "frame_accuracy": None, "video_accuracy": pooled["video_accuracy"], "test_videos": pooled["videos"]})
    print(f"\n{args.actors} actors x {args.items} files, {args.size} px video, {args.crop} px crops, frames from "
          f"{args.skip} every {args.frame_step}, {args.epochs} epochs, "
          f"{'seed recipe' if args.seed_recipe else 'light regularisation'}; "
          f"{time.perf_counter() - started:.0f} s in all")
    print("| setting | frame accuracy | full-video accuracy | test videos |\n|---|---|---|---|")
    for row in rows:
        frame = "-" if row["frame_accuracy"] is None else f"{row['frame_accuracy']:.3f}"
        print(f"| {row['setting']} | {frame} | {row['video_accuracy']:.3f} | {row['test_videos']} |")


if __name__ == "__main__":
    main()
