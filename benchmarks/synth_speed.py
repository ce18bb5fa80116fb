"""How long `affectlab synth` takes: speech-au, 6 subjects x 20 utterances (2-8 s each).

Run: ``python benchmarks/synth_speed.py [--subjects 6] [--items 20] [--kind speech-au] [--repeat 3]``.
Prints the wall-clock seconds per run (best and median), the CPU seconds (robust when the machine
is shared), the audio duration generated and the real-time factor. Single process, no Ray.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import soundfile as sf

from affectlab.data.synth import KINDS, generate


def main() -> None:
    """Parse arguments, generate the corpus ``--repeat`` times, print the timings."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kind", default="speech-au", choices=sorted(KINDS))
    parser.add_argument("--subjects", type=int, default=6)
    parser.add_argument("--items", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    times, cpu = [], []
    audio_s = 0.0
    for r in range(args.repeat):
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "corpus"
            start, start_cpu = time.perf_counter(), time.process_time()
            generate(args.kind, str(out), subjects=args.subjects, items=args.items, seed=r)
            times.append(time.perf_counter() - start)
            cpu.append(time.process_time() - start_cpu)
            audio_s = sum(sf.info(p).duration for p in out.rglob("*.wav"))
    n = args.subjects * args.items
    best, median = min(times), statistics.median(times)
    print(f"synth {args.kind}: {args.subjects} subjects x {args.items} items = {n} recordings")
    print(f"  seconds per run: best {best:.2f}, median {median:.2f} ({args.repeat} runs)")
    print(f"  CPU seconds per run (this process; unaffected by other load): best {min(cpu):.2f}")
    if audio_s:
        print(f"  audio generated: {audio_s:.0f} s (last run); real-time factor {best / audio_s:.4f}")


if __name__ == "__main__":
    main()
