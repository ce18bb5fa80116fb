"""Test evaluation of a stage-3 lip reading run: greedy, beam and beam + LM transcripts, WER / CER.

:func:`evaluate_vsr` reads a ``data.task: vsr`` run (its ``config.yaml``, ``result.json`` and
``best_model.pt``), re-reads the speakers of ``part`` from ``data.features`` (checked against
the speakers the run recorded), and decodes every utterance with each method:

* ``greedy``: the decoder's argmax at every step;
* ``beam``: left-to-right beam search, ``decoding.beam_width`` beams, no LM in the ranking;
* ``beam_lm``: the same plus ``decoding.lm_weight`` x the stage-1 LM's log-probability.

The LM (the run's ``pieces.lm``) scores every transcript, so ``lm_score`` (the LM log-probability
of the transcript and EOS) is filled for all three methods. Outputs under ``<run>/evaluation/``:

* ``<part>.parquet``: one row per utterance per method: ``sample_id, subject, method, reference,
  hypothesis, cer, wer`` (per utterance, jiwer), ``decoder_score, lm_score, score, length, n_frames``;
* ``<part>_summary.json``: per method the **average** per-utterance WER / CER (the seed's
  "Average Word Error Rate", SEED-NOTES A.5.15), the **corpus-level** WER / CER (errors over
  all reference words / characters), the mean LM score, utterances/s of decoding, and the
  decoding settings.
"""

from __future__ import annotations

import io
import json
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jiwer
import numpy as np
import pandas as pd
import torch

from affectlab import storage
from affectlab.errors import ConfigError, DatasetError
from affectlab.models.vsr_decoding import transcribe

__all__ = ["EVALUATION_DIR", "METHODS", "evaluate_vsr", "is_vsr_run", "load_vsr_evaluation", "summarise"]

EVALUATION_DIR = "evaluation"
METHODS = ("greedy", "beam", "beam_lm")


def is_vsr_run(run: str) -> bool:
    """Whether ``run`` is a stage-3 lip reading run (its ``config.yaml`` says ``data.task: vsr``)."""
    from affectlab.config import load_yaml

    config_uri = storage.join(run, "config.yaml")
    if not storage.exists(config_uri):
        return False
    base = load_yaml(config_uri).get("base") or {}
    return isinstance(base, dict) and (base.get("data") or {}).get("task") == "vsr"


def _run(run: str) -> tuple[Any, dict[str, Any]]:
    """The run's experiment and ``result.json``.

    Raises:
        DatasetError: Not a finished training run.
        ConfigError: Not a stage-3 (``data.task: vsr``) run.
    """
    from affectlab.config import load_yaml
    from affectlab.training.config import parse_experiment

    config_uri, result_uri = storage.join(run, "config.yaml"), storage.join(run, "result.json")
    if not storage.exists(config_uri) or not storage.exists(result_uri):
        raise DatasetError(f"{run}: no config.yaml / result.json (not a finished `affectlab train` run)")
    config = parse_experiment(load_yaml(config_uri), source=config_uri).base
    if config.data.task != "vsr":
        raise ConfigError(f"{run}: data.task is {config.data.task!r}; the lip reading evaluation decodes "
                          "stage-3 runs (data.task: vsr)")
    return config, json.loads(storage.read_text(result_uri))


def _utterance_rows(task: Any, model: Any, lm: Any, batch: dict[str, Any], raw: dict[str, Any], method: str,
                    subjects: dict[str, str]) -> list[dict[str, Any]]:
    d = task.settings.decoding
    hyps = transcribe(model, batch["video"], batch["mask"], vocab=task.vocab,
                      method="greedy" if method == "greedy" else "beam", beam_width=d.beam_width, lm=lm,
                      lm_weight=d.lm_weight if method == "beam_lm" else 0.0, length_penalty=d.length_penalty,
                      extra_steps=d.extra_steps, ctc_weight=d.ctc_weight)
    refs = task.texts(batch["tokens"], batch["token_lengths"])
    rows = []
    for sid, ref, hyp, frames in zip(raw["sample_id"], refs, hyps, batch["frames"].tolist(), strict=True):
        rows.append({"sample_id": str(sid), "subject": subjects[str(sid)], "method": method, "reference": ref,
                     "hypothesis": hyp.text, "cer": float(jiwer.cer(ref, hyp.text)),
                     "wer": float(jiwer.wer(ref, hyp.text)), "decoder_score": hyp.decoder_score,
                     "lm_score": hyp.lm_score, "score": hyp.score, "length": hyp.length, "n_frames": int(frames)})
    return rows


def summarise(frame: pd.DataFrame) -> dict[str, dict[str, float]]:
    """Per method: ``avg_wer`` / ``avg_cer`` (mean of per-utterance rates), ``corpus_wer`` /
    ``corpus_cer`` (jiwer over all utterances), ``mean_lm_score`` and ``utterances``."""
    out = {}
    for method, rows in frame.groupby("method", sort=False):
        refs, hyps = rows["reference"].tolist(), rows["hypothesis"].tolist()
        out[str(method)] = {"avg_wer": float(rows["wer"].mean()), "avg_cer": float(rows["cer"].mean()),
                            "corpus_wer": float(jiwer.wer(refs, hyps)), "corpus_cer": float(jiwer.cer(refs, hyps)),
                            "mean_lm_score": float(rows["lm_score"].mean()), "utterances": int(len(rows))}
    return out


def _check_speakers(run: str, result: dict[str, Any], part: str, drawn: Sequence[str]) -> None:
    stored = (result.get("subjects") or {}).get(part)
    if stored is not None and sorted(stored) != sorted(drawn):
        raise DatasetError(f"{run}: the {part} speakers re-read from data.features ({sorted(drawn)}) differ from "
                           f"the run's ({sorted(stored)}); the preprocessed data or the card's split changed")


def _with_decoding(config: Any, decoding: Mapping[str, Any], run: str) -> Any:
    """The run's config with ``data.vsr.decoding`` settings replaced (validated like a config file).

    Raises:
        ConfigError: An unknown key or a bad value (named), or a problem of the whole config
            (``ctc_weight`` without the CTC head).
    """
    from pydantic import ValidationError

    from affectlab.training.vsr_config import VsrDecoding, vsr_problems

    try:
        merged = VsrDecoding.model_validate({**config.data.vsr.decoding.model_dump(), **decoding})
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise ConfigError(f"{run}: decoding settings: {problems}") from None
    vsr = config.data.vsr.model_copy(update={"decoding": merged})
    config = config.model_copy(update={"data": config.data.model_copy(update={"vsr": vsr})})
    problems = [p for p in vsr_problems(config) if "decoding" in p]
    if problems:
        raise ConfigError(f"{run}: " + "; ".join(problems))
    return config


def evaluate_vsr(run: str, *, part: str = "test", methods: Sequence[str] = METHODS, batch_size: int | None = None,
                 decoding: Mapping[str, Any] | None = None, lm: str | None = None,
                 progress: Callable[[str], None] | None = None) -> pd.DataFrame:
    """Decode ``part`` of stage-3 run ``run`` with each method and write the outputs (module docstring).

    ``decoding``: settings of ``data.vsr.decoding`` to use instead of the run's (e.g. ``{"ctc_weight":
    0.3}``); ``lm``: another stage-1 LM run for ``lm_score`` and beam + LM instead of the run's own
    (``pieces.lm``; same decoder sizes); the summary records the settings and the LM used.

    Returns:
        The rows written to ``<run>/evaluation/<part>.parquet``.

    Raises:
        ConfigError: Not a stage-3 run, an unknown part or method, no LM recorded, or a bad
            ``decoding`` setting (names the key).
        DatasetError: The part has no clip, or its speakers differ from the run's.
    """
    from affectlab.training.runners import build_modules, shard_batches, torch_threads
    from affectlab.training.tasks import DataInfo
    from affectlab.training.vsr_data import PARTS, load_vsr_data
    from affectlab.training.vsr_run import vsr_task

    if part not in PARTS:
        raise ConfigError(f"part={part!r}: must be one of {', '.join(PARTS)}")
    unknown = [m for m in methods if m not in METHODS]
    if unknown or not methods:
        raise ConfigError(f"methods={list(methods)!r}: choose among {', '.join(METHODS)}")
    config, result = _run(run)
    if decoding:
        config = _with_decoding(config, decoding, run)
    lm_uri = (result.get("pieces") or {}).get("lm") if lm is None else storage.absolute(lm)
    if not lm_uri:
        raise ConfigError(f"{run}: result.json records no LM run (pieces.lm); it is needed for lm_score and beam_lm")
    data = load_vsr_data(config, in_process=True)
    if part not in data.datasets:
        raise DatasetError(f"{run}: the {part} part of its speaker split has no clip")
    _check_speakers(run, result, part, sorted({c.subject for c in data.clips[part]}))
    task = vsr_task(config, DataInfo(extra={"pieces": {"lm": lm_uri}}))
    model = build_modules(config, task, {})["model"]
    model.load_state_dict(torch.load(io.BytesIO(storage.read_bytes(storage.join(run, "best_model.pt"))),
                                     map_location="cpu", weights_only=True))
    model.eval()
    lm_model = task.load_lm()
    subjects = {c.sample_id: c.subject for c in data.clips[part]}
    rows: list[dict[str, Any]] = []
    seconds = {m: 0.0 for m in methods}
    with torch_threads(config.scaling.torch_threads), torch.no_grad():
        for raw in shard_batches(data.datasets[part], batch_size or task.settings.decoding.batch_size):
            batch = task.to_device(raw, "cpu")
            for method in methods:
                started = time.perf_counter()
                rows += _utterance_rows(task, model, lm_model, batch, raw, method, subjects)
                seconds[method] += time.perf_counter() - started
            if progress is not None:
                progress(f"decoded {len(rows) // len(methods)}/{len(subjects)} utterances")
    frame = pd.DataFrame(rows)
    _write(run, part, frame, seconds, config.data.vsr.decoding.model_dump(), lm_uri)
    return frame


def _write(run: str, part: str, frame: pd.DataFrame, seconds: dict[str, float], decoding: dict[str, Any],
           lm: str) -> None:
    import pyarrow as pa

    storage.write_parquet(pa.Table.from_pandas(frame, preserve_index=False),
                          storage.join(run, EVALUATION_DIR, f"{part}.parquet"))
    summary = summarise(frame)
    for method, stats in summary.items():
        stats["utterances_per_s"] = stats["utterances"] / seconds[method] if seconds[method] else float("nan")
    doc = {"part": part, "methods": summary, "decoding": decoding, "lm": lm,
           "aggregation": "avg_*: mean of per-utterance rates (the seed's 'Average'); corpus_*: errors over all "
                          "reference words / characters"}
    storage.write_text(storage.join(run, EVALUATION_DIR, f"{part}_summary.json"),
                       json.dumps(doc, indent=2, default=_json_default))


def _json_default(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def load_vsr_evaluation(run: str, part: str = "test") -> tuple[pd.DataFrame, dict[str, Any]] | None:
    """The rows and summary written by :func:`evaluate_vsr` (None when never evaluated)."""
    uri = storage.join(run, EVALUATION_DIR, f"{part}.parquet")
    if not storage.exists(uri):
        return None
    summary = json.loads(storage.read_text(storage.join(run, EVALUATION_DIR, f"{part}_summary.json")))
    return storage.read_parquet(uri).to_pandas(), summary
