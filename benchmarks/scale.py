"""Scale figures for ``affectlab preprocess`` (issue 15, item 6): corpus size, resume, nodes.

    python benchmarks/scale.py [--sizes 200,1000,4000] [--workers 2] [--skip-cluster]
                               [--out DIR] [--data DIR] [--cluster-files 100] [--keep] [--no-dashboard]

1. **Sizes.** For each size N (the first N files of one corpus), side by side in this run:

   - ``affectlab``: the user's command, ``affectlab preprocess CARD --out OUT --audio egemaps
     --no-labels --num-cpus W --no-progress``, run in a fresh Python subprocess (the CLI's own
     ``main``; a ``csv`` card over the N files, 20 speakers): Python and affectlab imports, an
     embedded local Ray started by the command, the stage, speaker stats, provenance, Ray
     shut down. Reported: the stage's seconds (``run_stage``, from the provenance: the
     embedded Ray's start, which the command defers until there is something to extract, worker
     start-up, extraction, commits; ``preprocess_audio.py``'s ratios timed a stage on a Ray
     already running), the whole command's wall time (subprocess start to exit), files/s of the stage, the
     driver's peak RSS (``VmHWM``) and CPU seconds (``getrusage``) of the driver process, the CPU
     seconds of the Ray task workers and of Ray's other processes (raylet, GCS, dashboard,
     agents, log monitor; sampled every second), the published Parquet files and rows.
   - ``pool``: ``ProcessPoolExecutor(W)`` with ``chunksize=4`` over the same files
     (``preprocess_audio.process_pool``: one ``Smile`` per process, features computed and
     dropped; no Parquet, no Ray), forked from this process, which has imported ``opensmile``.

   Ratios = pool seconds / affectlab seconds (1.0 = as fast as the pool), for the stage and
   for the whole command. The order of the two alternates between sizes. The CPU columns
   show where a gap goes: on 2 cores every CPU-second outside the workers is taken from them.
   (``preprocess_audio.py`` timed its pool while its Ray session was up and idle; here no Ray
   runs during the pool.) ``--no-dashboard`` starts the command's local Ray without Ray's
   dashboard (a what-if: the command starts it today; it costs ~0.05 of a core while it runs).
2. **Resume.** The same command again on the largest output: it must extract nothing (the
   provenance says 0 ok, N skipped; the published files are unchanged) and exit within 5 s
   (subprocess wall time, Python start-up included).
3. **Nodes** (unless ``--skip-cluster``): the same command on ``--cluster-files`` files through
   ``RAY_ADDRESS`` on a ``ray.cluster_utils.Cluster`` with W logical CPUs, either one node
   (head with W CPUs) or three (a head without CPUs and W one-CPU worker nodes, as the
   ``ray_cluster`` test fixture); blocks and rows per node id from Ray's state API (each block
   task is named ``<stage> block i/n (r rows)``).

The corpus is ``preprocess_audio.write_corpus`` (seed 0: per-file lengths uniform in
3.5-12.2 s, mean ~7.9 s, 16 kHz PCM_16): its files are drawn in sequence, so the first 1000
files of the 4000-file corpus are the files of ``preprocess_audio.py --files 1000``. Writing it
costs ~35-65 ms per file here (2-4 min for 4000); pass ``--data DIR`` to keep and reuse it.
Prints Markdown tables ready for ``benchmarks/RESULTS.md``. The machine is shared or not: the
1-minute load average is printed with each run.
"""

from __future__ import annotations

import argparse
import csv
import glob
import json
import os
import platform
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from preprocess_audio import process_pool, write_corpus  # noqa: E402

SPEAKERS = 20
RESUME_LIMIT_S = 5.0


# ----------------------------------------------------------------------------------------------
# corpus and cards


def corpus(data: str, n: int) -> list[str]:
    """The first ``n`` files of the seed-0 corpus in ``data`` (written once, then reused)."""
    info = os.path.join(data, "corpus.json")
    files = [os.path.join(data, f"f{i:04d}.wav") for i in range(n)]
    if os.path.exists(info) and json.load(open(info))["n"] >= n and all(map(os.path.exists, files)):
        return files
    start = time.perf_counter()
    written = write_corpus(data, n)
    assert written == files, "write_corpus names changed"
    with open(info, "w") as f:
        json.dump({"n": n, "seed": 0, "writer": "benchmarks/preprocess_audio.py:write_corpus"}, f)
    print(f"wrote {n} wav files in {time.perf_counter() - start:.1f} s ({data})", flush=True)
    return files


def card_for(data: str, n: int, cards: str) -> str:
    """A ``csv`` dataset card over the first ``n`` files (manifest written next to them)."""
    manifest = f"manifest-{n}.csv"
    with open(os.path.join(data, manifest), "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["sample_id", "subject", "audio", "video", "labels"])
        for i in range(n):
            w.writerow([f"f{i:04d}", f"spk{i % SPEAKERS:02d}", f"f{i:04d}.wav", "", ""])
    path = os.path.join(cards, f"scale-{n}.yaml")
    os.makedirs(cards, exist_ok=True)
    with open(path, "w") as f:
        f.write(f"name: scale{n}\nadapter: csv\nroot: {json.dumps(os.path.abspath(data))}\n"
                f"options:\n  manifest: {manifest}\n")
    return path


def audio_seconds(files: list[str]) -> float:
    import soundfile as sf

    return sum(sf.info(f).duration for f in files)


# ----------------------------------------------------------------------------------------------
# the affectlab command, in a subprocess


def child_main(argv: list[str]) -> None:
    """``scale.py --child RESULT_JSON -- <affectlab args>``: run the CLI in this process, then
    write this (driver) process's peak RSS and CPU seconds, and the CPU seconds of the Ray
    processes it started (sampled every second), to RESULT_JSON."""
    import threading

    result_path, args = argv[0], argv[2:]
    start = time.perf_counter()
    seen: dict[int, tuple[str, float]] = {}
    stop = threading.Event()
    sampler = threading.Thread(target=_sample_cpu, args=(stop, seen), daemon=True)
    sampler.start()
    from affectlab.cli import main

    if os.environ.get("SCALE_NO_DASHBOARD") == "1":  # --no-dashboard: what the figures would be without it
        import affectlab.runtime as runtime

        session = runtime.ray_session
        runtime.ray_session = lambda **kw: session(**{**kw, "dashboard": False})  # type: ignore[assignment]

    rc = 0
    try:
        main(args)
    except SystemExit as exc:
        rc = int(exc.code or 0)
    stop.set()
    sampler.join()
    ru = resource.getrusage(resource.RUSAGE_SELF)  # CPU only: ru_maxrss survives exec (the parent's size at fork)
    cpu = {"workers": 0.0, "ray": 0.0}
    for kind, seconds in seen.values():
        cpu[kind] += seconds
    with open(result_path, "w") as f:
        json.dump({"rc": rc, "maxrss_mib": _peak_rss_mib(), "cpu_s": ru.ru_utime + ru.ru_stime,
                   "workers_cpu_s": cpu["workers"], "ray_cpu_s": cpu["ray"], "ray_processes": len(seen),
                   "in_process_s": time.perf_counter() - start}, f)


def _peak_rss_mib() -> float:
    """This process's peak resident set (``VmHWM``, reset by exec; ``ru_maxrss`` is not: it starts
    at the size of the parent that forked it, the benchmark's own process here)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # not Linux


def _sample_cpu(stop: Any, seen: dict[int, tuple[str, float]]) -> None:
    """CPU seconds of this process's descendants (a local Ray's processes; none on a cluster),
    last value seen per process: ``workers`` (task workers) or ``ray`` (raylet, GCS, agents,
    dashboard, log monitor, Ray Data's actors). A process's last second before it exits is lost."""
    import ray  # noqa: F401 - puts Ray's bundled psutil on sys.path
    import psutil

    me = psutil.Process()
    while not stop.wait(1.0):
        for proc in me.children(recursive=True):
            try:
                cmd = " ".join(proc.cmdline())
                times = proc.cpu_times()
            except psutil.Error:
                continue
            worker = cmd.startswith("ray::") and "Agent" not in cmd and "Actor" not in cmd
            seen[proc.pid] = ("workers" if worker else "ray", times.user + times.system)


def run_affectlab(card: str, out: str, workers: int | None, env: dict[str, str] | None = None) -> dict[str, Any]:
    """``affectlab preprocess`` in a fresh Python; wall time measured here, the rest from its provenance."""
    fd, result_path = tempfile.mkstemp(suffix=".json")
    os.close(fd)
    args = ["preprocess", card, "--out", out, "--audio", "egemaps", "--no-labels", "--no-progress"]
    if workers:
        args += ["--num-cpus", str(workers)]
    load = os.getloadavg()[0]
    start = time.perf_counter()
    proc = subprocess.run([sys.executable, os.path.abspath(__file__), "--child", result_path, "--", *args],
                          env=env, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout[-4000:] + proc.stderr[-4000:])
        raise SystemExit(f"affectlab preprocess failed (exit {proc.returncode})")
    with open(result_path) as f:
        rusage = json.load(f)
    os.remove(result_path)
    with open(os.path.join(out, "_SUCCESS.json")) as f:
        prov = json.load(f)
    stage = prov["stages"][0]
    parts = glob.glob(os.path.join(stage["feature_dir"], "**", "part-*.parquet"), recursive=True)
    return {"wall_s": wall, "load": load, "stage_s": stage["seconds"], "n_ok": stage["n_ok"], "n_skipped": stage["n_skipped"],
            "n_failed": stage["n_failed"], "files": len(parts), "rows": _rows(parts), "feature_dir": stage["feature_dir"],
            "run_id": prov["run_id"], **rusage}


def _rows(parts: list[str]) -> int:
    import pyarrow.parquet as pq

    return sum(pq.ParquetFile(p).metadata.num_rows for p in parts)


def run_pool(files: list[str], workers: int) -> dict[str, Any]:
    load = os.getloadavg()[0]
    before = os.times()
    start = time.perf_counter()
    process_pool(files, workers)
    wall = time.perf_counter() - start
    after = os.times()
    cpu = after.children_user + after.children_system - before.children_user - before.children_system
    return {"wall_s": wall, "load": load, "cpu_s": cpu}


# ----------------------------------------------------------------------------------------------
# 1-node vs 3-node


def run_on_cluster(nodes: int, workers: int, card: str, out: str) -> dict[str, Any]:
    """The same command through RAY_ADDRESS on a local ``Cluster`` of ``nodes`` nodes (W logical CPUs)."""
    import ray
    from ray.cluster_utils import Cluster

    store = 200 * 1024 * 1024
    head = {"num_cpus": workers if nodes == 1 else 0, "object_store_memory": store, "include_dashboard": True}
    cluster = Cluster(initialize_head=True, head_node_args=head)
    try:
        for _ in range(nodes - 1):
            cluster.add_node(num_cpus=max(1, workers // (nodes - 1)), object_store_memory=store)
        cluster.wait_for_nodes()
        env = {**os.environ, "RAY_ADDRESS": cluster.address}
        result = run_affectlab(card, out, None, env=env)
        ray.init(address=cluster.address, logging_level="ERROR", log_to_driver=False)
        try:
            result["per_node"] = _blocks_per_node()
            result["node_info"] = {n["NodeID"][:8]: {"head": n["NodeID"] == cluster.head_node.node_id,
                                                     "cpus": n["Resources"].get("CPU", 0)} for n in ray.nodes() if n["Alive"]}
        finally:
            ray.shutdown()
    finally:
        cluster.shutdown()
    return result


def _blocks_per_node() -> dict[str, dict[str, float]]:
    """Block tasks and busy seconds per node id, from Ray's state API: the finished tasks of the
    stage's Ray Data operator (``MapBatches(_run_block)``: one task per block of recordings)."""
    from ray.util.state import list_tasks

    done: list[Any] = []
    for _ in range(20):  # task events reach the GCS asynchronously (about once a second)
        tasks = [t for t in list_tasks(detail=True, limit=10_000, raise_on_missing_output=False)
                 if "_run_block" in (t.name or "") or "_run_block" in (t.func_or_class_name or "")]
        done = [t for t in tasks if t.state == "FINISHED"]
        if done and all(t.state in ("FINISHED", "FAILED") for t in tasks):
            break
        time.sleep(1)
    per_node: dict[str, dict[str, float]] = {}
    for t in done:
        node = (t.node_id or "?")[:8]
        entry = per_node.setdefault(node, {"blocks": 0, "busy_s": 0.0})
        entry["blocks"] += 1
        if t.start_time_ms and t.end_time_ms:
            entry["busy_s"] += (t.end_time_ms - t.start_time_ms) / 1000
    return per_node


# ----------------------------------------------------------------------------------------------


def main() -> None:
    """Run the sizes, the resume and the node comparison; print Markdown tables."""
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child_main(sys.argv[2:])
        return
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="200,1000,4000", help="comma-separated corpus sizes (files)")
    parser.add_argument("--workers", type=int, default=2, help="CPUs of the embedded Ray and processes of the pool")
    parser.add_argument("--out", default=None, help="output directory (default: temporary, removed unless --keep)")
    parser.add_argument("--data", default=None, help="corpus directory, written once and reused (default: under --out)")
    parser.add_argument("--skip-cluster", action="store_true", help="skip the 1-node vs 3-node comparison")
    parser.add_argument("--skip-resume", action="store_true", help="skip the resume timing")
    parser.add_argument("--cluster-files", type=int, default=100, help="files for the node comparison")
    parser.add_argument("--keep", action="store_true", help="keep the preprocessed outputs")
    parser.add_argument("--no-dashboard", action="store_true",
                        help="start the command's local Ray without the dashboard (not what `affectlab preprocess` does "
                             "today: a what-if figure)")
    args = parser.parse_args()
    sizes = sorted({int(s) for s in args.sizes.split(",") if s.strip()})
    if args.no_dashboard:
        os.environ["SCALE_NO_DASHBOARD"] = "1"  # read by the --child processes
    work = os.path.abspath(args.out or tempfile.mkdtemp(prefix="affectlab-scale-"))
    data = os.path.abspath(args.data or os.path.join(work, "wav"))
    os.makedirs(work, exist_ok=True)

    import opensmile  # noqa: F401 - the pool forks from this process with opensmile imported
    import ray

    files = corpus(data, max(sizes + ([args.cluster_files] if not args.skip_cluster else [])))
    print(f"machine: {os.cpu_count()} CPUs, {platform.platform()}, Python {platform.python_version()}, Ray {ray.__version__}; "
          f"workers {args.workers}; local Ray dashboard {'off (--no-dashboard)' if args.no_dashboard else 'as the command starts it'}",
          flush=True)

    rows = []
    for k, n in enumerate(sizes):
        card = card_for(data, n, os.path.join(work, "cards"))
        out = os.path.join(work, f"out-{n}")
        shutil.rmtree(out, ignore_errors=True)
        subset = files[:n]
        audio_s = audio_seconds(subset)
        order = ("pool", "affectlab") if k % 2 == 0 else ("affectlab", "pool")
        res: dict[str, dict[str, Any]] = {}
        for name in order:
            res[name] = run_pool(subset, args.workers) if name == "pool" else run_affectlab(card, out, args.workers)
            print(f"  {n:>5} files  {name:<9} {res[name]['wall_s']:8.2f} s  (load {res[name]['load']:.1f})", flush=True)
        a, p = res["affectlab"], res["pool"]
        if a["n_ok"] != n or a["rows"] != n:
            raise SystemExit(f"{n} files: affectlab published {a['rows']} rows (n_ok {a['n_ok']}), expected {n}")
        rows.append({"n": n, "audio_h": audio_s / 3600, "pool": p, "affectlab": a, "order": order})
        print(f"  {n:>5} files  stage {a['stage_s']:.2f} s  ratio {p['wall_s'] / a['stage_s']:.3f}x  command "
              f"{a['wall_s']:.2f} s  ratio {p['wall_s'] / a['wall_s']:.3f}x  driver peak RSS {a['maxrss_mib']:.0f} MiB  "
              f"{a['files']} files", flush=True)
        if n != sizes[-1] and not args.keep:
            shutil.rmtree(out, ignore_errors=True)

    resume = None
    if not args.skip_resume:
        n = sizes[-1]
        out = os.path.join(work, f"out-{n}")
        before = sorted(glob.glob(os.path.join(rows[-1]["affectlab"]["feature_dir"], "**", "part-*.parquet"), recursive=True))
        r = run_affectlab(card_for(data, n, os.path.join(work, "cards")), out, args.workers)
        after = sorted(glob.glob(os.path.join(r["feature_dir"], "**", "part-*.parquet"), recursive=True))
        r["unchanged"] = before == after
        resume = {"n": n, **r}
        print(f"  resume of {n}: {r['wall_s']:.2f} s, ok {r['n_ok']} skipped {r['n_skipped']}, files unchanged: {r['unchanged']}",
              flush=True)

    cluster = []
    if not args.skip_cluster:
        n = args.cluster_files
        card = card_for(data, n, os.path.join(work, "cards"))
        for nodes in (1, 3):
            out = os.path.join(work, f"cluster-{nodes}")
            shutil.rmtree(out, ignore_errors=True)
            r = run_on_cluster(nodes, args.workers, card, out)
            if r["n_ok"] != n or r["rows"] != n:
                raise SystemExit(f"{nodes} node(s): {r['rows']} rows (n_ok {r['n_ok']}), expected {n}")
            cluster.append({"nodes": nodes, **r})
            print(f"  {nodes} node(s): {r['wall_s']:.2f} s, stage {r['stage_s']:.2f} s, per node {r['per_node']}", flush=True)
            if not args.keep:
                shutil.rmtree(out, ignore_errors=True)

    report(rows, resume, cluster, args.workers)
    if not args.keep and not args.out:
        shutil.rmtree(work, ignore_errors=True)


def report(rows: list[dict[str, Any]], resume: dict[str, Any] | None, cluster: list[dict[str, Any]], workers: int) -> None:
    print(f"\n| files | audio h | pool({workers}) s | affectlab stage s | stage files/s | **ratio (stage)** | command s "
          "| ratio (command) | CPU-s pool | CPU-s affectlab: workers + Ray + driver | driver peak RSS MiB | published files "
          "| rows | load pool / affectlab |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        a, p = r["affectlab"], r["pool"]
        print(f"| {r['n']} | {r['audio_h']:.2f} | {p['wall_s']:.1f} | {a['stage_s']:.1f} | {r['n'] / a['stage_s']:.2f} | "
              f"**{p['wall_s'] / a['stage_s']:.3f}×** | {a['wall_s']:.1f} | {p['wall_s'] / a['wall_s']:.3f}× | {p['cpu_s']:.1f} | "
              f"{a['workers_cpu_s']:.1f} + {a['ray_cpu_s']:.1f} + {a['cpu_s']:.1f} | {a['maxrss_mib']:.0f} | {a['files']} | "
              f"{a['rows']} | {p['load']:.1f} / {a['load']:.1f} |")
    if resume:
        ok = resume["n_ok"] == 0 and resume["n_skipped"] == resume["n"] and resume["unchanged"]
        print(f"\nResume of the finished {resume['n']}-file output: **{resume['wall_s']:.2f} s** (subprocess wall; "
              f"target <= {RESUME_LIMIT_S:.0f} s: {'met' if resume['wall_s'] <= RESUME_LIMIT_S else 'NOT met'}), "
              f"extracted {resume['n_ok']}, skipped {resume['n_skipped']}, published files unchanged: {resume['unchanged']} "
              f"({'extracts nothing' if ok else 'EXTRACTED SOMETHING'}); Ray processes started: {resume['ray_processes']}; "
              f"driver peak RSS {resume['maxrss_mib']:.0f} MiB.")
    if cluster:
        print(f"\n| nodes ({workers} logical CPUs) | command s | stage s | stage files/s | block tasks / busy s per node id |")
        print("|---|---|---|---|---|")
        for c in cluster:
            info = c["node_info"]
            nodes = ", ".join(f"`{node}`{' head' if v['head'] else ''} {v['cpus']:g} CPU" for node, v in info.items())
            spread = ", ".join(f"`{node}`: {v['blocks']:g} / {v['busy_s']:.1f}" for node, v in sorted(c["per_node"].items()))
            print(f"| {c['nodes']}: {nodes} | {c['wall_s']:.1f} | {c['stage_s']:.1f} | {c['n_ok'] / c['stage_s']:.2f} | {spread} |")


if __name__ == "__main__":
    main()
