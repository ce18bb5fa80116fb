"""Cross-validation: one training per held-out subject x target (x architecture x feature set).

:func:`run_cv` runs the grid as parallel Ray Tune trials (a ``grid_search`` over fold, target,
architecture and feature set; one CPU per trial; the in-process trainer of
:func:`affectlab.training.run.train`, so no worker start-up per training). Each fold holds out
one subject for testing (LOSO); early stopping validates on a training subject (or a fraction of
training recordings), never on the test subject: :func:`check_fold` raises
:class:`~affectlab.training.splits.SubjectLeakageError` otherwise. The corpus of each feature set
is read once on the driver and shared with the trials through the object store.

Validation subjects are chosen with ``data.split_seed`` (not ``training.seed``) among the
training subjects whose target labels hold two classes whenever there are enough of them
(:func:`~affectlab.training.splits.plan_split`). Each fold row records ``test_classes`` and
``val_classes``: how many classes the test subject's and the validation data's labels hold, so
the tables can flag single-class folds (where UAR is one class's recall; see
:mod:`affectlab.training.tables` for how the means treat them).

Outputs under ``<out>/cv/``: ``folds.parquet`` (one row per training: test UAR, F1, epochs...),
``runs/<trial>/`` (each training's outputs), the tables of :mod:`affectlab.training.tables`
(``summary.parquet``, ``table1.*``, ``table2.*``) and ``timing.json`` (grid wall time vs the
sum of the trainings' times). With ``tracking``, the finished grid is logged to MLflow: a parent
run (base config, tables) with one nested run per training (:func:`affectlab.tracking.log_cv`).
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from affectlab import storage
from affectlab.errors import ConfigError
from affectlab.tracking import Tracking, log_cv, open_tracker
from affectlab.training.config import KINDS, ExperimentConfig, with_updates
from affectlab.training.corpus import Corpus, load_corpus, target_column
from affectlab.training.splits import (
    CLASS_TARGET_TASKS,
    Fold,
    Split,
    SubjectLeakageError,
    check_disjoint,
    classes_present,
    loso_folds,
    plan_split,
)

__all__ = ["CVResult", "TuneMetrics", "check_fold", "cv_configs", "fit_grid", "run_cv", "split_classes", "write_rows_and_timing"]

FOLD_SCHEMES = ("loso",)


@dataclass(frozen=True)
class CVResult:
    """Per-training rows, the aggregated tables' location and the timing."""

    rows: list[dict[str, Any]]
    out: str
    timing: dict[str, float]


def check_fold(fold: Fold, split: Split) -> None:
    """Raise unless the training's split tests exactly the fold's subjects and shares none.

    Raises:
        SubjectLeakageError: The test subject is in train or validation, or the split's test
            subjects differ from the fold's.
    """
    check_disjoint(split)
    if set(split.test) != set(fold.test):
        raise SubjectLeakageError(f"fold {fold.name}: split tests {list(split.test)}, expected {list(fold.test)}")
    leaked = set(fold.test) & (set(split.train) | set(split.val))
    if leaked:
        raise SubjectLeakageError(f"fold {fold.name}: test subject(s) {sorted(leaked)} also in train/validation")


def _arch_kwargs(base: ExperimentConfig, arch: str) -> dict[str, Any]:
    """The base model keywords that ``arch`` accepts (others belong to another architecture)."""
    from affectlab.models import model_options

    options = model_options(arch)
    return {k: v for k, v in base.model.kwargs.items() if k in options}


def cv_configs(base: ExperimentConfig, folds: Sequence[Fold], *, aus: Sequence[str], kinds: Sequence[str],
               archs: Sequence[str], feature_sets: Sequence[str]) -> list[tuple[dict[str, Any], ExperimentConfig]]:
    """Every (grid point, config) of the CV grid, validated up front (bad values fail before Ray).

    Raises:
        ConfigError: An unknown kind or architecture, or a config that does not validate.
    """
    bad = [k for k in kinds if k not in KINDS]
    if bad:
        raise ConfigError(f"--kinds: unknown {bad}; choose from {', '.join(KINDS)}")
    out = []
    for fs in feature_sets:
        for arch in archs:
            for au in aus:
                for kind in kinds:
                    for fold in folds:
                        point = {"fold": fold.name, "test": list(fold.test), "au": au, "kind": kind, "arch": arch, "feature_set": fs}
                        cfg = with_updates(base, {
                            "name": f"{fold.name}_{au}_{kind}_{arch}_{fs}",
                            "data.test_subjects": list(fold.test), "data.target.au": au, "data.target.kind": kind,
                            "data.feature_set": fs, "model.name": arch, "model.kwargs": _arch_kwargs(base, arch),
                            "scaling.runner": "in_process", "scaling.num_workers": 1, "scaling.torch_threads": 1,
                        })
                        out.append((point, cfg))
    return out


class TuneMetrics:
    """Reporter for CV trials (AU and emotion): per-epoch metrics to Tune, no checkpoints (many small trainings)."""

    wants_checkpoints = False

    def __call__(self, metrics: dict[str, Any], checkpoint_dir: str | None) -> None:
        from ray import tune

        tune.report(dict(metrics))


def _trial(params: dict[str, Any], *, configs: dict[str, dict], corpora: dict[str, Corpus], out: str) -> None:
    """One CV training (a Tune function trainable)."""
    from affectlab.training.run import train

    key = params["key"]
    point, cfg_json = configs[key]["point"], configs[key]["config"]
    config = ExperimentConfig.model_validate(cfg_json)
    corpus = corpora[point["feature_set"]]
    fold = Fold(point["fold"], tuple(point["test"]))
    column = target_column(corpus, config.data.task, config.data.target.au, config.data.target.kind)
    planned = plan_split(config.data, corpus.sample_ids, corpus.subjects, corpus.labels[column])
    check_fold(fold, planned)  # before any training
    result = train(config, out=storage.join(out, "cv", "runs", config.name), reporter=TuneMetrics(), corpus=corpus)
    check_fold(fold, result.split)  # and on the split the training actually used


def split_classes(corpus: Corpus, column: str, split: dict[str, Sequence[str]]) -> tuple[int, int]:
    """How many classes the test part and the validation part of ``split`` hold in ``column``.

    ``split`` is a result's ``split`` entry (``test``, ``val`` subjects and ``val_samples``
    recording ids); only the label arrays are read.
    """
    test, val = set(split.get("test", ())), set(split.get("val", ()))
    val_samples = set(split.get("val_samples", ()))
    labels = corpus.labels[column]
    test_y = [y for y, s in zip(labels, corpus.subjects, strict=True) if s in test]
    val_y = [y for y, s, sid in zip(labels, corpus.subjects, corpus.sample_ids, strict=True) if s in val or sid in val_samples]
    return len(classes_present(test_y)), len(classes_present(val_y))


def _rows(points: list[tuple[dict[str, Any], str]], out: str, corpora: dict[str, Corpus], task: str) -> list[dict[str, Any]]:
    rows = []
    for point, name in points:
        summary = json.loads(storage.read_text(storage.join(out, "cv", "runs", name, "result.json")))
        test_classes: int | None = None
        val_classes: int | None = None
        if task in CLASS_TARGET_TASKS:
            corpus = corpora[point["feature_set"]]
            column = target_column(corpus, task, point["au"], point["kind"])
            test_classes, val_classes = split_classes(corpus, column, summary["split"])
        rows.append({
            "fold": point["fold"], "test_subject": ",".join(point["test"]), "au": point["au"], "kind": point["kind"],
            "arch": point["arch"], "feature_set": point["feature_set"],
            **{k: summary["test"].get(f"test_{k}") for k in ("uar", "f1", "accuracy", "loss")},
            "val_uar": summary["val"].get("val_uar"), "best_epoch": summary["best_epoch"], "epochs": summary["epochs"],
            "wall_s": summary["wall_s"], "val_subjects": ",".join(summary["split"]["val"]),
            # classes present in the test subject's / validation data's labels (< 2: UAR is one class's recall)
            "test_classes": test_classes, "val_classes": val_classes,
            "run": name,  # <out>/cv/runs/<run>/: config, history, result, best model
        })
    return rows


def run_cv(base: ExperimentConfig, *, out: str, folds: str = "loso", aus: Sequence[str] | None = None,
           kinds: Sequence[str] | None = None, archs: Sequence[str] | None = None,
           feature_sets: Sequence[str] | None = None, max_concurrent: int | None = None,
           tracking: Tracking | None = None) -> CVResult:
    """Run the CV grid as parallel Tune trials and write the tables (see module docstring).

    Args:
        base: The experiment's base config (its target, model and feature set are the defaults).
        out: Output directory; results go under ``<out>/cv/``.
        folds: Fold scheme (``loso``).
        aus, kinds, archs, feature_sets: Grid axes (default: the base config's single value).
        max_concurrent: Trials at once (default: the cluster's CPUs).
        tracking: Log the grid to MLflow when it ends (None: no tracking); the store is opened
            before any training.

    Returns:
        The per-training rows, the output location and the timing.

    Raises:
        ConfigError: Unknown fold scheme, kinds or architectures; a tracking store that cannot be used.
        DatasetError: Missing features or label columns, or fewer than 3 subjects.
        SubjectLeakageError: A training's split shares a subject with its test fold.
    """
    from ray import tune

    from affectlab.training.tables import write_tables

    if folds not in FOLD_SCHEMES:
        raise ConfigError(f"--folds {folds!r}: unknown fold scheme; known: {', '.join(FOLD_SCHEMES)}")
    if base.data.task == "emotion":
        from affectlab.training.emotion_cv import run_emotion_cv

        unused = {"aus": aus, "kinds": kinds, "archs": archs, "feature_sets": feature_sets}
        given = [f"--{k.replace('_', '-')}" for k, v in unused.items() if v]
        if given:
            raise ConfigError(f"{', '.join(given)}: not axes of an emotion CV (data.task: emotion); its grid is the "
                              "folds alone (set the model and features with --set)")
        return run_emotion_cv(base, out=out, max_concurrent=max_concurrent)
    aus, kinds = list(aus or [base.data.target.au]), list(kinds or [base.data.target.kind])
    archs, feature_sets = list(archs or [base.model.name]), list(feature_sets or [base.data.feature_set])
    corpora = {fs: _load(base, fs) for fs in feature_sets}
    subjects = sorted(set(corpora[feature_sets[0]].subjects))
    for fs, corpus in corpora.items():
        for au in aus:
            for kind in kinds:
                target_column(corpus, base.data.task, au, kind)
    grid = cv_configs(base, loso_folds(subjects), aus=aus, kinds=kinds, archs=archs, feature_sets=feature_sets)
    tracker = open_tracker(tracking) if tracking is not None else None
    configs = {cfg.name: {"point": point, "config": cfg.model_dump(mode="json")} for point, cfg in grid}
    wall = fit_grid(tune.with_parameters(_trial, configs=configs, corpora=corpora, out=out), list(configs),
                    out=out, max_concurrent=max_concurrent)
    rows = _rows([(point, cfg.name) for point, cfg in grid], out, corpora, base.data.task)
    timing = write_rows_and_timing(rows, out, wall, max_concurrent)
    write_tables(rows, storage.join(out, "cv"))
    if tracker is not None:
        log_cv(tracker, base, storage.join(out, "cv"), [cfg.name for _, cfg in grid], wall_s=wall,
               axes={"folds": folds, "aus": aus, "kinds": kinds, "archs": archs, "feature_sets": feature_sets})
    return CVResult(rows, storage.join(out, "cv"), timing)


def fit_grid(trainable: Any, keys: list[str], *, out: str, max_concurrent: int | None) -> float:
    """Run ``trainable`` once per key (``{"key": k}``) as Tune trials of one CPU each under
    ``<out>/cv/tune``; returns the wall time. The first failed trial's error is raised."""
    import ray
    from ray import tune

    from affectlab.runtime import quiet_tune_output

    cpus = int(ray.cluster_resources().get("CPU", 1))
    tuner = tune.Tuner(
        tune.with_resources(trainable, {"cpu": 1}),
        param_space={"key": tune.grid_search(keys)},
        # reuse_actors: a trial process trains many small models (imports and start-up paid once)
        tune_config=tune.TuneConfig(max_concurrent_trials=max_concurrent or cpus, reuse_actors=True),
        run_config=tune.RunConfig(name="cv", storage_path=storage.absolute(storage.join(out, "cv", "tune")), verbose=0,
                                  failure_config=tune.FailureConfig(max_failures=0, fail_fast=True)),
    )
    started = time.perf_counter()
    with quiet_tune_output():
        results = tuner.fit()
    wall = time.perf_counter() - started
    errors = [r.error for r in results if r.error is not None]
    if errors:
        raise errors[0]
    return wall


def write_rows_and_timing(rows: list[dict[str, Any]], out: str, wall: float, max_concurrent: int | None) -> dict[str, float]:
    """Write ``<out>/cv/folds.parquet`` and ``timing.json`` (grid wall time vs the sum of the
    trainings' ``wall_s`` spread over the CPUs); returns the timing."""
    import ray

    storage.write_parquet(pa.Table.from_pylist(rows), storage.join(out, "cv", "folds.parquet"))
    cpus = int(ray.cluster_resources().get("CPU", 1))
    trainings = sum(r["wall_s"] for r in rows)
    ideal = trainings / min(cpus, max_concurrent or cpus)
    timing = {"grid_wall_s": wall, "sum_training_s": trainings, "cpus": cpus, "trainings": len(rows),
              "ideal_wall_s": ideal, "ratio": wall / max(ideal, 1e-9)}
    storage.write_text(storage.join(out, "cv", "timing.json"), json.dumps(timing, indent=2))
    return timing


def _load(base: ExperimentConfig, feature_set: str) -> Corpus:
    corpus = load_corpus(base.data.model_copy(update={"feature_set": feature_set}))
    return corpus.restrict(base.data.subjects) if base.data.subjects is not None else corpus


