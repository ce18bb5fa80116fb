"""Shared test data for the training tests: a tiny real speech-au corpus, preprocessed once.

Not a test module: ``speech_au_preprocessed(tmp_path_factory)`` runs the real pipeline
(synthetic speech -> openSMILE eGeMAPS -> aligned AU labels) into the session's base temp
directory the first time and returns the preprocess output directory afterwards.
"""

from __future__ import annotations

import os

SUBJECTS, ITEMS = 4, 4


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
