"""Issue 6's science checks on synthetic ``speech-au``: LOSO occurrence UAR, planted vs shuffled.

    python benchmarks/loso_planted.py [--subjects 6] [--items 20] [--archs stacked] [--epochs 100]
                                      [--aus AU01,...] [--kinds occurrence] [--features DIR]
                                      [--set training.lr=3e-3 ...] [--out DIR] [--relations planted,shuffled]

For each relation (``planted``: AU intensities driven by the prosody; ``shuffled``: every
recording paired with another's labels, nothing learnable) it synthesises the corpus, runs
``affectlab preprocess`` (eGeMAPS LLDs + aligned AU labels) and a leave-one-speaker-out CV of the
given architectures (default: on the occurrence class of all eight planted AUs; ``affectlab cv``:
one training per held-out speaker x AU x class x architecture, as parallel Ray Tune trials). It
prints, per class, the AUs x architectures table of mean UAR over folds (in %) and the mean over
AUs per architecture, and writes everything under ``--out`` (default: a temporary directory that
is kept). ``--features`` reuses an earlier preprocess output (one relation only).

Targets (issue 6): planted mean UAR >= 0.80 with the best architecture; shuffled <= 0.58.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXPERIMENT = os.path.join(ROOT, "search_spaces", "au_003.yaml")


def run_relation(relation: str, args: argparse.Namespace, out: str) -> dict[tuple[str, str], dict[str, float]]:
    """Synthesise, preprocess and cross-validate one relation; ``{(kind, arch): {au: mean UAR}}``."""
    from affectlab.data.synth import generate
    from affectlab.data.synth.speech_au import AUS
    from affectlab.preprocess import preprocess
    from affectlab.training.config import load_experiment
    from affectlab.training.cv import run_cv

    pre = args.features
    if pre is None:
        card = generate("speech-au", os.path.join(out, "corpus"), subjects=args.subjects, items=args.items,
                        seed=args.seed, relation=relation, overwrite=True)
        pre = os.path.join(out, "preprocessed")
        preprocess(card, pre, audio="egemaps", progress=False, echo=lambda _line: None)
    base = load_experiment(EXPERIMENT, [f"data.features={pre}", f"training.max_epochs={args.epochs}",
                                        "scaling.runner=in_process", "scaling.torch_threads=1", *args.set]).base
    started = time.perf_counter()
    result = run_cv(base, out=out, folds="loso", aus=args.aus or list(AUS), kinds=args.kinds, archs=args.archs)
    print(f"  {relation}: {len(result.rows)} trainings in {time.perf_counter() - started:.0f} s", flush=True)
    table: dict[tuple[str, str], dict[str, list[float]]] = {}
    for row in result.rows:
        table.setdefault((row["kind"], row["arch"]), {}).setdefault(row["au"], []).append(row["uar"])
    return {key: {au: sum(v) / len(v) for au, v in per_au.items()} for key, per_au in table.items()}


def main() -> None:
    """Run the relations and print the tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subjects", type=int, default=6)
    parser.add_argument("--items", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--archs", default="stacked", help="comma-separated model names")
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--relations", default="planted,shuffled")
    parser.add_argument("--aus", default=None, help="comma-separated AUs (default: all eight)")
    parser.add_argument("--kinds", default="occurrence", help="comma-separated classes")
    parser.add_argument("--features", default=None, help="an earlier preprocess output to reuse")
    parser.add_argument("--set", action="append", default=[], help="config override, e.g. training.lr=1e-3")
    parser.add_argument("--out", default=None)
    parser.add_argument("--num-cpus", type=int, default=None)
    args = parser.parse_args()
    args.archs = [a for a in args.archs.split(",") if a]
    args.aus = [a for a in args.aus.split(",") if a] if args.aus else None
    args.kinds = [k for k in args.kinds.split(",") if k]

    from affectlab.runtime import ray_session

    out = args.out or tempfile.mkdtemp(prefix="loso-planted-")
    print(f"{args.subjects} speakers x {args.items} recordings, archs {','.join(args.archs)}, out {out}", flush=True)
    results: dict[str, dict[tuple[str, str], dict[str, float]]] = {}
    with ray_session(num_cpus=args.num_cpus):
        for relation in [r for r in args.relations.split(",") if r]:
            results[relation] = run_relation(relation, args, os.path.join(out, relation))
    for relation, per_key in results.items():
        for kind in args.kinds:
            per_arch = {arch: v for (k, arch), v in per_key.items() if k == kind}
            aus = sorted(next(iter(per_arch.values())))
            print(f"\n{relation}: LOSO {kind} UAR (%), mean over the held-out speakers")
            print("AU     " + "".join(f"{a:>20}" for a in per_arch))
            for au in aus:
                print(f"{au:<7}" + "".join(f"{100 * per_arch[a][au]:20.1f}" for a in per_arch))
            print("mean   " + "".join(f"{100 * sum(v.values()) / len(v):20.1f}" for v in per_arch.values()))


if __name__ == "__main__":
    main()
