"""Issue 6: does the seed-000 ``f0_to_au`` model beat constant predictions on planted speech-au?

    python benchmarks/f0_to_au_baseline.py --features DIR [--aus AU17,AU01] [--decode greedy,median]
                                           [--set training.max_epochs=40 ...] [--out DIR]

``--features`` is an ``affectlab preprocess`` output of a synthetic ``speech-au`` corpus (e.g. the
``planted/preprocessed`` directory that ``benchmarks/loso_planted.py`` leaves). For every AU and
decoding rule it runs a leave-one-speaker-out CV of ``search_spaces/f0_to_au.yaml`` (parallel Ray
Tune trials) and prints, as the mean over held-out speakers, the decoded test intensities' MAE
and CCC next to two constant predictors computed from the training split: the most frequent
token (``baseline_mae``) and the median token (``baseline_median_mae``, the constant with the
lowest expected absolute error). A constant has CCC 0.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
EXPERIMENT = os.path.join(ROOT, "search_spaces", "f0_to_au.yaml")


def main() -> None:
    """Run the CVs and print one line per AU x decoding rule."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--features", required=True)
    parser.add_argument("--aus", default="AU17")
    parser.add_argument("--decode", default="greedy,median")
    parser.add_argument("--set", action="append", default=[], help="config override, e.g. training.lr=1e-3")
    parser.add_argument("--out", default=None)
    parser.add_argument("--num-cpus", type=int, default=None)
    args = parser.parse_args()

    from affectlab import storage
    from affectlab.runtime import ray_session
    from affectlab.training.config import load_experiment
    from affectlab.training.cv import run_cv

    out = args.out or tempfile.mkdtemp(prefix="f0-to-au-")
    lines = []
    with ray_session(num_cpus=args.num_cpus):
        for decode in [d for d in args.decode.split(",") if d]:
            for au in [a for a in args.aus.split(",") if a]:
                base = load_experiment(EXPERIMENT, [f"data.features={args.features}", f"data.target.au={au}",
                                                    f"training.decode={decode}", "scaling.runner=in_process",
                                                    "scaling.torch_threads=1", *args.set]).base
                run_out = os.path.join(out, f"{au}-{decode}")
                result = run_cv(base, out=run_out, folds="loso")
                per_fold = []
                for row in result.rows:
                    summary = json.loads(storage.read_text(os.path.join(run_out, "cv", "runs", row["run"], "result.json")))
                    per_fold.append({**summary["test"], **summary["baseline"]})
                mean = {k: statistics.mean(f[k] for f in per_fold) for k in per_fold[0] if isinstance(per_fold[0][k], float)}
                wins = sum(f["test_mae"] < f["baseline_median_mae"] for f in per_fold)
                lines.append(f"{au:<6}{decode:<8}{mean['test_mae']:9.3f}{mean['baseline_mae']:10.3f}"
                             f"{mean['baseline_median_mae']:10.3f}{mean['test_ccc']:9.3f}{mean['test_uar']:9.3f}"
                             f"{mean['baseline_uar']:9.3f}   {wins}/{len(per_fold)}")
                print(lines[-1], flush=True)
    print(f"\nLOSO means over speakers ({out})")
    print("AU    decode   test_mae  mode_mae  median_mae  test_ccc test_uar base_uar  folds with mae < median")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
