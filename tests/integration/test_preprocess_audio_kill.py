"""A ``jobs/preprocess.py`` run killed midway (SIGKILL) leaves only whole files; the re-run completes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import pytest

from affectlab import storage
from affectlab.features import io
from affectlab.preprocess import preprocess
from audio_corpus import write_csv_corpus

pytestmark = pytest.mark.slow
REPO = Path(__file__).resolve().parents[2]
N_FILES = 40


def _published(out: Path) -> list[Path]:
    return sorted(p for p in (out / "features" / "egemaps").glob("version=*/*.parquet"))


def test_killed_run_leaves_no_partial_data_and_rerun_ends_with_one_row_each(ray_local: None, tmp_path: Path) -> None:
    card = write_csv_corpus(tmp_path / "corpus", N_FILES)
    out = tmp_path / "out"
    log = open(tmp_path / "job.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [sys.executable, "jobs/preprocess.py", card, "--out", str(out), "--audio", "egemaps", "--batch-size", "1",
         "--num-workers", "1", "--num-cpus", "1", "--no-progress"],
        cwd=REPO, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        env={k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"},
    )
    try:
        deadline = time.monotonic() + 240
        while not _published(out) and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        assert proc.poll() is None, "the job ended before it could be killed: " + (tmp_path / "job.log").read_text()[-2000:]
        assert _published(out), "no part file appeared in time"
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
        log.close()

    visible = _published(out)
    for path in visible:  # every file a reader can see is whole
        pq.read_table(path)
    committed = pd.read_parquet(out / "features" / "egemaps")["sample_id"].tolist()
    assert 1 <= len(committed) < N_FILES
    assert not (out / "_SUCCESS.json").exists()

    result = preprocess(card, str(out), audio="egemaps", progress=False)
    stage = result.stages[0]
    assert stage.n_skipped == len(committed) and stage.n_ok == N_FILES - len(committed) and stage.n_failed == 0
    final = io.load_features(str(out), "egemaps").column("sample_id").to_pylist()
    assert sorted(final) == [f"c{i:02d}" for i in range(N_FILES)]
    assert storage.list_files(str(out / "_staging"), include_hidden=True) == []
