"""Shared test data: a csv-adapter corpus of N speech-like 4 s wav files over 3 speakers.

Not a test module. Preprocessing it one file per batch takes long enough (tens of seconds)
for a test to interrupt a run after its first commits and before its last.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf


def write_csv_corpus(root: Path, n_files: int, seed: int = 7) -> str:
    """Write ``n_files`` 16 kHz PCM_16 files ``c00.wav``... and a csv card; returns the card path."""
    rng = np.random.default_rng(seed)
    (root / "audio").mkdir(parents=True, exist_ok=True)
    lines = ["sample_id,subject,audio,video,labels"]
    t = np.arange(int(4.0 * 16000)) / 16000
    for i in range(n_files):
        phase = 2 * np.pi * np.cumsum(120 + 30 * np.sin(2 * np.pi * 0.3 * t + i)) / 16000
        x = 0.2 * np.sin(phase) + 0.01 * rng.standard_normal(len(t))
        sf.write(root / "audio" / f"c{i:02d}.wav", x.astype(np.float32), 16000, subtype="PCM_16")
        lines.append(f"c{i:02d},spk{i % 3},audio/c{i:02d}.wav,,")
    (root / "manifest.csv").write_text("\n".join(lines) + "\n")
    (root / "dataset.yaml").write_text("name: killtest\nadapter: csv\nroot: .\n")
    return str(root / "dataset.yaml")
