"""Seed 001's lip reading as one job: the three stages, the test decoding and the report.

A pipeline file (``search_spaces/vsr.yaml``) names the three stage experiment files and, for a
stage-3 sweep, a ``space`` and a ``tune`` section::

    pipeline:
      features: runs/vsr/prep           # data.features of every stage (mouth ROI preprocessing)
      stages: {lm: vsr_lm.yaml, visual: vsr_visual.yaml, lipreader: vsr_integrate.yaml}
      overrides: {lm: [training.max_epochs=60], visual: [], lipreader: []}   # optional, key=value
      evaluate: test                    # the part decoded at the end (greedy, beam, beam + LM)
      curriculum: {visual: [1], lipreader: [1, 3]}   # optional word curriculum per stage (a list: both)
    space: {...}                        # optional: stage 3 as an Optuna + ASHA sweep (--sweep)
    tune: {...}

:func:`run_vsr_pipeline` trains the stages in order under ``<out>/lm``, ``<out>/visual`` and
``<out>/lipreader``, each naming the previous stage's output in ``data.vsr.init`` (the chaining
a user does by hand with three ``affectlab train`` commands). ``curriculum`` (the word
curriculum of Chung et al., 2017) puts steps before the whole-clip stages 2 and 3: for each K
listed for a stage (a list applies to both), ``<out>/visual-w<K>`` (before ``<out>/visual``) or
``<out>/lipreader-w<K>`` (before ``<out>/lipreader``) trains that stage's file with
``data.vsr.max_words=K`` (every run of K words of each train and val clip, cut at its word
timings), each run going on from the previous one.
With ``sweep`` the third stage is
a sweep into ``<out>/lipreader-sweep`` and its best trial is decoded. A stage whose output
already holds a ``result.json`` is kept (the job can be resubmitted after a failure and goes
on from the first unfinished stage); a stage that was interrupted mid-training is restarted
by ``affectlab train``'s own resume (its Ray Train checkpoints). Stage files are read relative
to the pipeline file. Every stage's config is validated before the first one trains.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from affectlab import storage
from affectlab.errors import ConfigError

__all__ = ["STAGES", "PipelineResult", "VsrPipeline", "load_pipeline", "parse_pipeline", "run_vsr_pipeline",
           "stage_sweep"]

STAGES = ("lm", "visual", "lipreader")
TASKS = {"lm": "vsr_lm", "visual": "vsr_visual", "lipreader": "vsr"}
PARTS = ("test", "val", "train")
_KEYS = ("features", "stages", "overrides", "evaluate", "curriculum")


@dataclass(frozen=True)
class VsrPipeline:
    """A validated pipeline file: the stage files' mappings, per-stage overrides, the evaluated part."""

    source: str
    stage_docs: dict[str, dict[str, Any]]
    stage_sources: dict[str, str]
    overrides: dict[str, list[str]]
    features: str | None = None
    evaluate: str = "test"
    space: dict[str, Any] | None = None
    tune: dict[str, Any] | None = None
    curriculum: dict[str, tuple[int, ...]] = field(default_factory=dict)  # stage (visual, lipreader) -> word counts

    def stage_overrides(self, stage: str, init: str | None) -> list[str]:
        """Overrides of ``stage``: ``data.features``, ``data.vsr.init`` (the previous stage), its own."""
        return [*([f"data.features={self.features}"] if self.features else []),
                *([f"data.vsr.init={init}"] if init else []), *self.overrides[stage]]

    def steps(self) -> list[tuple[str, str, list[str]]]:
        """The runs in order: (output name, stage, extra overrides); the curriculum's steps
        (``<stage>-w<K>``, ``data.vsr.max_words=K``) come before the whole-clip stages 2 and 3."""
        def words(stage: str) -> list[tuple[str, str, list[str]]]:
            return [(f"{stage}-w{k}", stage, [f"data.vsr.max_words={k}"]) for k in self.curriculum.get(stage, ())]

        return [("lm", "lm", []), *words("visual"), ("visual", "visual", []), *words("lipreader"),
                ("lipreader", "lipreader", [])]


@dataclass
class PipelineResult:
    """Where each stage's run is, which stages ran now, the evaluated run and the report."""

    out: str
    runs: dict[str, str] = field(default_factory=dict)
    ran: list[str] = field(default_factory=list)
    evaluated: str | None = None
    summary: dict[str, Any] = field(default_factory=dict)
    report: str | None = None


def _string_list(value: Any, where: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) and "=" in v for v in value):
        raise ConfigError(f"{where}: must be a list of key=value strings, got {value!r}")
    return list(value)


def parse_pipeline(doc: Mapping[str, Any], *, source: str, overrides: Iterable[str] = ()) -> VsrPipeline:
    """Validate a pipeline mapping (module docstring); ``overrides`` are ``STAGE:key=value`` (one
    stage) or ``key=value`` (every stage), applied after the file's own.

    Raises:
        ConfigError: Unknown keys, a missing or unreadable stage file, a stage file whose
            ``data.task`` is not the stage's, a bad override or part; every stage's config is
            validated here (its problems name the stage file).
    """
    from affectlab.config import load_yaml
    from affectlab.training.config import parse_experiment

    unknown = [k for k in doc if k not in ("pipeline", "space", "tune")]
    if unknown or not isinstance(doc.get("pipeline"), Mapping):
        raise ConfigError(f"{source}: expected a `pipeline` section (and optionally `space` / `tune`); "
                          f"{'unknown top-level keys: ' + ', '.join(map(str, unknown)) if unknown else 'no pipeline section'}")
    spec = doc["pipeline"]
    bad = [k for k in spec if k not in _KEYS]
    if bad:
        raise ConfigError(f"{source}: pipeline.{bad[0]}: unknown key; allowed: {', '.join(_KEYS)}")
    stages = spec.get("stages")
    if not isinstance(stages, Mapping) or sorted(stages) != sorted(STAGES):
        raise ConfigError(f"{source}: pipeline.stages must name exactly the stages {', '.join(STAGES)} "
                          f"(an experiment file each), got {stages!r}")
    evaluate = spec.get("evaluate", "test")
    if evaluate not in PARTS:
        raise ConfigError(f"{source}: pipeline.evaluate={evaluate!r}: must be one of {', '.join(PARTS)}")
    features = spec.get("features")
    if features is not None and not isinstance(features, str):
        raise ConfigError(f"{source}: pipeline.features must be a path or URI, got {features!r}")
    curriculum = _curriculum(spec.get("curriculum"), source)
    file_overrides = spec.get("overrides") or {}
    if not isinstance(file_overrides, Mapping) or any(k not in STAGES for k in file_overrides):
        raise ConfigError(f"{source}: pipeline.overrides: a mapping from stage ({', '.join(STAGES)}) to key=value lists")
    per_stage = {s: _string_list(file_overrides.get(s), f"{source}: pipeline.overrides.{s}") for s in STAGES}
    for item in overrides:
        stage, sep, rest = item.partition(":")
        if sep and stage in STAGES:
            per_stage[stage].append(rest)
        elif sep and "=" not in stage:
            raise ConfigError(f"override {item!r}: {stage!r} is not a stage; use one of {', '.join(STAGES)} "
                              "(STAGE:key=value) or key=value for every stage")
        else:
            for s in STAGES:
                per_stage[s].append(item)
    sources = {s: _beside(source, str(stages[s])) for s in STAGES}
    docs = {}
    for stage in STAGES:
        if not storage.exists(sources[stage]):
            raise ConfigError(f"{source}: pipeline.stages.{stage}: {sources[stage]} does not exist")
        docs[stage] = load_yaml(sources[stage])
    pipeline = VsrPipeline(source, docs, sources, per_stage, features, evaluate,
                           doc.get("space"), doc.get("tune"), curriculum)
    init = "<previous stage>"
    for _, stage, extra in pipeline.steps():
        config = parse_experiment(docs[stage], source=sources[stage],
                                  overrides=[*pipeline.stage_overrides(stage, None if stage == "lm" else init),
                                             *extra]).base
        if config.data.task != TASKS[stage]:
            raise ConfigError(f"{sources[stage]}: data.task is {config.data.task!r}; the {stage} stage needs "
                              f"{TASKS[stage]!r}")
    if (pipeline.space is None) != (pipeline.tune is None):
        raise ConfigError(f"{source}: a stage-3 sweep needs both `space` and `tune` sections")
    return pipeline


CURRICULUM_STAGES = ("visual", "lipreader")


def _curriculum(value: Any, source: str) -> dict[str, tuple[int, ...]]:
    """``pipeline.curriculum``: a list of word counts for stages 2 and 3, or a mapping per stage.

    Raises:
        ConfigError: Not a rising list of word counts >= 1, or a mapping key that is not a stage
            with a curriculum (names the valid ones).
    """
    if value is None:
        return {}
    lists = value if isinstance(value, Mapping) else {stage: value for stage in CURRICULUM_STAGES}
    bad = [k for k in lists if k not in CURRICULUM_STAGES]
    if bad:
        raise ConfigError(f"{source}: pipeline.curriculum.{bad[0]}: no such stage with a word curriculum; "
                          f"use {', '.join(CURRICULUM_STAGES)}")
    out = {}
    for stage, counts in lists.items():
        counts = counts or []
        if not isinstance(counts, list) or counts != sorted(set(counts)) or not all(
                isinstance(k, int) and not isinstance(k, bool) and k >= 1 for k in counts):
            where = "pipeline.curriculum" + (f".{stage}" if isinstance(value, Mapping) else "")
            raise ConfigError(f"{source}: {where}={counts!r}: a rising list of word counts >= 1 (e.g. [1, 3]: "
                              "single words, then 3-word runs, then whole clips)")
        out[stage] = tuple(counts)
    return out


def _beside(source: str, path: str) -> str:
    """``path`` as written when absolute or a URI, else relative to the pipeline file's directory."""
    if os.path.isabs(path) or storage.is_remote(path):
        return path
    return storage.join(source.rsplit("/", 1)[0] if "/" in source else ".", path)


def load_pipeline(path: str, overrides: Iterable[str] = ()) -> VsrPipeline:
    """Read and validate a pipeline file (see :func:`parse_pipeline`)."""
    from affectlab.config import load_yaml

    return parse_pipeline(load_yaml(path), source=path, overrides=overrides)


def _finished(run: str) -> bool:
    return storage.exists(storage.join(run, "result.json")) and storage.exists(storage.join(run, "best_model.pt"))


def stage_sweep(pipeline: VsrPipeline, init: str) -> Any:
    """Stage 3 as a sweep: its experiment file's ``base`` with the pipeline's ``space`` and ``tune``."""
    from affectlab.tuning import parse_sweep

    if pipeline.space is None:
        raise ConfigError(f"{pipeline.source}: --sweep needs `space` and `tune` sections for stage 3")
    doc = {"base": pipeline.stage_docs["lipreader"]["base"], "space": pipeline.space, "tune": pipeline.tune}
    return parse_sweep(doc, source=pipeline.source, overrides=pipeline.stage_overrides("lipreader", init))


def run_vsr_pipeline(pipeline: VsrPipeline, out: str, *, sweep: bool = False, report: bool = True,
                     echo: Callable[[str], None] = print) -> PipelineResult:
    """Train the three stages into ``out``, decode the evaluated part, write the report (module docstring).

    Must run inside a Ray session when a stage uses ``scaling.runner: ray_train`` or ``sweep`` is set.

    Raises:
        ConfigError / DatasetError: From the stages (bad configs, missing data).
    """
    import json

    from affectlab.training.config import parse_experiment
    from affectlab.training.run import epoch_progress, train
    from affectlab.training.vsr_evaluate import evaluate_vsr, load_vsr_evaluation

    out = storage.absolute(out)
    result = PipelineResult(out=out)
    previous: str | None = None
    steps = pipeline.steps()
    for number, (name, stage, extra) in enumerate(steps, start=1):
        where = f"stage {number}/{len(steps)} {name}"
        if name == "lipreader" and sweep:
            sweep_out = storage.join(out, "lipreader-sweep")
            spec = stage_sweep(pipeline, previous or "")
            result.runs[stage] = _run_stage_sweep(spec, sweep_out, echo, where)
            result.ran.append(stage)
            break
        run = storage.join(out, name)
        result.runs[name] = run
        if _finished(run):
            echo(f"{where}: kept the finished run in {run} (delete it to train again)")
        else:
            config = parse_experiment(pipeline.stage_docs[stage], source=pipeline.stage_sources[stage],
                                      overrides=[*pipeline.stage_overrides(stage, previous), *extra]).base
            echo(f"{where}: {pipeline.stage_sources[stage]}{' ' + ' '.join(extra) if extra else ''} "
                 f"({config.data.task}, {config.scaling.runner}) -> {run}")
            trained = train(config, out=run, reporter=epoch_progress(echo, where)
                            if config.scaling.runner == "in_process" else None)
            echo(f"{where}: best epoch {trained.best_epoch} of {len(trained.history)}, "
                 + " ".join(f"{k}={v:.4f}" for k, v in trained.val.items() if k in ("val_loss", "val_cer", "val_wer")))
            result.ran.append(name)
        previous = run
    final = result.runs["lipreader"]
    echo(f"evaluate: decoding the {pipeline.evaluate} speakers of {final} (greedy, beam, beam + LM)")
    evaluate_vsr(final, part=pipeline.evaluate, progress=echo)
    evaluation = load_vsr_evaluation(final, pipeline.evaluate)
    result.evaluated, result.summary = final, (evaluation[1]["methods"] if evaluation else {})
    for method, stats in result.summary.items():
        echo(f"  {method:<8} average WER {stats['avg_wer']:.3f}  CER {stats['avg_cer']:.3f}  "
             f"(corpus WER {stats['corpus_wer']:.3f}  CER {stats['corpus_cer']:.3f})")
    storage.write_text(storage.join(out, "pipeline.json"), json.dumps(
        {"source": pipeline.source, "runs": result.runs, "evaluated": final, "part": pipeline.evaluate,
         "summary": result.summary, "sweep": sweep}, indent=2))
    if report:
        from affectlab.reporting import write_report

        result.report = write_report(out)
        echo(f"report: {result.report}")
    return result


def _run_stage_sweep(spec: Any, sweep_out: str, echo: Callable[[str], None], where: str) -> str:
    """Run (or resume) the stage-3 sweep; the best trial's run directory."""
    from affectlab.tuning import run_sweep

    resume = storage.exists(storage.join(sweep_out, "sweep.json"))
    echo(f"{where}: sweep -> {sweep_out}{' (resumed)' if resume else ''}")
    summary = run_sweep(spec, out=sweep_out, resume=resume, echo=echo)
    if summary.best_trial_id is None:
        raise ConfigError(f"{sweep_out}: the stage-3 sweep finished no trial; nothing to evaluate")
    return storage.join(sweep_out, "trials", summary.best_trial_id)
