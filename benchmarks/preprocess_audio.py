"""openSMILE eGeMAPS LLDs over N wav files: the Ray Data stage vs a serial loop, a 2-process pool
and opensmile's own multiprocessing, side by side in one run.

    python benchmarks/preprocess_audio.py [--files 200] [--workers 2] [--rounds 1]

Each round times every contender on the same files (order rotated between rounds) and prints
files/s and the ratios of the Ray Data pipeline (``affectlab.features.pipeline.run_stage``:
manifest -> extractors -> Parquet, committed) to the others:

- ``ray_data``: the default ``strategy="tasks"`` in steady state: the Ray workers have already
  run this stage once (imports done, one ``Smile`` cached per worker), as for the second and
  later stages of one ``affectlab preprocess`` call, a re-run, or a long-lived session.
- ``ray_data_fresh``: the same on a freshly started local Ray (``ray.init`` before the clock,
  as ``affectlab preprocess`` does): worker processes import ``opensmile`` and build their
  ``Smile`` inside the timed run, as the first stage of a new job would.
- ``ray_data_actors``: the ``ActorPoolStrategy`` variant (actors started inside the timed run).

The process pool forks from this process, which has already imported ``opensmile``. On a
shared machine the numbers are noisy: the 1-minute load average is printed with each round.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor

import numpy as np

_SMILE = None


def write_corpus(directory: str, n: int, seed: int = 0) -> list[str]:
    """n speech-like wav files, 3.5-12.2 s (mean ~7.9 s: ~1580 s for 200), 16 kHz PCM_16."""
    import soundfile as sf

    os.makedirs(directory, exist_ok=True)
    rng = np.random.default_rng(seed)
    paths = []
    for i in range(n):
        seconds = rng.uniform(3.5, 12.2)
        t = np.arange(int(seconds * 16000)) / 16000
        f0 = rng.uniform(90, 220) * (1 + 0.15 * np.sin(2 * np.pi * rng.uniform(0.2, 0.8) * t + rng.uniform(0, 6)))
        phase = 2 * np.pi * np.cumsum(f0) / 16000
        voiced = np.sin(2 * np.pi * rng.uniform(1.5, 3) * t) > -0.3
        x = sum(np.sin(k * phase) / k for k in range(1, 8)) * 0.15 * voiced + 0.004 * rng.standard_normal(len(t))
        path = os.path.join(directory, f"f{i:04d}.wav")
        sf.write(path, x.astype(np.float32), 16000, subtype="PCM_16")
        paths.append(path)
    return paths


def _smile():  # noqa: ANN202
    import opensmile

    return opensmile.Smile(feature_set=opensmile.FeatureSet.eGeMAPSv02, feature_level=opensmile.FeatureLevel.LowLevelDescriptors)


def _init() -> None:
    global _SMILE
    _SMILE = _smile()


def _one(path: str) -> np.ndarray:
    return _SMILE.process_file(path).to_numpy()


def serial(files: list[str], workers: int) -> None:
    del workers
    smile = _smile()
    for path in files:
        smile.process_file(path).to_numpy()


def process_pool(files: list[str], workers: int) -> None:
    with ProcessPoolExecutor(workers, initializer=_init) as pool:
        list(pool.map(_one, files, chunksize=4))


def opensmile_mp(files: list[str], workers: int) -> None:
    import opensmile

    smile = opensmile.Smile(feature_set=opensmile.FeatureSet.eGeMAPSv02, feature_level=opensmile.FeatureLevel.LowLevelDescriptors,
                            num_workers=workers, multiprocessing=True)
    smile.process_files(files)


def ray_pipeline(files: list[str], workers: int, strategy: str = "tasks") -> None:
    from affectlab.data.manifest import manifest_from_rows
    from affectlab.features.audio import OpenSmileExtractor
    from affectlab.features.pipeline import run_stage

    out = tempfile.mkdtemp(prefix="bench-prep-")
    try:
        manifest = manifest_from_rows(
            [{"sample_id": os.path.basename(p)[:-4], "dataset": "bench", "subject": "s", "audio_path": p} for p in files],
            source="bench",
        )
        result = run_stage(manifest, OpenSmileExtractor, {"feature_set": "egemaps"}, out=out, num_workers=workers, progress=False,
                           strategy=strategy)
        if result.n_ok != len(files):
            raise RuntimeError(f"pipeline wrote {result.n_ok} of {len(files)} files")
    finally:
        shutil.rmtree(out, ignore_errors=True)


def start_ray(workers: int) -> None:
    """A local Ray with ``workers`` CPUs and Ray Data's one-time driver set-up done."""
    import ray

    ray.init(num_cpus=workers, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
    # Ray Data's one-time set-up in a driver (its stats actor, executor imports) is part of "Ray
    # is up", like ray.init: done before the clock runs. Worker start-up is still timed.
    ray.data.DataContext.get_current().enable_progress_bars = False
    ray.data.range(2, override_num_blocks=1).map_batches(lambda b: b).take_all()


CONTENDERS: dict[str, Callable[[list[str], int], None]] = {
    "serial": serial,
    "process_pool": process_pool,
    "opensmile_mp": opensmile_mp,
    "ray_data": ray_pipeline,
    "ray_data_fresh": ray_pipeline,  # run after a Ray restart (untimed); see main()
    "ray_data_actors": lambda files, workers: ray_pipeline(files, workers, "actors"),
}
RAY_CONTENDERS = ("ray_data", "ray_data_fresh", "ray_data_actors")


def main() -> None:
    """Run the rounds and print the table and ratios."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=200)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--data", default=None, help="directory for the generated wav files (default: temporary)")
    args = parser.parse_args()

    import ray

    data = args.data or tempfile.mkdtemp(prefix="bench-wav-")
    files = write_corpus(data, args.files)
    import soundfile as sf

    audio_s = sum(sf.info(f).duration for f in files)
    start_ray(args.workers)
    ray_pipeline(files[: 4 * args.workers], args.workers)  # steady state for "ray_data" (untimed)
    times: dict[str, list[float]] = {name: [] for name in CONTENDERS}
    names = list(CONTENDERS)
    print(f"{len(files)} files, {audio_s:.0f} s of audio, {args.workers} workers, {os.cpu_count()} CPUs")
    for r in range(args.rounds):
        order = names[r % len(names):] + names[: r % len(names)]
        for name in order:
            if name == "ray_data_fresh":
                ray.shutdown()
                start_ray(args.workers)
            load = os.getloadavg()[0]
            start = time.perf_counter()
            CONTENDERS[name](files, args.workers)
            times[name].append(time.perf_counter() - start)
            if name == "ray_data_fresh":  # leave the session in steady state for "ray_data"
                ray_pipeline(files[: 4 * args.workers], args.workers)
            print(f"  round {r + 1} {name:<15} {times[name][-1]:7.2f} s  {len(files) / times[name][-1]:6.2f} files/s  (load {load:.1f})")
    best = {name: min(t) for name, t in times.items()}
    median = {name: statistics.median(t) for name, t in times.items()}
    print("\ncontender        best s   files/s  x real time")
    for name in names:
        print(f"{name:<15} {best[name]:7.2f} {len(files) / best[name]:8.2f} {audio_s / best[name]:10.0f}")
    for label, agg in (("best", best), ("median", median)):
        for ray_name in RAY_CONTENDERS:
            ray_t = agg[ray_name]
            print(f"ratios ({label} of {args.rounds}): {ray_name} / process_pool = {agg['process_pool'] / ray_t:.3f}x   "
                  f"/ serial = {agg['serial'] / ray_t:.3f}x   / opensmile_mp = {agg['opensmile_mp'] / ray_t:.3f}x")
    ray.shutdown()
    if not args.data:
        shutil.rmtree(data, ignore_errors=True)


if __name__ == "__main__":
    main()
