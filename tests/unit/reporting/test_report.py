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


def write_sweep(root: Path, n: int = 4) -> Path:
    out = root / "sweep"
    out.mkdir(parents=True)
    spec = {"source": "search_spaces/x.yaml", "num_samples": n,
            "space": {"training.lr": {"loguniform": [1e-4, 1e-1]}, "model.name": {"choice": ["a", "b"]}},
            "tune": {"metric": "val_uar", "mode": "max", "seed": 0, "asha": {"grace_period": 1, "reduction_factor": 2}}}
    (out / "sweep.json").write_text(json.dumps(spec))
    rng = np.random.default_rng(0)
    events = []
    for i in range(n):
        tid = f"t{i}"
        events.append({"event": "start", "trial_id": tid, "number": i + 1,
                       "params": {"training.lr": float(10 ** rng.uniform(-4, -1)), "model.name": "ab"[i % 2]}})
        epochs = 4 if i % 2 == 0 else 1
        for e in range(1, epochs + 1):
            events.append({"event": "result", "trial_id": tid, "iteration": e,
                           "metrics": {"val_uar": 0.5 + 0.1 * i * e / 4, "val_loss": 1.0 / e, "epoch": e}})
        events.append({"event": "complete" if epochs == 4 else "stopped", "trial_id": tid})
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
    best_row = next(line for line in md.splitlines() if line.startswith("| val_uar (best epoch)"))
    assert best_row == "| val_uar (best epoch) | 0.7 | trial 3 (t2) |"  # i=2: 0.5 + 0.1 * 2 * 4 / 4
    assert "| 5 | interrupted | 0 |" in md and "stopped early" in md
    pngs = sorted(report.glob("*.png"))
    assert [p.name for p in pngs] == ["sweep1_learning_curves.png", "sweep1_metric_vs_params.png",
                                      "sweep1_parallel_coordinates.png"]
    for png in pngs:
        assert_png(png.read_bytes())
        assert f'src="{png.name}"' in (report / "index.html").read_text()


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
