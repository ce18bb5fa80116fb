"""A worker node lost mid-extraction on a 3-node Ray cluster: exactly one row per good recording.

``affectlab.preprocess`` runs on the ``ray_cluster`` fixture (a head without CPUs, two 1-CPU
worker nodes, the driver joined through ``RAY_ADDRESS``) for audio (eGeMAPS on a speech-au
corpus) and a video stage (dlib landmarks on a faces corpus), with the output on local disk and
on the local S3 server; 16 recordings, one a zero-byte file, an extractor slowed by 0.3 s per
recording, blocks of 6 rows and commits of 2. As soon as a worker is inside a block whose first
commit has been published, its node is removed without a graceful shutdown
(``remove_node(allow_graceful=False)``: raylet, object store and workers killed) and a fresh
node is added. Then either the run completes by itself (Ray retries the lost block) or it
raises and one resume (the same call again) completes it. Either way: one row per good
recording over all published files, the bad recording in ``errors/``, nothing left in
``_staging``, only whole ``part-*.parquet`` files where readers look, provenance counts (run and
set level) equal to the rows.

Which path happens, and why: **retry**, in every run so far. Ray Data submits each block as a
streaming generator task with ``max_retries=-1``; the lost block's task is re-run on the
surviving or the new node from its first row, and Ray keeps the outputs (commit summaries) the
driver already received, taking only the later positions from the new attempt. The summaries
are small, so they were returned inline to the driver, not kept in the lost node's object
store, and the block inputs live on the head: nothing the driver needs is lost with the node.
Because the pipeline cuts commits at fixed row indices, the new attempt's later outputs are
exactly the rows not yet committed: the rows of the landed commit are extracted twice (see the
extraction log) and published once, with nothing for the driver's ``sample_id`` check to drop
(``n_duplicates == 0``). The test accepts the resume path too (a run that raises, e.g. when a
retry cannot be scheduled) and prints which one it saw.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

import affectlab.preprocess as preprocess_module
from affectlab import storage
from affectlab.data.synth import generate
from affectlab.features import io
from affectlab.features import video_stages
from affectlab.features.audio import OpenSmileExtractor
from affectlab.features.landmarks import LandmarkExtractor
from affectlab.preprocess import PreprocessResult, preprocess

pytestmark = pytest.mark.slow


BLOCK_ROWS, COMMIT_ROWS = 6, 2  # three commits per block (blocks of 6, 6 and 4 rows)
LAST_BLOCK_ROWS = 16 - 2 * BLOCK_ROWS


class _Slow:
    """An extractor 0.3 s slower per recording, 0.6 s after a block's first commit (a sleep: no CPU
    taken from the busy machine), two recordings per commit: the run lasts a few seconds and each
    block holds several commits. Every extraction start is logged to ``<corpus>/extractions.log`` with the process and node (a
    recording started twice = a replayed block)."""

    delay_s = 0.3
    commit_rows = COMMIT_ROWS

    def process(self, row: dict[str, Any]) -> dict[str, Any]:
        import ray

        path = Path(row[self.path_column])
        root = next(p for p in path.parents if (p / "dataset.yaml").exists())
        with open(root / "extractions.log", "a") as log:
            log.write(f"{row['sample_id']} {os.getpid()} {ray.get_runtime_context().get_node_id()}\n")
        self.rows_seen = getattr(self, "rows_seen", 0) + 1  # one instance per worker process, blocks in turn
        after_first_commit = (self.rows_seen - 1) % BLOCK_ROWS >= COMMIT_ROWS
        time.sleep(self.delay_s * (2 if after_first_commit else 1))  # time for the node loss to land mid-block
        return super().process(row)


class SlowEgemaps(_Slow, OpenSmileExtractor):
    """:class:`OpenSmileExtractor`, slowed (same set, version and parameters)."""


class SlowLandmarks(_Slow, LandmarkExtractor):
    """:class:`LandmarkExtractor` (dlib), slowed (same set, version and parameters)."""


@pytest.fixture(scope="module", autouse=True)
def _ship_this_module() -> None:
    import ray

    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])  # the slow extractors to the workers


def _corpus(root: Path, media: str) -> tuple[str, list[str], str]:
    """16 recordings, one of them a zero-byte file: speech-au (2 speakers x 8 utterances of
    1-1.5 s) for audio, faces (2 identities x 8 clips of 10 frames, 64 px) for video."""
    if media == "audio":
        card = generate("speech-au", str(root), subjects=2, items=8, seed=3, min_duration_s=1.0, max_duration_s=1.5)
        bad, file = "s02_u004", root / "audio" / "s02" / "s02_u004.wav"
    else:
        card = generate("faces", str(root), subjects=2, items=8, seed=3, size=64, frames=10)
        bad, file = "s02_v004", root / "video" / "s02" / "s02_v004.mp4"
    ids = sorted(line.split(",", 1)[0] for line in (root / "manifest.csv").read_text().splitlines()[1:])
    file.write_bytes(b"")
    return card, sorted(set(ids) - {bad}), bad


def _victim(log: Path, published_ids: Callable[[], set[str]]) -> tuple[str, list[str]] | None:
    """A node to lose: one whose worker is inside a block whose first commit has been published.

    Row ``n`` of a worker process is row ``n % BLOCK_ROWS`` of its current block (each worker
    takes whole blocks one after the other, the full ones first). A worker that started the row
    after the first ``COMMIT_ROWS`` of its block has yielded the block's first commit; once that
    commit's rows are published, losing the node makes Ray replay the block from its first row:
    the hazard (rows whose commit landed are extracted again). Returns the node id and the
    landed rows.
    """
    if not log.exists():
        return None
    started = [line.split() for line in log.read_text().splitlines() if line.count(" ") == 2]
    rows: dict[str, list[str]] = {}
    node: dict[str, str] = {}
    for sample_id, pid, node_id in started:
        rows.setdefault(pid, []).append(sample_id)
        node[pid] = node_id
    for pid, ids in rows.items():
        in_block = len(ids) % BLOCK_ROWS  # rows of the current block started so far
        # past the first commit with at least one row still to start after the current one, so
        # the block is still running when the node goes (near its end the worker could finish it
        # before the removal lands and nothing would be replayed): a worker's first block has
        # BLOCK_ROWS rows, a later one may be the short last block (16 - 2 x 6 = 4 rows)
        last_allowed = BLOCK_ROWS - 1 if len(ids) <= BLOCK_ROWS else LAST_BLOCK_ROWS - 1
        if COMMIT_ROWS < in_block <= last_allowed:
            first_commit = ids[len(ids) - in_block:len(ids) - in_block + COMMIT_ROWS]
            if set(first_commit) <= published_ids():
                return node[pid], first_commit
    return None


def _lose_a_node_during(cluster: Any, run: Callable[[], PreprocessResult], published_ids: Callable[[], set[str]],
                        log: Path) -> dict[str, Any]:
    """Run ``run()`` in a thread; once a worker is inside a block whose first commit has been
    published, remove that worker's node (no graceful shutdown) and add a fresh one."""
    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            outcome["result"] = run()
        except BaseException as exc:  # noqa: BLE001 - reported to the main thread
            outcome["error"] = exc

    start = time.monotonic()
    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    victim = None
    while thread.is_alive() and time.monotonic() - start < 120:
        victim = _victim(log, published_ids)
        if victim:
            break
        time.sleep(0.02)
    assert thread.is_alive(), f"the run ended before a node could be lost: {outcome}"
    assert victim, "no worker was inside a block with a published commit within 120 s"
    outcome["landed_before_loss"] = victim[1]
    outcome["published_at_loss"] = len(published_ids())
    outcome["loss_at_s"] = round(time.monotonic() - start, 1)
    node = next(node for node in cluster.worker_nodes if node.node_id == victim[0])
    cluster.remove_node(node, allow_graceful=False)  # main thread: Ray nodes set signal handlers
    cluster.add_node(**cluster.worker_node_args)
    thread.join(timeout=240)
    assert not thread.is_alive(), "the run did not end within 240 s of the node loss"
    outcome["seconds"] = round(time.monotonic() - start, 1)
    return outcome


def _check_exactly_once(out: str, stage: str, good: list[str], bad: str, final: PreprocessResult) -> dict[str, Any]:
    """One row per good recording in whole, published files; ``bad`` in errors/; no staging;
    the last run's provenance counts equal to the rows."""
    version = io.latest_version(out, "features", stage)
    set_dir = io.set_dir(out, "features", stage, version)
    files = storage.list_files(set_dir, include_hidden=True)
    assert files and all(f.rsplit("/", 1)[1].startswith("part-") and f.endswith(".parquet") for f in files), files
    fs, _ = storage.filesystem(set_dir)
    for f in files:  # every file a reader sees is whole
        pq.read_table(storage.filesystem(f)[1], filesystem=fs)
    ids = io.load_features(out, stage).column("sample_id").to_pylist()
    assert Counter(ids) == Counter(good), f"duplicates: {[k for k, n in Counter(ids).items() if n > 1]}"
    errors = [e for e in io.load_errors(out).to_pylist() if e["stage"] == stage]
    assert [e["sample_id"] for e in errors] == [bad]
    assert storage.list_files(storage.join(out, "_staging"), include_hidden=True) == []
    provenance = json.loads(storage.read_text(final.provenance_uri))
    assert provenance == json.loads(storage.read_text(storage.join(out, "_SUCCESS.json")))
    record = next(s for s in provenance["stages"] if s["feature_set"] == stage)
    assert record["n_ok"] + record["n_skipped"] == len(ids) and record["n_failed"] == 1
    latest = json.loads(storage.read_text(storage.join(io.set_dir(out, "features", stage), "_latest.json")))
    assert latest["n_ok"] + latest["n_skipped"] == len(ids) and latest["errors"] == 1
    return {"files": len(files), "n_ok": record["n_ok"], "n_skipped": record["n_skipped"],
            "n_duplicates": record["n_duplicates"]}


@pytest.mark.parametrize(("media", "where"), [("audio", "local"), ("audio", "s3"), ("video", "local"), ("video", "s3")])
def test_preprocessing_survives_a_lost_node(media: str, where: str, ray_cluster: Any, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> None:
    """Audio (eGeMAPS) or video (dlib landmarks), output local or on S3; a node lost mid-block."""
    corpus = tmp_path / "corpus"
    card, good, bad = _corpus(corpus, media)
    out = f"{request.getfixturevalue('s3_bucket')}/prep" if where == "s3" else str(tmp_path / "out")
    if media == "audio":
        monkeypatch.setattr(preprocess_module, "OpenSmileExtractor", SlowEgemaps)
        stage, options = "egemaps", {"audio": "egemaps"}
    else:
        monkeypatch.setattr(video_stages, "_landmark_extractor_cls", lambda plan: SlowLandmarks)
        stage, options = "landmarks", {"audio": (), "video": "landmarks"}

    def run() -> PreprocessResult:
        return preprocess(card, out, labels=False, batch_size=BLOCK_ROWS, progress=False, **options)

    def published_ids() -> set[str]:
        files = storage.list_files(storage.join(out, "features", stage), suffix=".parquet")
        return {sid for f in files for sid in storage.read_parquet(f, columns=["sample_id"]).column("sample_id").to_pylist()}

    outcome = _lose_a_node_during(ray_cluster, run, published_ids, corpus / "extractions.log")
    if "error" in outcome:  # the resume path: one more run with the same output completes it
        path = f"resume (the run raised {type(outcome['error']).__name__}: {str(outcome['error'])[:300]})"
        final = run()
    else:
        path, final = "retry (the run completed by itself)", outcome["result"]
    counts = _check_exactly_once(out, stage, good, bad, final)
    started = Counter(line.split()[0] for line in (corpus / "extractions.log").read_text().splitlines())
    replayed = sorted(k for k, n in started.items() if n > 1)
    request.node.user_properties.append(("path", path))  # in the JUnit XML; the line below with -s
    print(f"\n{media}/{where}: node lost at {outcome['loss_at_s']} s ({outcome['published_at_loss']} row(s) "
          f"published, the lost block's {outcome['landed_before_loss']} among them), run ended after "
          f"{outcome['seconds']} s; path: {path}; started twice: {replayed}; {counts}")
    # the hazard happened: the rows of the lost block's landed commit were extracted again ...
    assert set(outcome["landed_before_loss"]) <= set(replayed), "the lost block was not replayed"
    # ... and still published once (checked above)
    if "error" not in outcome:
        assert final.stages[0].n_ok == len(good) and final.stages[0].n_skipped == 0
