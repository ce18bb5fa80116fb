"""Exactly-once commits when Ray replays a block (issue 15): in-process, no Ray.

Ray runs a retried streaming task again from its first row and keeps the outputs the driver
already received, taking only the later positions from the new attempt. These tests replay a
block the same way (attempt A stops after ``k`` outputs, attempt B runs whole, the driver takes
``A[:k] + B[k:]``) with a slow extractor whose speed differs between the attempts:

- the pipeline's commits are cut at fixed row indices, so both attempts cut the same commits and
  the matched outputs hold every row once;
- negative control: the old cut (``COMMIT_ROWS`` rows *or* ``COMMIT_SECONDS``), re-implemented
  here with a fake clock, cuts differently per attempt; the matched outputs repeat some rows and
  lose others;
- the driver (``_Publisher``) publishes by ``sample_id``: even every output of both attempts
  published (or the old cut's overlapping commits) ends with one row per recording, and rows
  nobody published are found and re-run by :func:`run_stage`.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from affectlab import storage
from affectlab.errors import MediaError, StorageError
from affectlab.features import io, pipeline
from affectlab.features.arrow import read_meta
from affectlab.features.pipeline import StageResult, _Publisher, _StageWorker

IDS = [f"r{i:02d}" for i in range(11)]
BAD = "r05"  # a recording the extractor rejects: one error row, never a published row
COMMIT = 3


class SlowExtractor:
    """A slow extractor: ``slow`` rows take ``delay_s`` (real sleep) and advance a fake clock by
    ``tick_s``; the others are instant. ``BAD`` raises :class:`MediaError`."""

    kind = "features"
    requires = ("audio_path",)
    path_column = "audio_path"
    name, version = "slowset", "1"
    clock = [0.0]  # the fake clock the old time-based cut reads (shared by the attempts)

    def __init__(self, slow: tuple[str, ...] = (), delay_s: float = 0.0, tick_s: float = 1.0) -> None:
        self.slow, self.delay_s, self.tick_s = set(slow), delay_s, tick_s

    @classmethod
    def describe(cls, **kwargs: Any) -> dict[str, Any]:
        return {"name": cls.name, "version": cls.version, "params": {}}

    def params(self) -> dict[str, Any]:
        return {}

    def process(self, row: dict[str, Any]) -> dict[str, Any]:
        if row["sample_id"] == BAD:
            raise MediaError(f"{row['audio_path']}: zero bytes")
        if row["sample_id"] in self.slow:
            time.sleep(self.delay_s)
            SlowExtractor.clock[0] += self.tick_s
        return {"sample_id": row["sample_id"], "subject": row["subject"], "n_frames": 2, "frame_rate_hz": 100.0,
                "duration_s": 0.02, "features": np.full((2, 3), len(row["sample_id"]), np.float32)}


class OldTimeCutWorker(_StageWorker):
    """The pre-issue-15 loop: a commit every ``commit_rows`` rows *or* ``commit_seconds`` of the
    (fake) clock, whichever comes first. Kept here only as the negative control."""

    commit_seconds = 1.0

    def __call__(self, batch: pa.Table) -> Iterator[pa.Table]:
        good: list[dict[str, Any]] = []
        summary: list[dict[str, Any]] = []
        since = SlowExtractor.clock[0]
        for row in batch.to_pylist():
            try:
                out = self.extractor.process(row)
            except Exception as exc:  # noqa: BLE001
                summary.append(pipeline._summary(row["sample_id"], False, type(exc).__name__, str(exc), row["audio_path"], 0.0))
            else:
                good.append(out)
                summary.append(pipeline._summary(row["sample_id"], True, None, None, row["audio_path"], 0.02))
            if len(summary) >= self.commit_rows or SlowExtractor.clock[0] - since >= self.commit_seconds:
                yield self._commit(good, summary)
                good, summary, since = [], [], SlowExtractor.clock[0]
        if summary:
            yield self._commit(good, summary)


def _block() -> pa.Table:
    return pa.table({"sample_id": IDS, "subject": ["s1"] * len(IDS), "audio_path": [f"/a/{i}.wav" for i in IDS]})


def _commits(outputs: list[pa.Table]) -> list[list[dict[str, Any]]]:
    return [t.column("commit").to_pylist()[0] for t in outputs]


def _ids(outputs: list[pa.Table]) -> list[list[str]]:
    return [[row["sample_id"] for row in commit] for commit in _commits(outputs)]


def _attempt(worker_cls: type, staging: str, slow: tuple[str, ...], *, delay_s: float = 0.0, stop_after: int | None = None) -> list[pa.Table]:
    """One attempt at the block; ``stop_after``: the node died after that many outputs."""
    worker = worker_cls(SlowExtractor, {"slow": slow, "delay_s": delay_s}, staging, "slowset", commit_rows=COMMIT)
    outputs = []
    for table in worker(_block()):
        outputs.append(table)
        if stop_after is not None and len(outputs) == stop_after:
            break
    return outputs


def _published(final: str) -> list[str]:
    return storage.read_parquet(final, columns=["sample_id"]).column("sample_id").to_pylist()


def _publish(outputs: list[pa.Table], tmp_path: Path, done: set[str] = frozenset()) -> tuple[StageResult, _Publisher, str]:
    final = str(tmp_path / "features" / "slowset" / "version=v1")
    result = StageResult("features", "slowset", "v1", final, "SlowExtractor", "1", {})
    publisher = _Publisher(final, str(tmp_path / "_staging" / "driver"), result, set(done))
    for commit in _commits(outputs):
        publisher.collect(commit)
    publisher.finish()
    return result, publisher, final


def test_commits_are_cut_at_fixed_rows_whatever_the_timing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # a commit timer, if the worker still read one, would cut after every slow row here
    monkeypatch.setattr(pipeline, "COMMIT_SECONDS", 0.0, raising=False)
    staging = str(tmp_path / "_staging")
    fast = _attempt(_StageWorker, staging, ())
    slow = _attempt(_StageWorker, staging, ("r01", "r04", "r08"), delay_s=0.05)
    expected = [IDS[i:i + COMMIT] for i in range(0, len(IDS), COMMIT)]
    assert _ids(fast) == _ids(slow) == expected
    assert len(slow) == math.ceil(len(IDS) / COMMIT)


def test_a_replayed_block_publishes_every_row_exactly_once(tmp_path: Path) -> None:
    staging = str(tmp_path / "_staging")
    first = _attempt(_StageWorker, staging, ("r01", "r02"), delay_s=0.02, stop_after=2)  # node lost after 2 outputs
    retry = _attempt(_StageWorker, staging, ("r07",), delay_s=0.02)
    assert len(retry) == 4 and _ids(first) == _ids(retry)[:2]
    result, publisher, final = _publish(first + retry[2:], tmp_path)  # Ray's position matching
    good = sorted(set(IDS) - {BAD})
    assert sorted(_published(final)) == good
    assert (result.n_ok, result.n_failed, result.n_duplicates) == (len(good), 1, 0)
    assert [e["sample_id"] for e in result.errors] == [BAD]
    # the retry's outputs 0-1 were never published: their files sit in the hidden staging area only
    published = set(storage.list_files(final, suffix=".parquet"))
    others = [p for p in storage.list_files(str(tmp_path), suffix=".parquet", include_hidden=True) if p not in published]
    assert len(published) == 4 and len(others) == 2 and all(p.startswith(staging) for p in others)
    assert publisher.unaccounted(_block()).num_rows == 0


def test_publishing_both_attempts_whole_still_gives_one_row_per_recording(tmp_path: Path) -> None:
    staging = str(tmp_path / "_staging")
    first = _attempt(_StageWorker, staging, ("r03",), delay_s=0.02, stop_after=3)
    retry = _attempt(_StageWorker, staging, ())
    result, _, final = _publish(first + retry, tmp_path)  # the worst case: every output published
    good = sorted(set(IDS) - {BAD})
    assert Counter(_published(final)) == Counter(good)
    assert result.n_ok == len(good) and result.n_duplicates == 8  # 3 commits (one holds BAD) replayed
    assert [e["sample_id"] for e in result.errors] == [BAD]
    assert len(storage.list_files(final, suffix=".parquet")) == 4  # the duplicate files were discarded


def test_rows_published_by_an_earlier_run_are_never_published_again(tmp_path: Path) -> None:
    outputs = _attempt(_StageWorker, str(tmp_path / "_staging"), ())
    result, _, final = _publish(outputs, tmp_path, done={"r00", "r01", "r02", "r04"})
    # commit 0 only held published ids (discarded); commit 1 = r03, r04, BAD: rewritten without r04
    assert sorted(_published(final)) == ["r03", "r06", "r07", "r08", "r09", "r10"]
    assert result.n_ok == 6 and result.n_duplicates == 4
    rewritten = [t for t in map(storage.read_parquet, storage.list_files(final, suffix=".parquet"))
                 if "r03" in t.column("sample_id").to_pylist()]
    assert len(rewritten) == 1 and rewritten[0].column("sample_id").to_pylist() == ["r03"]
    assert read_meta(rewritten[0].schema)["stage"] == "slowset"  # the rewritten file keeps its metadata


def test_negative_control_the_old_time_cut_repeats_and_loses_rows(tmp_path: Path) -> None:
    staging = str(tmp_path / "_staging")
    # the old cut's number of outputs depends on the timing (what Ray's replay check compares) ...
    assert len(_attempt(OldTimeCutWorker, staging, ("r00", "r01"))) == 5
    assert len(_attempt(OldTimeCutWorker, staging, ())) == 4
    # ... the new cut's does not
    assert len(_attempt(_StageWorker, staging, ("r00", "r01"))) == len(_attempt(_StageWorker, staging, ())) == 4

    # lost rows: attempt A cuts early (slow r00, r01) and dies after 2 outputs; B cuts by rows,
    # so B's outputs from position 2 on start after r05: r02-r05 are in nobody's output
    first = _attempt(OldTimeCutWorker, staging, ("r00", "r01"), stop_after=2)
    retry = _attempt(OldTimeCutWorker, staging, ())
    assert _ids(first) == [["r00"], ["r01"]] and _ids(retry)[:2] == [["r00", "r01", "r02"], ["r03", "r04", "r05"]]
    matched = first + retry[2:]  # what Ray hands the driver
    assert set(IDS) - {sid for commit in _ids(matched) for sid in commit} == {"r02", "r03", "r04", "r05"}
    _, publisher, _ = _publish(matched, tmp_path / "lost")
    assert publisher.unaccounted(_block()).column("sample_id").to_pylist() == ["r02", "r03", "r04", "r05"]

    # repeated rows: A cuts by rows and dies after 1 output; B cuts early (slow r00)
    first = _attempt(OldTimeCutWorker, staging, (), stop_after=1)
    retry = _attempt(OldTimeCutWorker, staging, ("r00",))
    matched = first + retry[1:]
    counts = Counter(sid for commit in _ids(matched) for sid in commit)
    assert counts["r01"] == counts["r02"] == 2  # published as they come, r01 and r02 would have 2 rows
    result, _, final = _publish(matched, tmp_path / "dup")  # the driver's dedupe still gives one each
    assert Counter(_published(final)) == Counter(set(IDS) - {BAD}) and result.n_duplicates == 2


def _fake_execute(kill_after: dict[int, int], worker_cls: type = _StageWorker, slow_first: tuple[str, ...] = ()):
    """An in-process ``pipeline._execute``: blocks of 4 rows; in the first pass, block ``b`` dies
    after ``kill_after[b]`` outputs (its rows ``slow_first`` slow) and is replayed the way Ray
    does: the outputs already received are kept, the rest come from a second attempt."""
    calls = []

    def execute(todo, extractor_cls, kwargs, final, staging, stage, publisher, *, commit_rows, **_):  # noqa: ANN001, ANN202
        calls.append(todo.column("sample_id").to_pylist())
        for b, start in enumerate(range(0, todo.num_rows, 4)):
            block = todo.slice(start, 4)

            def attempt(stop=None, slow=(), block=block):  # noqa: ANN001, ANN202
                worker = worker_cls(extractor_cls, kwargs, staging, stage, commit_rows=commit_rows)
                worker.extractor.slow = set(slow)
                out = []
                for t in worker(block):
                    out.append(t)
                    if stop is not None and len(out) == stop:
                        break
                return out

            k = kill_after.get(b) if len(calls) == 1 else None
            outputs = attempt() if k is None else attempt(k, slow_first) + attempt()[k:]
            for t in outputs:
                publisher.collect(t.column("commit").to_pylist()[0])

    return execute, calls


def test_run_stage_with_replayed_blocks_ends_with_one_row_each(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    execute, calls = _fake_execute({0: 1, 2: 1}, slow_first=("r00", "r08"))
    monkeypatch.setattr(pipeline, "_execute", execute)
    result = pipeline.run_stage(_block(), SlowExtractor, {}, out=str(tmp_path), commit_rows=2, progress=False)
    assert len(calls) == 1  # nothing lost: no second pass
    good = sorted(set(IDS) - {BAD})
    assert sorted(io.load_features(str(tmp_path), "slowset").column("sample_id").to_pylist()) == good
    assert (result.n_ok, result.n_failed, result.n_duplicates) == (len(good), 1, 0)
    assert io.load_errors(str(tmp_path)).column("sample_id").to_pylist() == [BAD]
    assert storage.list_files(str(tmp_path / "_staging"), include_hidden=True) == []


def test_run_stage_re_runs_rows_a_replay_lost_and_raises_if_still_lost(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # the old time cut in the workers: block 0's replay loses r02 and r03 (see the negative control)
    execute, calls = _fake_execute({0: 2}, OldTimeCutWorker, slow_first=("r00", "r01"))
    monkeypatch.setattr(pipeline, "_execute", execute)
    result = pipeline.run_stage(_block(), SlowExtractor, {}, out=str(tmp_path), commit_rows=3, progress=False)
    assert len(calls) == 2 and calls[1] == ["r02", "r03"]  # the second pass ran only what the replay lost
    good = sorted(set(IDS) - {BAD})
    assert sorted(io.load_features(str(tmp_path), "slowset").column("sample_id").to_pylist()) == good
    assert result.n_ok == len(good) and result.n_failed == 1

    def execute_nothing(todo, extractor_cls, kwargs, final, staging, stage, publisher, **rest):  # noqa: ANN001, ANN202
        return None  # a pass that publishes nothing at all

    monkeypatch.setattr(pipeline, "_execute", execute_nothing)
    with pytest.raises(StorageError, match="11 recording.*neither published nor failed.*run again"):
        pipeline.run_stage(_block(), SlowExtractor, {}, out=str(tmp_path / "lost"), progress=False)
