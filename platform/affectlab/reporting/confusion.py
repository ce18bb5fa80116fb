"""Confusion matrices of trained runs on their test subjects.

A run's ``result.json`` may carry them (``test_confusion``: rows true, columns predicted); when
it does not, the matrix is recomputed from the run's outputs: its ``config.yaml`` and
``best_model.pt`` (loaded with ``weights_only=True``) on the same test windows the training
evaluated, prepared by the training code itself. Frame tasks give the 2 x 2 matrix of their
class; token tasks (``f0_to_au``) give AU presence (intensity > 0) against absence.
"""

from __future__ import annotations

import io
import json
from typing import Any

import numpy as np

from affectlab import storage

__all__ = ["CorpusCache", "run_confusion"]

LABELS = {"au": ["0", "1"], "f0_to_au": ["absent", "present"]}


class CorpusCache:
    """Loaded corpora by data settings, so the folds of a CV grid read the data once."""

    def __init__(self) -> None:
        self._corpora: dict[tuple[Any, ...], Any] = {}

    def get(self, data: Any) -> Any:
        from affectlab.training.corpus import load_corpus

        key = (data.features, data.feature_set, data.label_set, data.task, getattr(data, "rate", None))
        if key not in self._corpora:
            self._corpora[key] = load_corpus(data)
        return self._corpora[key]


def run_confusion(run_dir: str, cache: CorpusCache | None = None) -> tuple[np.ndarray, list[str]] | None:
    """The test confusion matrix of the run in ``run_dir`` and its class labels.

    Returns:
        ``(matrix, labels)``, or None when the run has no test subjects or its data or model
        files are gone.
    """
    summary_uri = storage.join(run_dir, "result.json")
    if not storage.exists(summary_uri):
        return None
    summary = json.loads(storage.read_text(summary_uri))
    task = (summary.get("target") or {}).get("task", "au")
    if "test_confusion" in summary:
        return np.asarray(summary["test_confusion"]), LABELS.get(task, [])
    if not summary.get("test") or not storage.exists(storage.join(run_dir, "best_model.pt")):
        return None
    try:
        return _recompute(run_dir, cache or CorpusCache()), LABELS.get(task, [])
    except Exception:  # noqa: BLE001 - the data may have moved since training; skip the plot
        return None


def _recompute(run_dir: str, cache: CorpusCache) -> np.ndarray:
    import torch

    from affectlab.config import load_yaml
    from affectlab.training.config import parse_experiment
    from affectlab.training.data import batches, prepare
    from affectlab.training.metrics import ConfusionAccumulator
    from affectlab.training.runners import build, task_for

    config = parse_experiment(load_yaml(storage.join(run_dir, "config.yaml")), source=run_dir).base
    prepared = prepare(config, cache.get(config.data))
    if prepared.test is None:
        raise ValueError("no test windows")
    model = build(config, prepared.model_kwargs)
    state = torch.load(io.BytesIO(storage.read_bytes(storage.join(run_dir, "best_model.pt"))), weights_only=True)
    model.load_state_dict(state)
    vocab = prepared.info.get("vocab")
    task = task_for(config, prepared.class_counts, vocab)
    with torch.no_grad():
        out = task.predict(model, batches(prepared.test, config.training.batch_size), "cpu")
    pred, true = np.asarray(out["pred"]), np.asarray(out["true"])
    if config.data.task == "f0_to_au":
        values = np.asarray(vocab["id_values"], dtype=float)
        pred = (np.nan_to_num(values[pred]) > 0).astype(np.int64)
        true = (np.nan_to_num(values[true]) > 0).astype(np.int64)
    acc = ConfusionAccumulator(2)
    acc.update(pred, true)
    return acc.matrix
