"""Reports: Markdown and HTML with tables, valid PNG plots, for run, CV and sweep outputs."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image as PILImage

from affectlab.errors import StorageError
from affectlab.reporting import find_outputs, plots, write_report
from affectlab.reporting.document import Document, Table

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def assert_png(data: bytes) -> None:
    assert data[:8] == PNG_SIGNATURE
    with PILImage.open(io.BytesIO(data)) as img:
        img.verify()
    with PILImage.open(io.BytesIO(data)) as img:
        assert img.size[0] > 100 and img.size[1] > 100


def _sweep_spec(out: Path, n: int) -> None:
    out.mkdir(parents=True)
    spec = {"source": "search_spaces/x.yaml", "num_samples": n,
            "space": {"training.lr": {"loguniform": [1e-4, 1e-1]}, "model.name": {"choice": ["a", "b"]}},
            "tune": {"metric": "val_uar", "mode": "max", "seed": 0, "asha": {"grace_period": 1, "reduction_factor": 2}}}
    (out / "sweep.json").write_text(json.dumps(spec))


def _trial_events(tid: str, number: int, params: dict, curve: dict[int, float], kept: dict[int, int],
                  end: str | None, *, objective_fields: bool = True) -> list[dict]:
    """Ledger events as :class:`affectlab.tuning.callbacks.SweepLedger` writes them: every result
    and end event carries the objective (``val_uar`` of the kept epoch) and ``kept_epoch``;
    ``kept[e]`` is the training's ``best_epoch`` after epoch ``e``."""
    events = [{"event": "start", "trial_id": tid, "number": number, "params": params}]
    fields: dict = {}
    for e, value in curve.items():
        fields = {"objective": curve[kept[e]], "kept_epoch": kept[e]} if objective_fields else {}
        events.append({"event": "result", "trial_id": tid, "number": number, "iteration": e,
                       "metrics": {"val_uar": value, "val_loss": 1.0 / e, "epoch": e, "best_epoch": kept[e]},
                       **fields})
    if end is not None:
        events.append({"event": end, "trial_id": tid, "number": number, "iteration": max(curve), "params": params,
                       **fields})
    return events


def write_sweep(root: Path, n: int = 4) -> Path:
    out = root / "sweep"
    _sweep_spec(out, n)
    rng = np.random.default_rng(0)
    events = []
    for i in range(n):
        params = {"training.lr": float(10 ** rng.uniform(-4, -1)), "model.name": "ab"[i % 2]}
        epochs = 4 if i % 2 == 0 else 1
        curve = {e: 0.5 + 0.1 * i * e / 4 for e in range(1, epochs + 1)}
        events += _trial_events(f"t{i}", i + 1, params, curve, {e: e for e in curve},
                                "complete" if epochs == 4 else "stopped")
    events.append({"event": "start", "trial_id": "late", "number": n + 1, "params": {"training.lr": 0.01, "model.name": "a"}})
    (out / "ledger.jsonl").write_text("\n".join(json.dumps(e) for e in events) + "\n")
    return out


def write_run(run: Path, uar: float = 0.7) -> Path:
    run.mkdir(parents=True)
    history = [{"epoch": e, "train_loss": 1 / e, "val_loss": 1.2 / e, "val_uar": uar * e / 3, "best_epoch": e}
               for e in (1, 2, 3)]
    pq.write_table(pa.Table.from_pylist(history), run / "history.parquet")
    summary = {"name": run.name, "runner": "in_process", "target": {"task": "au", "au": "AU17", "kind": "occurrence"},
               "model": "stacked", "feature_set": "egemaps", "epochs": 3, "best_epoch": 3, "stop_reason": "max_epochs",
               "split": {"train": ["s1"], "val": ["s2"], "test": ["s3"]}, "val": {"val_uar": uar},
               "test": {"test_uar": uar - 0.1}, "baseline": {"baseline_uar": 0.5},
               "test_confusion": [[40, 10], [5, 45]]}
    (run / "result.json").write_text(json.dumps(summary))
    return run


def write_cv(root: Path) -> Path:
    cv = root / "cv"
    rows = []
    for i, subject in enumerate(("s1", "s2", "s3")):
        fold = f"loso-{subject}"
        write_run(cv / "runs" / f"{fold}_AU17_occurrence_stacked_egemaps", uar=0.6 + 0.05 * i)
        rows.append({"fold": fold, "test_subject": subject, "au": "AU17", "kind": "occurrence", "arch": "stacked",
                     "feature_set": "egemaps", "uar": 0.6 + 0.05 * i, "f1": 0.5, "accuracy": 0.6, "epochs": 3})
    pq.write_table(pa.Table.from_pylist(rows), cv / "folds.parquet")
    (cv / "table1.md").write_text("### Table I: AU17, egemaps (LOSO mean UAR %)\n\n| arch | occurrence |\n|---|---|\n"
                                  "| stacked | 65.0 |\n")
    (cv / "timing.json").write_text(json.dumps({"trainings": 3, "grid_wall_s": 9.0, "cpus": 2, "sum_training_s": 15.0}))
    return root


def test_document_renders_tables_in_markdown_and_html() -> None:
    doc = Document("T <1>")
    doc.table(Table(["a", "b|c"], [[1.23456, None], ["x<y", float("nan")]], caption="cap"))
    doc.markdown_block("### Table I\n\n| arch | uar |\n|---|---|\n| s | 65.0 |\n")
    md, html = doc.to_markdown(), doc.to_html()
    assert "| a | b\\|c |" in md and "| 1.235 | - |" in md
    assert "<th>b|c</th>" in html and "<td>x&lt;y</td>" in html and "<title>T &lt;1&gt;</title>" in html
    assert "<h3>Table I</h3>" in html and "<td>65.0</td>" in html and "<th>arch</th>" in html


@pytest.mark.parametrize("make", [
    lambda: plots.learning_curves_png({"t1": {1: 0.5, 2: 0.6}, "t2": {1: 0.4}}, metric="val_uar", stopped=["t2"]),
    lambda: plots.metric_vs_params_png({"lr": [1e-3, 1e-2, 1e-1], "arch": ["a", "b", "a"]}, [0.5, 0.7, 0.6],
                                       metric="val_uar", log_params=["lr"]),
    lambda: plots.parallel_coordinates_png({"lr": [1e-3, 1e-2, 1e-1], "arch": ["a", "b", "a"]}, [0.5, 0.7, 0.6],
                                           metric="val_uar", log_params=["lr"]),
    lambda: plots.confusion_matrix_png([[5, 1], [2, 7]], labels=["0", "1"]),
    lambda: plots.history_png({"val_uar": {1: 0.5, 2: 0.6}, "val_loss": {1: 1.0, 2: 0.8}}),
])
def test_plots_are_valid_pngs(make) -> None:
    assert_png(make())


def test_sweep_report_has_best_config_all_trials_and_plots(tmp_path: Path) -> None:
    out = write_sweep(tmp_path)
    index = write_report(str(out))
    report = Path(index).parent
    md = (report / "index.md").read_text()
    assert "### Best configuration" in md and "### All trials" in md
    best_row = next(line for line in md.splitlines() if line.startswith("| val_uar (kept weights)"))
    assert best_row == "| val_uar (kept weights) | 0.7 | trial 3 (t2) |"  # i=2: 0.5 + 0.1 * 2 * 4 / 4
    assert "| 5 | interrupted | 0 |" in md and "stopped early" in md
    pngs = sorted(report.glob("*.png"))
    assert [p.name for p in pngs] == ["sweep1_learning_curves.png", "sweep1_metric_vs_params.png",
                                      "sweep1_parallel_coordinates.png"]
    for png in pngs:
        assert_png(png.read_bytes())
        assert f'src="{png.name}"' in (report / "index.html").read_text()


def _sweep_with_rules_that_disagree(root: Path, *, objective_fields: bool = True) -> Path:
    """Three trials where "best epoch overall, stopped trials included" and the sweep's rule
    (objective of the kept weights, full-budget trials only) pick different trials:

    * t1 (finished): peaks at 0.90 in epoch 2, but its training keeps epoch 4 (0.60);
    * t2 (stopped early by ASHA): the best objective of all, 0.95, after 2 epochs;
    * t3 (finished): never above 0.80, kept epoch 3 (0.80): the sweep's best.
    """
    out = root / "sweep"
    _sweep_spec(out, 3)
    events = [
        *_trial_events("t1", 1, {"training.lr": 0.001, "model.name": "a"}, {1: 0.5, 2: 0.9, 3: 0.55, 4: 0.6},
                       {1: 1, 2: 2, 3: 2, 4: 4}, "complete", objective_fields=objective_fields),
        *_trial_events("t2", 2, {"training.lr": 0.01, "model.name": "b"}, {1: 0.7, 2: 0.95},
                       {1: 1, 2: 2}, "stopped", objective_fields=objective_fields),
        *_trial_events("t3", 3, {"training.lr": 0.003, "model.name": "a"}, {1: 0.6, 2: 0.7, 3: 0.8, 4: 0.75},
                       {1: 1, 2: 2, 3: 3, 4: 3}, "complete", objective_fields=objective_fields),
    ]
    (out / "ledger.jsonl").write_text("\n".join(json.dumps(e) for e in events) + "\n")
    return out


@pytest.mark.parametrize("objective_fields", [True, False], ids=["ledger-objective", "older-ledger"])
def test_sweep_report_picks_the_best_as_the_sweep_does(tmp_path: Path, objective_fields: bool) -> None:
    """The report's best is the best objective (metric of the kept weights) among the trials that ran
    their whole budget: t3, not t1 (best single epoch) nor t2 (stopped early)."""
    from affectlab.reporting.sweep_section import best_trial, load_trials

    out = _sweep_with_rules_that_disagree(tmp_path, objective_fields=objective_fields)
    trials = load_trials(str(out))
    assert [(t.trial_id, t.status, t.objective, t.kept_epoch) for t in trials] == [
        ("t1", "finished", 0.6, 4), ("t2", "stopped early", 0.95, 2), ("t3", "finished", 0.8, 3)]
    assert best_trial(trials, "max").trial_id == "t3"
    assert best_trial(trials, "min").trial_id == "t1"  # mode min: the lowest objective of the finished trials
    md = (Path(write_report(str(out))).parent / "index.md").read_text()
    assert "| val_uar (kept weights) | 0.8 | trial 3 (t3) |" in md
    assert "| kept epoch | 3 |" in md
    assert "| 1 | finished | 4 | 0.6 | 4 | 0.6 |" in md  # trials table: objective, kept epoch, last epoch


def test_sweep_report_best_ties_go_to_the_earliest_and_stopped_trials_never_win(tmp_path: Path) -> None:
    from affectlab.reporting.sweep_section import best_trial, load_trials

    out = tmp_path / "sweep"
    _sweep_spec(out, 3)
    events = [
        *_trial_events("a", 1, {}, {1: 0.99}, {1: 1}, "stopped"),
        *_trial_events("b", 2, {}, {1: 0.7}, {1: 1}, "complete"),
        *_trial_events("c", 3, {}, {1: 0.7}, {1: 1}, "complete"),
        *_trial_events("d", 4, {}, {1: 0.9}, {1: 1}, None),  # interrupted: no end event
    ]
    (out / "ledger.jsonl").write_text("\n".join(json.dumps(e) for e in events) + "\n")
    assert best_trial(load_trials(str(out)), "max").trial_id == "b"

    only_stopped = tmp_path / "stopped"
    _sweep_spec(only_stopped, 1)
    (only_stopped / "ledger.jsonl").write_text(
        "\n".join(json.dumps(e) for e in _trial_events("a", 1, {}, {1: 0.9}, {1: 1}, "stopped")) + "\n")
    assert best_trial(load_trials(str(only_stopped)), "max") is None
    md = (Path(write_report(str(only_stopped))).parent / "index.md").read_text()
    assert "No trial ran its whole epoch budget" in md


def test_run_and_cv_reports_include_tables_curves_and_confusion(tmp_path: Path) -> None:
    run = write_run(tmp_path / "run")
    index = write_report(str(run))
    md = (Path(index).parent / "index.md").read_text()
    assert "## Training run: run" in md and "| test | test_uar | 0.6 |" in md
    assert {p.name for p in Path(index).parent.glob("*.png")} == {"run1_learning_curves.png", "run1_confusion.png"}

    root = write_cv(tmp_path / "exp")
    index = write_report(str(root))
    html = Path(index).read_text()
    assert "<h3>Table I: AU17, egemaps (LOSO mean UAR %)</h3>" in html and "<td>65.0</td>" in html
    md = (Path(index).parent / "index.md").read_text()
    assert "| loso-s3 | s3 | AU17 |" in md
    for png in Path(index).parent.glob("*.png"):
        assert_png(png.read_bytes())
    assert {p.name for p in Path(index).parent.glob("*.png")} == {"cv1_1_learning_curves.png", "cv1_1_confusion.png"}


def test_a_directory_holding_several_outputs_gets_one_report(tmp_path: Path) -> None:
    write_sweep(tmp_path)
    write_cv(tmp_path)
    kinds = [kind for kind, _ in find_outputs(str(tmp_path))]
    assert kinds == ["cv", "sweep"]
    md = (Path(write_report(str(tmp_path))).parent / "index.md").read_text()
    assert "## Cross-validation" in md and "## Sweep" in md


def test_nothing_to_report_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(StorageError, match="no run .* CV .* or sweep"):
        write_report(str(tmp_path))


def test_strong_cells_render_bold_in_markdown_and_html() -> None:
    from affectlab.reporting.document import Document, Strong, Table

    doc = Document("t")
    doc.table(Table(["a", "b"], [[Strong("0.9 (3)"), "0.1 (1)"]]))
    assert "| **0.9 (3)** | 0.1 (1) |" in doc.to_markdown()
    assert "<td><strong>0.9 (3)</strong></td><td>0.1 (1)</td>" in doc.to_html()


def test_gan_table_bolds_each_columns_best_from_the_values() -> None:
    from affectlab.reporting.document import Strong
    from affectlab.reporting.gan import VA_COLUMNS, _bold_table

    rows = [("lr 1e-4 / ur 2", {"ccc_valence": {"value": 0.7, "iteration": 3000}, "mse_valence": {"value": 0.05, "iteration": 1000},
                                "real_pct": {"value": 0.9, "iteration": 0}}),
            ("lr 1e-5 / ur 5", {"ccc_valence": {"value": 0.8, "iteration": 12000}, "mse_valence": {"value": 0.07, "iteration": 2000},
                                "real_pct": {"value": 0.95, "iteration": 500}}),
            ("supervised only (no generator), lr 1e-4", {"ccc_valence": {"value": 0.75, "iteration": 1000},
                                                         "mse_valence": {"value": 0.06, "iteration": 1000},
                                                         "real_pct": {"value": 1.0, "iteration": 0}})]
    table = _bold_table(rows, VA_COLUMNS, "caption", lambda label, metric: label.startswith("sup") and metric == "real_pct")
    by_row = {r[0]: r[1:] for r in table.rows}
    assert table.columns == ["run", "CCC V", "CCC A", "MSE V", "MSE A", "% real"]
    assert by_row["lr 1e-5 / ur 5"][0] == Strong("0.800 (12)")  # max CCC
    assert by_row["lr 1e-4 / ur 2"][2] == Strong("0.050 (1)")  # min MSE
    assert by_row["lr 1e-4 / ur 2"][0] == "0.700 (3)" and by_row["lr 1e-4 / ur 2"][1] == "-"  # no arousal scores
    assert by_row["supervised only (no generator), lr 1e-4"][4] == "-"  # never saw a fake: no % real
    assert by_row["lr 1e-5 / ur 5"][4] == Strong("0.950 (0.5)")  # best among the GAN rows
