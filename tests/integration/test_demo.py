"""`affectlab demo` end to end (a smaller corpus and sweep than the default): every step runs
on an embedded local Ray and the report holds the CV tables, the sweep and valid PNG plots."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_demo_runs_end_to_end(tmp_path: Path) -> None:
    out = tmp_path / "demo-out"
    env = {**os.environ, "PYTHONPATH": str(REPO / "platform")}
    env.pop("RAY_ADDRESS", None)
    cmd = [sys.executable, "-c", "from affectlab.cli import main; main()", "demo", "--out", str(out),
           "--subjects", "3", "--items", "3", "--samples", "3", "--num-cpus", "2"]
    done = subprocess.run(cmd, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=580)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    assert f"Open the report: {out / 'report' / 'index.html'}" in done.stdout
    for step in ("1/5", "2/5", "3/5", "4/5", "5/5"):
        assert step in done.stdout
    md = (out / "report" / "index.md").read_text()
    assert "## Cross-validation" in md and "Table I: AU17" in md and "## Sweep" in md
    assert "### Best configuration" in md
    pngs = sorted((out / "report").glob("*.png"))
    assert len(pngs) >= 4
    for png in pngs:
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (out / "sweep" / "best_config.yaml").exists() and (out / "cv" / "folds.parquet").exists()
