"""The generic preprocessing stage runner: manifest -> extractors on Ray Data -> Parquet.

:func:`run_stage` runs any :class:`~affectlab.features.base.Extractor` over a manifest; the
audio sets (:mod:`affectlab.features.audio`), the AU labels (:mod:`affectlab.features.au_labels`)
and the video stages all use it. What it does, in order:

1. Identity: ``<v> = "v" + params_hash(name, version, params)``. The output goes to
   ``<out>/<kind>/<name>/version=<v>/`` (see :mod:`affectlab.features.io`), so changed
   parameters never mix with old output.
2. Resume: ``sample_id``\\ s already committed under that directory are skipped; so are rows
   lacking a required column (``extractor_cls.requires``; counted as not applicable).
3. Extraction: the remaining rows (local files largest first) are cut into a few large blocks
   (about two per worker) and streamed through ``Dataset.map_batches``. The extractor is
   constructed **once per Ray worker process** and then called with ``process(row)`` for every
   row of every block it gets:

   - ``strategy="tasks"`` (default): ``TaskPoolStrategy(size=workers)``; the extractor is
     cached in the worker process, so later blocks, later stages' re-runs and later runs in
     the same Ray session reuse it (a different stage replaces it). Ray keeps its task workers
     alive, so a stage starts in ~0.1 s instead of spawning processes.
   - ``strategy="actors"``: ``ActorPoolStrategy(size=workers, max_tasks_in_flight_per_actor=1)``,
     the callable-class pattern; each run starts its actors (about 1-3 s here) and they die
     with it. Use it for extractors that must not outlive the stage (e.g. large GPU models).

   An exception in a row becomes an error row (``sample_id, stage, error`` = exception type,
   ``message, path``); the other rows go on.
4. Commit: a block is cut into commits at fixed row indices (rows ``[k*c, (k+1)*c)`` with
   ``c = commit_rows``, default :data:`COMMIT_ROWS`); for each, the worker writes the good rows
   as one Parquet file in the hidden ``<out>/_staging/...`` and yields their summary; the
   dataset's output blocks are kept tiny so that each summary reaches the driver at once, which
   publishes the file into the set directory (``storage.move_tree``: a local rename / S3
   server-side copy, whole files only). A run killed at any point leaves only whole, published
   files and loses at most the uncommitted rows of the blocks in flight; the next run cleans the
   staging area and skips what was published. Exactly once under retries: see below.
5. ``<out>/errors/<stage>-<v>.parquet`` is replaced with this run's error rows and
   ``<out>/<kind>/<name>/_latest.json`` records the version, extractor, parameters, counts and
   timing of this run (per-set provenance; ``affectlab.preprocess`` adds the run-level file).

Why few, large blocks with commits inside them: Ray Data starts a block's task only after its
scheduling loop has seen the previous one finish (it polls every 0.1 s), which left each worker
idle for about 0.17 s per block on this 2-core machine: about 9% of the wall time with ten
blocks per worker (measured with ``ray.timeline``; ``benchmarks/RESULTS.md``). Two blocks per
worker, largest files first, keep the workers busy to the end (the short files form the last
blocks) while decoupling the commit granularity from the block size.

Why the workers write the Parquet themselves instead of ``Dataset.write_parquet``: the schema
stays plain ``list<list<float32>>`` (Ray would convert ragged numpy arrays to its tensor
extension type, unreadable by plain pandas), failed rows leave the data stream without a second
pass, and no separate write tasks compete for the CPUs the extractors use. Memory stays
bounded: a worker holds at most :data:`COMMIT_ROWS` extracted rows, the driver only the per-row
summaries.

Exactly one row per recording when Ray retries a block (node or worker loss). Ray Data runs
each block as a *streaming generator* task with ``max_retries=-1``; when the task's worker or
node dies, Ray runs the block again from its first row and matches the new attempt's outputs to
the first attempt's **by position**: outputs already reported to the driver are kept and the new
attempt's outputs at those positions are dropped (their staged files stay in ``_staging`` and are
removed with it), the rest are taken from the new attempt (and a replay of a *finished* task that
yields a different number of outputs fails with ``StreamingGeneratorReplayInconsistentError``).
Three rules make that exactly-once here:

- *Commits are a pure function of the block's rows*: commit ``k`` of a block always holds its
  rows ``[k*c, (k+1)*c)``, whatever the timing, so output ``k`` of every attempt names the same
  recordings and position matching neither repeats nor skips one. (Commits used to be cut
  after ``COMMIT_SECONDS`` as well; with a slow extractor two attempts then cut at different
  rows, and the matched outputs could repeat rows or silently drop them. That timer is gone: a
  slow extractor bounds its lost work with fewer rows per commit instead, ``commit_rows`` of
  :func:`run_stage` or a ``commit_rows`` class attribute.)
- *The driver publishes by ``sample_id``, never twice* (:class:`_Publisher`): it starts from the
  ids already published (read for the resume anyway) and publishes a staged file only for ids
  not yet published; a file holding only published ids is discarded, one with some is rewritten
  without them (staged, then moved: still whole files). The same for error rows (one per id; a
  later success removes it). This covers what position matching does not: an output that
  reaches the driver twice (e.g. a finished task re-executed to reconstruct a lost object), a
  manifest with a repeated id. Normally it drops nothing and costs nothing (a set lookup per
  row; no file is read).
- *Nothing is lost silently*: after the stream the driver checks that every recording it handed
  out was published or failed (a staged file that vanished counts as neither); missing ones go
  through the workers once more, and if any are still missing the stage raises
  :class:`~affectlab.errors.StorageError` (the published rows stay; a resume finishes them).

``tests/integration/test_preprocess_node_loss.py`` removes a worker node of a 3-node cluster
(no graceful shutdown) while a block whose first commit was published is running: Ray retries
the block on another node, the run completes by itself, and every recording has one row.

Writing an extractor for this runner (helper for video stages)::

    class MyExtractor:
        kind = "features"            # or "labels": the top-level output directory
        requires = ("video_path",)   # rows with any of these null are not applicable
        path_column = "video_path"   # reported in error rows
        num_cpus = 1.0               # per worker
        commit_rows = 2              # optional: rows per staged file (default COMMIT_ROWS)

        @classmethod
        def describe(cls, **kwargs) -> dict:   # optional: identity without heavy set-up
            return {"name": "lips", "version": "1", "params": {...}}

        def __init__(self, **kwargs): ...       # load models once per worker process
        name = "lips"; version = "1"
        def params(self) -> dict: ...
        def metadata(self) -> dict: ...         # optional: {"columns": {"crops": [...names]}}
        def process(self, row: dict) -> dict:   # raise MediaError for unusable input
            return {"sample_id": ..., "subject": ..., "n_frames": T, "frame_rate_hz": 25.0,
                    "duration_s": ..., "crops": np.ndarray(T, 96, 96, dtype=uint8)}

    result = run_stage(manifest, MyExtractor, {"size": 96}, out="s3://bucket/prep")

Numpy arrays in output rows become nested Arrow lists (:mod:`affectlab.features.arrow`);
``duration_s`` (if present) is summed into ``StageResult.media_seconds``.
"""

from __future__ import annotations

import json
import math
import os
import time
import uuid
from dataclasses import asdict, dataclass, field
from collections.abc import Iterator
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from affectlab import storage
from affectlab.errors import ConfigError, StorageError
from affectlab.features import io
from affectlab.features.arrow import rows_to_table
from affectlab.features.base import params_hash

__all__ = ["ERROR_SCHEMA", "StageResult", "describe_extractor", "plan_blocks", "run_stage"]

ERROR_SCHEMA = pa.schema(
    [
        ("sample_id", pa.string()),
        ("stage", pa.string()),
        ("error", pa.string()),
        ("message", pa.string()),
        ("path", pa.string()),
        ("version", pa.string()),
    ]
)
_SUMMARY_SCHEMA = pa.schema(
    [("sample_id", pa.string()), ("ok", pa.bool_()), ("error", pa.string()), ("message", pa.string()),
     ("path", pa.string()), ("media_seconds", pa.float64()), ("part", pa.string())]
)
# where S3 is, handed to the workers of an embedded local Ray (see _worker_env); never credentials:
# Ray shows a task's runtime_env (env_vars included) in its state API and dashboard
_STORAGE_ENV = ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_REGION", "AWS_DEFAULT_REGION", "AWS_PROFILE")
STRATEGIES = ("tasks", "actors")
# Ray Data scheduling: ~2 blocks per worker (each block costs ~0.17 s of idle worker here)
MAX_ROWS_PER_BLOCK = 1024
BLOCKS_PER_WORKER = 2
# commit granularity inside a block: a staged file and a summary at every N-th row of the block
# (fixed row indices, never time: a retried block must cut the same commits, see the docstring)
COMMIT_ROWS = 8
# output block size of the stage's dataset: tiny, so each yielded summary is its own block
_SUMMARY_BLOCK_BYTES = 1


@dataclass
class StageResult:
    """What one :func:`run_stage` call did."""

    kind: str
    feature_set: str
    version: str
    feature_dir: str
    extractor: str
    extractor_version: str
    params: dict[str, Any]
    n_ok: int = 0
    n_skipped: int = 0
    n_failed: int = 0
    n_not_applicable: int = 0
    n_duplicates: int = 0
    seconds: float = 0.0
    media_seconds: float = 0.0
    errors: list[dict[str, Any]] = field(default_factory=list)

    @property
    def files_per_second(self) -> float:
        """Recordings processed (ok + failed) per wall-clock second."""
        return (self.n_ok + self.n_failed) / self.seconds if self.seconds > 0 else 0.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (for provenance)."""
        data = asdict(self)
        data["errors"] = data["errors"][:50]
        return data

    def summary_line(self) -> str:
        """One line: ok / skipped / failed, hours of audio, throughput."""
        return (
            f"{self.kind}/{self.feature_set} {self.version}: ok {self.n_ok}  skipped {self.n_skipped}  "
            f"failed {self.n_failed}  n/a {self.n_not_applicable}  {self.media_seconds / 3600:.3f} h media  "
            f"{self.seconds:.1f} s  {self.files_per_second:.1f} files/s  "
            f"({self.media_seconds / self.seconds if self.seconds else 0:.0f}x real time)"
        )


def describe_extractor(extractor_cls: type, extractor_kwargs: dict[str, Any]) -> dict[str, Any]:
    """``{"name", "version", "params"}`` via ``describe`` if defined, else a throw-away instance."""
    if hasattr(extractor_cls, "describe"):
        return dict(extractor_cls.describe(**extractor_kwargs))
    inst = extractor_cls(**extractor_kwargs)
    return {"name": inst.name, "version": inst.version, "params": inst.params()}


def plan_blocks(n_rows: int, num_workers: int, batch_size: int | None = None) -> int:
    """Rows per Ray Data block: ``batch_size`` if given, else about :data:`BLOCKS_PER_WORKER`
    blocks per worker, at most :data:`MAX_ROWS_PER_BLOCK` rows."""
    if batch_size is not None:
        if batch_size < 1:
            raise ConfigError(f"batch_size: must be >= 1, got {batch_size}")
        return batch_size
    return max(1, min(MAX_ROWS_PER_BLOCK, math.ceil(n_rows / max(1, num_workers * BLOCKS_PER_WORKER))))


class _StageWorker:
    """Ray Data callable class: one extractor per actor (or cached per task worker process); one
    staged Parquet file per commit of :data:`COMMIT_ROWS` consecutive rows of a block."""

    def __init__(self, extractor_cls: type, extractor_kwargs: dict[str, Any], staging: str, stage: str,
                 commit_rows: int = COMMIT_ROWS) -> None:
        self.extractor = extractor_cls(**extractor_kwargs)
        self.staging = staging
        self.commit_rows = commit_rows
        self.stage = stage
        self.path_column = getattr(extractor_cls, "path_column", None) or (getattr(extractor_cls, "requires", ()) or [None])[0]
        meta = self.extractor.metadata() if hasattr(self.extractor, "metadata") else {}
        self.meta = {**meta, "stage": stage, "params": self.extractor.params(), "extractor_version": self.extractor.version}

    def __call__(self, batch: pa.Table) -> Iterator[pa.Table]:
        """Process a block row by row; yield one summary table per commit.

        Commit ``k`` holds rows ``[k*commit_rows, (k+1)*commit_rows)`` of the block, so every
        attempt at the same block yields the same number of outputs naming the same rows (Ray
        matches a retried task's outputs to the first attempt's by position; module docstring).
        """
        rows = batch.to_pylist()
        for start in range(0, len(rows), self.commit_rows):
            good: list[dict[str, Any]] = []
            summary: list[dict[str, Any]] = []
            for row in rows[start:start + self.commit_rows]:
                path = row.get(self.path_column) if self.path_column else None
                try:
                    out = self.extractor.process(row)
                except Exception as exc:  # noqa: BLE001 - every failure becomes an error row
                    summary.append(_summary(row["sample_id"], False, type(exc).__name__, str(exc)[:2000], path, 0.0))
                else:
                    good.append(out)
                    summary.append(_summary(row["sample_id"], True, None, None, path, float(out.get("duration_s") or 0.0)))
            yield self._commit(good, summary)

    def _commit(self, good: list[dict[str, Any]], summary: list[dict[str, Any]]) -> pa.Table:
        """Stage the good rows as one Parquet file; the summary rows name it for the driver."""
        part = None
        if good:
            batch_dir = storage.join(self.staging, uuid.uuid4().hex)
            part = storage.join(batch_dir, f"part-{uuid.uuid4().hex[:16]}.parquet")
            storage.write_parquet(rows_to_table(good, self.meta), part)
        for s in summary:
            s["part"] = part if s["ok"] else None
        # one row per commit: Ray Data may cut output blocks row by row (tiny target size), and
        # a commit's rows must reach the driver together with the file they name
        return pa.table({"commit": pa.array([summary], pa.list_(pa.struct(_SUMMARY_SCHEMA)))})


_WORKER_CACHE: dict[str, _StageWorker] = {}


def _run_block(batch: pa.Table, *, extractor_cls: type, extractor_kwargs: dict[str, Any], staging: str, stage: str,
               commit_rows: int = COMMIT_ROWS) -> Iterator[pa.Table]:
    """``strategy="tasks"`` UDF: one extractor per Ray worker process, built on its first block
    and kept for later blocks and later runs of the same stage (a different stage replaces it)."""
    key = f"{extractor_cls.__module__}.{extractor_cls.__qualname__}:{json.dumps(extractor_kwargs, sort_keys=True, default=str)}"
    worker = _WORKER_CACHE.get(key)
    if worker is None:
        _WORKER_CACHE.clear()
        worker = _WORKER_CACHE[key] = _StageWorker(extractor_cls, extractor_kwargs, staging, stage)
    worker.staging, worker.commit_rows = staging, commit_rows
    yield from worker(batch)


def _summary(sample_id: str, ok: bool, error: str | None, message: str | None, path: str | None, media: float) -> dict[str, Any]:
    return {"sample_id": sample_id, "ok": ok, "error": error, "message": message, "path": path, "media_seconds": media}


def committed_ids(set_version_dir: str) -> set[str]:
    """``sample_id``\\ s already published in a set-version directory."""
    if not storage.list_files(set_version_dir, suffix=".parquet"):
        return set()
    return set(storage.read_parquet(set_version_dir, columns=["sample_id"]).column("sample_id").to_pylist())


def _applicable(manifest: pa.Table, requires: tuple[str, ...]) -> pa.Table:
    mask = pa.array(np.ones(manifest.num_rows, dtype=bool))
    for column in requires:
        if column not in manifest.column_names:
            return manifest.slice(0, 0)
        mask = pc.and_(mask, pc.is_valid(manifest.column(column)))
    return manifest.filter(mask)


def run_stage(
    manifest: pa.Table,
    extractor_cls: type,
    extractor_kwargs: dict[str, Any] | None = None,
    *,
    out: str,
    batch_size: int | None = None,
    num_workers: int | None = None,
    progress: bool = True,
    strategy: str = "tasks",
    commit_rows: int | None = None,
) -> StageResult:
    """Run one extractor over a manifest with Ray Data and commit its Parquet output.

    Args:
        manifest: Manifest table (:mod:`affectlab.data.manifest`), one row per recording.
        extractor_cls: Extractor class (see module docstring); constructed once per worker.
        extractor_kwargs: Keyword arguments for the class (they determine its params/version).
        out: Output root, local path or ``s3://`` URI.
        batch_size: Rows per Ray Data block; default about :data:`BLOCKS_PER_WORKER` blocks per
            worker, at most :data:`MAX_ROWS_PER_BLOCK` rows (:func:`plan_blocks`). A block is
            committed in files of ``commit_rows`` rows, not one file per block.
        num_workers: Worker tasks or actors (default: the cluster's CPUs /
            ``extractor_cls.num_cpus``, at most one per block).
        progress: Show Ray Data's progress bars.
        strategy: ``"tasks"`` (extractor cached per worker process) or ``"actors"`` (an actor
            pool per run); see the module docstring.
        commit_rows: Rows per staged (then published) file inside a block, cut at fixed row
            indices; a killed run loses at most this many rows per worker. Default: the
            extractor class's ``commit_rows`` attribute if it has one, else :data:`COMMIT_ROWS`.

    A failed row never raises here: it is counted in ``n_failed`` and written to ``errors/``;
    the caller decides on the exit code (``affectlab preprocess --strict``).

    Every applicable recording ends in exactly one published row or one error row, also when
    Ray retries blocks after a lost worker or node (module docstring, "Exactly one row").

    Returns:
        A :class:`StageResult`; ``errors`` holds the failed rows of this run.

    Raises:
        ConfigError: Bad ``batch_size`` / ``num_workers`` / ``strategy`` / ``commit_rows``.
        StorageError: Recordings were neither published nor failed, even after a second pass
            (the published rows stay; a resume finishes the others).
    """
    if strategy not in STRATEGIES:
        raise ConfigError(f"strategy: {strategy!r} is not one of {', '.join(STRATEGIES)}")
    if commit_rows is None:
        commit_rows = int(getattr(extractor_cls, "commit_rows", None) or COMMIT_ROWS)
    if commit_rows < 1:
        raise ConfigError(f"commit_rows: must be >= 1, got {commit_rows}")
    kwargs = dict(extractor_kwargs or {})
    ident = describe_extractor(extractor_cls, kwargs)
    name, kind = ident["name"], getattr(extractor_cls, "kind", "features")
    version = "v" + params_hash(name, str(ident["version"]), ident["params"])
    final = io.set_dir(out, kind, name, version)
    result = StageResult(kind, name, version, final, f"{extractor_cls.__module__}.{extractor_cls.__qualname__}",
                         str(ident["version"]), ident["params"])
    start = time.perf_counter()
    applicable = _applicable(manifest, tuple(getattr(extractor_cls, "requires", ())))
    result.n_not_applicable = manifest.num_rows - applicable.num_rows
    done = committed_ids(final)
    todo = applicable.filter(pc.invert(pc.is_in(applicable.column("sample_id"), pa.array(sorted(done), pa.string()))))
    result.n_skipped = applicable.num_rows - todo.num_rows
    staging = io.staging_dir(out, kind, name, version)
    storage.remove(staging)
    publisher = _Publisher(final, staging, result, done)
    for _ in range(2):  # a second pass only runs recordings the first one lost (not expected to happen)
        if not todo.num_rows:
            break
        _execute(todo, extractor_cls, kwargs, final, storage.join(staging, uuid.uuid4().hex), name, publisher,
                 batch_size=batch_size, num_workers=num_workers, progress=progress, strategy=strategy,
                 commit_rows=commit_rows)
        todo = publisher.unaccounted(todo)
    publisher.finish()
    storage.remove(staging)
    _write_errors(out, name, version, result.errors)
    if todo.num_rows:
        ids = todo.column("sample_id").to_pylist()
        raise StorageError(f"{name} {version}: {len(ids)} recording(s) neither published nor failed after two "
                           f"passes ({', '.join(ids[:10])}{' ...' if len(ids) > 10 else ''}); the published rows "
                           "are kept: run again to finish them")
    result.seconds = time.perf_counter() - start
    marker = {**result.to_dict(), "errors": len(result.errors), "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    storage.write_text(storage.join(io.set_dir(out, kind, name), "_latest.json"), json.dumps(marker, indent=1, default=str))
    return result


def _execute(todo: pa.Table, extractor_cls: type, kwargs: dict[str, Any], final: str, staging: str, stage: str,
             publisher: _Publisher, *, batch_size: int | None, num_workers: int | None, progress: bool,
             strategy: str, commit_rows: int = COMMIT_ROWS) -> None:
    """Stream ``todo`` through the extractor workers and publish each commit's file as it lands."""
    import ray

    from affectlab.runtime import ensure_ray

    ensure_ray()  # a lazy session starts Ray here: only when there is something to extract

    cpus = float(getattr(extractor_cls, "num_cpus", 1.0))
    if num_workers is not None and num_workers < 1:
        raise ConfigError(f"num_workers: must be >= 1, got {num_workers}")
    gpus = float(getattr(extractor_cls, "num_gpus", 0.0))  # e.g. face_alignment actors on GPUs
    available = max(1, int(ray.cluster_resources().get("CPU", 1) // cpus))
    if gpus > 0:
        available = max(1, min(available, int(ray.cluster_resources().get("GPU", 0) // gpus)))
    todo = _largest_first(todo, getattr(extractor_cls, "path_column", None))
    rows = plan_blocks(todo.num_rows, num_workers or available, batch_size)
    n_blocks = math.ceil(todo.num_rows / rows)
    ray.data.DataContext.get_current().enable_progress_bars = progress
    size = max(1, min(num_workers or available, n_blocks))
    udf_kwargs = {"extractor_cls": extractor_cls, "extractor_kwargs": kwargs, "staging": staging, "stage": stage,
                  "commit_rows": commit_rows}
    if strategy == "actors":
        # one block in flight per actor: an idle actor takes the next block, so both finish together
        udf: Any = _StageWorker
        options: dict[str, Any] = {"fn_constructor_kwargs": udf_kwargs,
                                   "compute": ray.data.ActorPoolStrategy(size=size, max_tasks_in_flight_per_actor=1)}
    else:
        udf, options = _run_block, {"fn_kwargs": udf_kwargs, "compute": ray.data.TaskPoolStrategy(size=size)}
    # from_items builds the blocks in this process; from_arrow would run one remote task per
    # block just to read back its schema (seconds on a busy 2-core machine)
    ds = ray.data.from_items(todo.to_pylist(), override_num_blocks=n_blocks).map_batches(
        udf, batch_size=None, batch_format="pyarrow", zero_copy_batch=True, num_cpus=cpus,
        **({"num_gpus": gpus} if gpus > 0 else {}), **options, **_worker_env(todo, final),
    )
    ds.context.target_max_block_size = _SUMMARY_BLOCK_BYTES  # this dataset only: stream each commit
    for batch in ds.iter_batches(batch_size=None, batch_format="pyarrow"):
        for commit in batch.column("commit").to_pylist():
            publisher.collect(commit)


def _largest_first(todo: pa.Table, column: str | None) -> pa.Table:
    """Local inputs sorted by file size, largest first: the last blocks are the short ones, so
    the workers finish together (no tail where one actor works alone). Remote inputs keep
    their order (sizes would cost a request per object)."""
    if not column or column not in todo.column_names:
        return todo
    paths = todo.column(column).to_pylist()
    if any(p is None or storage.is_remote(p) for p in paths):
        return todo
    sizes = [os.path.getsize(p) if os.path.isfile(p) else 0 for p in paths]
    return todo.take(sorted(range(len(paths)), key=lambda i: -sizes[i]))


class _Publisher:
    """The driver's side of the commit protocol: publishes staged files, at most one row per
    ``sample_id`` over all runs, and keeps one error row per failed recording.

    ``published`` starts as the ids an earlier run published (:func:`committed_ids`); a commit's
    good rows whose ids are in it are dropped: the whole staged file when all are (it is deleted),
    else the file is rewritten without them (staged again, then moved, so still whole). Nothing
    is read or rewritten in the normal case (no id seen before): the file is moved as it is.
    """

    def __init__(self, final: str, staging: str, result: StageResult, published: set[str]) -> None:
        self.final, self.staging, self.result = final, staging, result
        self.published = set(published)
        self.failed: dict[str, dict[str, Any]] = {}
        self.n_duplicates = 0

    def collect(self, rows: list[dict[str, Any]]) -> None:
        """Count one commit's summary rows and publish its staged file(s) (whole files only)."""
        for part in dict.fromkeys(row["part"] for row in rows if row["ok"]):
            ok = [row for row in rows if row["ok"] and row["part"] == part]
            new = [row for row in dict((row["sample_id"], row) for row in ok).values()
                   if row["sample_id"] not in self.published]
            self.n_duplicates += len(ok) - len(new)
            if not new:
                storage.remove(part.rsplit("/", 1)[0])  # only rows already published: discard
                continue
            if len(new) < len(ok) and not self._publish_subset(part, [row["sample_id"] for row in new]):
                continue
            if len(new) == len(ok) and not storage.move_tree(part.rsplit("/", 1)[0], self.final):
                continue  # the staged file is gone: its rows stay unaccounted (second pass)
            for row in new:
                self.published.add(row["sample_id"])
                self.failed.pop(row["sample_id"], None)  # an earlier attempt failed, this one did not
                self.result.n_ok += 1
                self.result.media_seconds += row["media_seconds"] or 0.0
        for row in rows:
            if not row["ok"] and row["sample_id"] not in self.published and row["sample_id"] not in self.failed:
                self.failed[row["sample_id"]] = {k: row[k] for k in ("sample_id", "error", "message", "path")}

    def _publish_subset(self, part: str, keep: list[str]) -> bool:
        """Rewrite a staged file with only the rows of ``keep`` (one per id) and publish it."""
        src_dir = part.rsplit("/", 1)[0]
        try:
            table = storage.read_parquet(part)
        except FileNotFoundError:
            return False
        ids = table.column("sample_id").to_pylist()
        first = {sid: i for i, sid in reversed(list(enumerate(ids)))}
        table = table.take(pa.array(sorted(first[sid] for sid in keep if sid in first), pa.int64()))
        if table.num_rows != len(keep):
            return False
        batch_dir = storage.join(self.staging, uuid.uuid4().hex)
        storage.write_parquet(table, storage.join(batch_dir, part.rsplit("/", 1)[1]))
        storage.remove(src_dir)
        return bool(storage.move_tree(batch_dir, self.final))

    def unaccounted(self, todo: pa.Table) -> pa.Table:
        """The rows of ``todo`` that were neither published nor failed."""
        seen = pa.array(sorted(self.published | set(self.failed)), pa.string())
        return todo.filter(pc.invert(pc.is_in(todo.column("sample_id"), seen)))

    def finish(self) -> None:
        """Move the error rows into the result (one per recording)."""
        self.result.errors = list(self.failed.values())
        self.result.n_failed = len(self.failed)
        self.result.n_duplicates = self.n_duplicates


def _worker_env(todo: pa.Table, final: str) -> dict[str, Any]:
    """Ray remote args giving the workers this process's S3 *location* settings, when S3 is involved.

    Only the endpoint, region and profile name (:data:`_STORAGE_ENV`) are forwarded, and only to
    an embedded local Ray, whose workers otherwise see the environment of the moment Ray started
    (an endpoint set later in a notebook would be missing). Credentials are never forwarded:
    ``runtime_env.env_vars`` are shown by ``ray list tasks --detail``, the state API and the
    dashboard, and logged by Ray's runtime-env agent. Workers find credentials themselves, through
    the AWS default chain: the environment they inherit (an embedded Ray is started by the
    affectlab command itself, after its environment is set; a Ray started earlier, e.g. with
    ``ray start`` or in a notebook, must have had the credentials in *its* environment), AWS
    profiles (``~/.aws``) or an instance role. On a cluster (``RAY_ADDRESS``) nothing is
    forwarded: the nodes' own environment, profiles or roles provide everything.
    """
    from affectlab.runtime import where_ray_runs

    media = [c for c in ("audio_path", "video_path", "labels_path") if c in todo.column_names]
    remote = storage.is_remote(final) or any(
        str(v).startswith("s3://") for c in media for v in todo.column(c).drop_null()[:1].to_pylist()
    )
    if not remote or where_ray_runs().mode != "local":
        return {}
    env = {k: os.environ[k] for k in _STORAGE_ENV if os.environ.get(k)}
    return {"runtime_env": {"env_vars": env}} if env else {}


def _write_errors(out: str, stage: str, version: str, errors: list[dict[str, Any]]) -> None:
    uri = io.errors_uri(out, stage, version)
    if not errors:
        storage.remove(uri)
        return
    rows = [{**e, "stage": stage, "version": version} for e in errors]
    storage.write_parquet(pa.Table.from_pylist(rows, schema=ERROR_SCHEMA), uri)
