"""Report tables of lip reading runs (seed 001), recomputed from the stored outputs.

For every stage-3 run (``data.task: vsr``) with a test evaluation (``affectlab evaluate``):

* the seed's comparison table layout ``S.NO | MODEL | WER SCORE`` with our rows, one per
  decoding method (visual-only greedy, beam, beam + LM) and model size, the average
  per-utterance WER as the seed prints it, plus CER and the corpus-level rates; the WERs are
  recomputed with jiwer from the stored transcripts, not read from the summary;
* the seed's own rows (LRS2, as it reports them), in a separate table: they are literature
  figures on another corpus, not measured here;
* the 12-row ``# | Ground Truth | Transcript`` table of the seed (the first 12 test utterances
  by ``sample_id``, decoded with beam + LM), with each utterance's CER and WER;
* per-stage loss curves (stage 1 LM, stage 2 visual pretraining, stage 3 integration, found
  through the run's recorded ``pieces``) and the seed's two loss tables: the LM's epoch
  losses and the visual pretraining's ``Epoch | Time | Loss``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import jiwer
import pandas as pd

from affectlab import storage
from affectlab.reporting.document import Document, Image, Table

__all__ = ["SEED001_TABLE", "comparison_table", "lip_reading_runs", "loss_tables", "stage_losses_png", "stage_runs",
           "transcript_table", "vsr_section"]

WritePng = Callable[[str, bytes], Any]

# Seed 001's "COMPARATIVE ANALYSIS" (SEED-NOTES A.4): WER on LRS2 as the seed prints it.
SEED001_TABLE = (
    ("WAS [9] (Pretrained)", "70.4%"), ("TM-seq2seq (Pretrained)", "49.8%"), ("TM-seq2seq+LM (Pretrained)", "56.1%"),
    ("TM+ResNet", "47.6%"), ("TCN", "51.1%"), ("TM+ResNet+Subword Vocabulary", "46.4%"), ("Proposed Model", "45.9%"),
)
METHOD_LABELS = {"greedy": "visual-only, greedy", "beam": "beam {beam}", "beam_lm": "beam {beam} + LM (weight {lm})"}
STAGE_NAMES = {"lm": "stage 1: char LM", "visual": "stage 2: visual pretraining", "lipreader": "stage 3: integration"}


def _config(run: str) -> dict[str, Any]:
    from affectlab.config import load_yaml

    return load_yaml(storage.join(run, "config.yaml")).get("base") or {}


def _label(run: str, method: str, summary: dict[str, Any]) -> str:
    config = _config(run)
    size = ((config.get("model") or {}).get("kwargs") or {}).get("size", "custom")
    decoding = summary.get("decoding") or {}
    text = METHOD_LABELS[method].format(beam=decoding.get("beam_width", "?"), lm=decoding.get("lm_weight", "?"))
    joint = f", joint CTC {decoding['ctc_weight']:g}" if decoding.get("ctc_weight") else ""
    return f"{text}{joint}, `{size}`"


def comparison_table(runs: list[str], part: str = "test") -> pd.DataFrame:
    """``S.NO | MODEL | WER SCORE | CER | corpus WER | corpus CER | utterances``, one row per
    run and method, recomputed from ``<run>/evaluation/<part>.parquet``."""
    from affectlab.training.vsr_evaluate import METHODS, load_vsr_evaluation

    rows = []
    for run in runs:
        loaded = load_vsr_evaluation(run, part)
        if loaded is None:
            continue
        frame, summary = loaded
        for method in METHODS:
            sub = frame[frame["method"] == method]
            if sub.empty:
                continue
            refs, hyps = sub["reference"].tolist(), sub["hypothesis"].tolist()
            wers = [jiwer.wer(r, h) for r, h in zip(refs, hyps, strict=True)]
            cers = [jiwer.cer(r, h) for r, h in zip(refs, hyps, strict=True)]
            rows.append({"MODEL": _label(run, method, summary), "WER SCORE": f"{100 * sum(wers) / len(wers):.1f}%",
                         "CER": f"{100 * sum(cers) / len(cers):.1f}%",
                         "corpus WER": f"{100 * jiwer.wer(refs, hyps):.1f}%",
                         "corpus CER": f"{100 * jiwer.cer(refs, hyps):.1f}%", "utterances": len(sub),
                         "run": run.rstrip("/").rsplit("/", 1)[-1]})
    table = pd.DataFrame(rows)
    if not table.empty:
        table.insert(0, "S.NO", range(1, len(table) + 1))
    return table


def transcript_table(run: str, part: str = "test", method: str = "beam_lm", rows: int = 12) -> pd.DataFrame:
    """The seed's 12-row ``# | Ground Truth | Transcript`` table: the first ``rows`` utterances by
    ``sample_id`` decoded with ``method``, with frames, CER and WER (jiwer) per utterance."""
    from affectlab.training.vsr_evaluate import load_vsr_evaluation

    loaded = load_vsr_evaluation(run, part)
    if loaded is None:
        return pd.DataFrame()
    frame = loaded[0]
    sub = frame[frame["method"] == method].sort_values("sample_id").head(rows)
    return pd.DataFrame({
        "#": range(len(sub)), "sample": sub["sample_id"].tolist(), "frames": sub["n_frames"].tolist(),
        "Ground Truth": sub["reference"].tolist(), "Transcript": sub["hypothesis"].tolist(),
        "CER": [jiwer.cer(r, h) for r, h in zip(sub["reference"], sub["hypothesis"], strict=True)],
        "WER": [jiwer.wer(r, h) for r, h in zip(sub["reference"], sub["hypothesis"], strict=True)]})


def _pieces(run: str) -> dict[str, str]:
    return json.loads(storage.read_text(storage.join(run, "result.json"))).get("pieces") or {}


def stage_runs(run: str) -> dict[str, str]:
    """The stage runs behind stage-3 ``run``: ``lm`` and ``visual`` from its recorded pieces (through
    the stage-3 runs of a word curriculum it went on from), and itself."""
    pieces, seen = _pieces(run), {run}
    while pieces.get("lipreader") and pieces["lipreader"] not in seen:
        seen.add(pieces["lipreader"])
        pieces = _pieces(pieces["lipreader"])
    found = {stage: pieces[stage] for stage in ("lm", "visual") if pieces.get(stage)}
    return {**found, "lipreader": run}


def _history(run: str) -> pd.DataFrame | None:
    uri = storage.join(run, "history.parquet")
    return storage.read_parquet(uri).to_pandas() if storage.exists(uri) else None


def loss_tables(stages: dict[str, str]) -> list[tuple[str, pd.DataFrame]]:
    """The seed's loss tables: stage 1 ``Epoch | Loss`` (training and validation) and stage 2
    ``Epoch | Time | Loss`` (seconds of the epoch, training loss), from each run's history."""
    tables = []
    lm = _history(stages["lm"]) if "lm" in stages else None
    if lm is not None:
        tables.append(("stage 1, character LM: epoch losses (training transcripts; validation speakers)",
                       pd.DataFrame({"Epoch": lm["epoch"], "Loss": lm["train_loss"],
                                     "val Loss": lm.get("val_loss", pd.Series(dtype=float))})))
    visual = _history(stages["visual"]) if "visual" in stages else None
    if visual is not None:
        tables.append(("stage 2, visual pretraining: Epoch | Time | Loss (seconds of training and validation)",
                       pd.DataFrame({"Epoch": visual["epoch"], "Time": visual.get("epoch_s", pd.Series(dtype=float)),
                                     "Loss": visual["train_loss"],
                                     "val Loss": visual.get("val_loss", pd.Series(dtype=float))})))
    return tables


def stage_losses_png(stages: dict[str, str]) -> bytes:
    """Training and validation loss against epoch, one panel per stage."""
    from affectlab.reporting.plots import figure_png, plt

    present = [(s, h) for s in ("lm", "visual", "lipreader") if s in stages and (h := _history(stages[s])) is not None]
    fig, axes = plt.subplots(1, max(len(present), 1), figsize=(4.4 * max(len(present), 1), 3.4), squeeze=False)
    for ax, (stage, history) in zip(axes.flat, present, strict=False):
        for column in ("train_loss", "val_loss"):
            if column in history:
                ax.plot(history["epoch"], history[column], marker="o", markersize=3, label=column)
        ax.set_title(STAGE_NAMES[stage], fontsize=10)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    return figure_png(fig)


def lip_reading_runs(uri: str, outputs: list[tuple[str, str]]) -> list[str]:
    """Stage-3 runs among ``outputs``, then the run an ``affectlab pipeline`` in ``uri`` evaluated
    (``pipeline.json``; the best trial of a stage-3 sweep is not an output of its own)."""
    from affectlab.training.vsr_evaluate import is_vsr_run

    runs = [where for kind, where in outputs if kind == "run" and is_vsr_run(where)]
    marker = storage.join(uri, "pipeline.json")
    if storage.exists(marker):
        evaluated = json.loads(storage.read_text(marker)).get("evaluated")
        if evaluated and evaluated not in runs and is_vsr_run(evaluated):
            runs.append(evaluated)
    return runs


def vsr_section(doc: Document, runs: list[str], write_png: WritePng, *, part: str = "test") -> None:
    """Append the lip reading section for stage-3 ``runs`` (module docstring); nothing without runs."""
    if not runs:
        return
    doc.heading("Lip reading (seed 001)", 2)
    table = comparison_table(runs, part)
    if table.empty:
        doc.text(f"No {part} evaluation stored yet: run `affectlab evaluate RUN` on the stage-3 run(s).")
    else:
        doc.table(Table.from_frame(table, caption=f"Comparative analysis, the seed's layout (S.NO | MODEL | WER SCORE): "
                                                  f"{part} speakers; WER SCORE and CER are averages of per-utterance "
                                                  "rates (the seed's 'Average'), corpus rates count all errors over "
                                                  "all reference words / characters"))
    seed = pd.DataFrame([{"S.NO": i, "MODEL": m, "WER SCORE": w} for i, (m, w) in enumerate(SEED001_TABLE, start=1)])
    doc.table(Table.from_frame(seed, caption="as reported by seed 001 on LRS2 (literature figures, not measured here)"))
    for i, run in enumerate(runs, start=1):
        name = run.rstrip("/").rsplit("/", 1)[-1]
        transcripts = transcript_table(run, part)
        if not transcripts.empty:
            doc.table(Table.from_frame(transcripts, caption=f"{name}: ground truth vs transcript (beam + LM), the "
                                                            f"first {len(transcripts)} {part} utterances"))
        stages = stage_runs(run)
        for caption, loss in loss_tables(stages):
            doc.table(Table.from_frame(loss, caption=f"{name}: {caption}"))
        png = f"vsr{i}_stage_losses.png"
        write_png(png, stage_losses_png(stages))
        doc.image(Image(png, f"{name}: loss per epoch of each stage ({', '.join(stages.values())})"))
