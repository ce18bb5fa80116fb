"""``benchmarks/scale.py`` end to end at a tiny size: its plumbing (corpus, card, the
``affectlab preprocess`` subprocess, the pool, the resume check, the Markdown table) works."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]


def test_scale_script_runs_a_tiny_size_and_its_resume_extracts_nothing(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "scale.py"), "--sizes", "6", "--skip-cluster", "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=600,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    row = next(line for line in proc.stdout.splitlines() if line.startswith("| 6 |"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert 1 <= int(cells[11]) <= 6 and cells[12] == "6"  # published files (one per commit), rows
    assert "extracted 0, skipped 6, published files unchanged: True (extracts nothing); Ray processes started: 0" \
        in proc.stdout  # a finished output is recognised before Ray would start
    assert (tmp_path / "out-6" / "_SUCCESS.json").exists()
