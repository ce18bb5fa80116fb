"""Shared test data for the training tests: a tiny real speech-au corpus, preprocessed once.

Not a test module: ``speech_au_preprocessed(tmp_path_factory)`` runs the real pipeline
(synthetic speech -> openSMILE eGeMAPS -> aligned AU labels) into the session's base temp
directory the first time and returns the preprocess output directory afterwards.
"""

from __future__ import annotations

import os
from pathlib import Path

import yaml

SUBJECTS, ITEMS = 4, 4
REPO = Path(__file__).resolve().parents[2]


def speech_au_preprocessed(tmp_path_factory, relation: str = "planted") -> str:
    """Preprocess output dir of a 4 subjects x 4 utterances speech-au corpus (cached per session)."""
    from affectlab.data.synth import generate
    from affectlab.preprocess import preprocess

    root = tmp_path_factory.getbasetemp() / f"speech_au_{relation}"
    out = root / "pre"
    if (out / "_SUCCESS.json").exists():
        return str(out)
    card = generate("speech-au", str(root / "corpus"), subjects=SUBJECTS, items=ITEMS, seed=0, relation=relation,
                    overwrite=True, min_duration_s=2.0, max_duration_s=4.0)
    result = preprocess(card, str(out), audio=["egemaps"], progress=False)
    assert result.n_failed == 0 and os.path.exists(out / "_SUCCESS.json")
    return str(out)


def sweep_file(tmp_path: Path, pre: str, *, samples: int, epochs: int, space: dict | None = None,
               training: dict | None = None, tune: dict | None = None) -> str:
    """A small real sweep (au_003's base: AU17 occurrence from eGeMAPS LLDs) written as a sweep file.

    Early stopping is active (patience 2 after 2 warm-up epochs) and the kept epoch is the best
    of the last 2, so the kept weights are often neither the last epoch's nor the best epoch's
    overall: the objective rule is visible in the numbers.
    """
    data = yaml.safe_load((REPO / "search_spaces" / "au_003.yaml").read_text())
    data["base"]["data"]["features"] = pre
    data["base"]["model"] = {"name": "stacked", "kwargs": {"hidden": 16, "dropout": 0.1}}
    data["base"]["training"].update({"max_epochs": epochs, "prev_rounds": 2, "patience": 2, "last_top_results": 2,
                                     **(training or {})})
    data["space"] = space or {"training.lr": {"loguniform": [0.005, 0.05]}, "model.kwargs.hidden": {"choice": [8, 16]}}
    data["tune"] = {"metric": "val_uar", "mode": "max", "num_samples": samples, "seed": 0, "startup_trials": 2,
                    "asha": {"grace_period": 2, "reduction_factor": 2, "max_t": epochs}, **(tune or {})}
    path = tmp_path / "sweep.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return str(path)
