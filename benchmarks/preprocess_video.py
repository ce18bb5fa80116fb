"""Video preprocessing speed: dlib landmarks serial vs the Ray Data stage, and the FAN's CPU cost.

    python benchmarks/preprocess_video.py [--clips 8] [--seconds 2] [--size 256] [--workers 2] [--fan-frames 3]

1. dlib back end (HOG detector + 68-point predictor) over ``--clips`` talking-face clips
   (``affectlab synth talking-face``: a real portrait): a serial loop over
   ``LandmarkExtractor.process`` and the Ray Data stage (``run_stage``: actors, Parquet,
   commit) on ``--workers`` CPUs, side by side in frames/s. Ray is started before the clock
   (as in a long-lived cluster); the stage's actor start-up is inside the timing.
2. The mouth-ROI crop stage (decode again + align + warp) serially, in frames/s.
3. face_alignment (S3FD + 2D-FAN) with RANDOMLY initialised weights on one CPU thread: the
   per-frame cost of detection and of the FAN (a cost figure only, the points are meaningless).

The 1-minute load average is printed: on a shared machine the numbers are noisy.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time

import numpy as np


def _load() -> str:
    return f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs"


def make_corpus(root: str, clips: int, seconds: float, size: int) -> tuple[str, object]:
    from affectlab.data.cards import build_manifest, load_card
    from affectlab.data.synth import generate

    card = generate("talking-face", os.path.join(root, "corpus"), subjects=clips, items=1, seed=0, size=size,
                    min_duration_s=seconds, max_duration_s=seconds)
    return card, build_manifest(load_card(card))


def bench_dlib(root: str, manifest, workers: int) -> dict[str, float]:  # noqa: ANN001
    import ray

    from affectlab import storage
    from affectlab.features.arrow import rows_to_table
    from affectlab.features.crops import MouthRoiExtractor
    from affectlab.features.landmarks import LandmarkExtractor
    from affectlab.features.pipeline import run_stage
    from affectlab.features.roi import canonical_mean_face

    rows = manifest.to_pylist()
    ex = LandmarkExtractor(backend="dlib")
    start = time.perf_counter()
    outs = [ex.process(r) for r in rows]
    serial = time.perf_counter() - start
    frames = sum(o["n_frames"] for o in outs)
    detected = sum(o["detected_fraction"] * o["n_frames"] for o in outs) / frames

    ray.init(num_cpus=workers, include_dashboard=False, logging_level="ERROR", log_to_driver=False)
    try:
        start = time.perf_counter()
        result = run_stage(manifest, LandmarkExtractor, {"backend": "dlib"}, out=os.path.join(root, "out"),
                           num_workers=workers, progress=False)
        parallel = time.perf_counter() - start
    finally:
        ray.shutdown()
    if result.n_ok != len(rows):
        raise RuntimeError(f"Ray stage processed {result.n_ok}/{len(rows)} clips: {result.errors[:3]}")

    part = os.path.join(root, "lm.parquet")
    storage.write_parquet(rows_to_table(outs), part)
    mean = canonical_mean_face(np.stack([o["shape"] for o in outs]))
    crop = MouthRoiExtractor(mean_face=mean.tolist())
    start = time.perf_counter()
    for r in rows:
        crop.process({**r, "landmarks_part": part})
    crops = time.perf_counter() - start
    return {"frames": frames, "detected": detected, "serial_fps": frames / serial,
            "ray_fps": frames / parallel, "crop_fps": frames / crops}


def bench_fan(root: str, size: int, n_frames: int) -> dict[str, float]:
    import torch
    from face_alignment.detection.sfd.net_s3fd import s3fd
    from face_alignment.models import FAN

    from affectlab.data.synth import talking_face as tf
    from affectlab.features import fan
    from affectlab.features.faces import largest_face

    torch.set_num_threads(1)
    torch.manual_seed(0)
    wdir = os.path.join(root, "fa-random")
    os.makedirs(wdir, exist_ok=True)
    torch.save(FAN(4).state_dict(), os.path.join(wdir, fan.FAN_FILE))
    torch.save(s3fd().state_dict(), os.path.join(wdir, fan.DETECTOR_FILES["sfd"]))
    backend = fan.FaceAlignmentBackend(model_dir=wdir, device="cpu", detector_threshold=0.0, batch_size=1)
    frames = tf.render_frames(np.zeros(n_frames + 1), np.zeros((n_frames + 1, 3)), size, np.ones(3))
    backend.detect(frames[:1])  # warm-up (numba JIT of face_alignment's heat-map decoding)
    det_s, fan_s = [], []
    for frame in frames[1:]:
        start = time.perf_counter()
        boxes = backend._detect_boxes(frame[None])[0]
        det_s.append(time.perf_counter() - start)
        start = time.perf_counter()
        backend._landmarks([frame], [boxes[largest_face(boxes)]])
        fan_s.append(time.perf_counter() - start)
    return {"detect_s": float(np.median(det_s)), "fan_s": float(np.median(fan_s))}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--fan-frames", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-video-") as root:
        _, manifest = make_corpus(root, args.clips, args.seconds, args.size)
        print(f"corpus: {manifest.num_rows} talking-face clips, {args.seconds:g} s, "
              f"{args.size}x{args.size} @ 25 fps; {_load()}")
        d = bench_dlib(root, manifest, args.workers)
        print(f"dlib landmarks ({d['frames']} frames, face found in {d['detected']:.1%}):")
        print(f"  serial loop          {d['serial_fps']:7.1f} frames/s")
        ratio = d["ray_fps"] / d["serial_fps"]
        print(f"  Ray Data, {args.workers} workers  {d['ray_fps']:7.1f} frames/s   "
              f"({ratio:.2f}x serial, actor start-up included)")
        print(f"mouth ROI crops, serial {d['crop_fps']:7.1f} frames/s")
        f = bench_fan(root, args.size, args.fan_frames)
        total = f["detect_s"] + f["fan_s"]
        print(f"face_alignment, random weights, 1 CPU thread ({args.size}px frames, median of {args.fan_frames}):")
        print(f"  S3FD detection {f['detect_s']:.2f} s/frame   2D-FAN {f['fan_s']:.2f} s/face   "
              f"total {total:.2f} s/frame ({1 / total:.2f} frames/s)")
        print(_load())


if __name__ == "__main__":
    main()
