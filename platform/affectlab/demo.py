"""``affectlab demo``: the whole platform end to end on a small synthetic corpus.

1. synthesise a speech corpus with AU labels planted on its prosody (``affectlab synth``);
2. preprocess it with Ray Data: eGeMAPS LLDs and aligned AU labels (``affectlab preprocess``);
3. leave-one-speaker-out cross-validation of one seed-003 architecture (``affectlab cv``);
4. a small Optuna (TPE) + ASHA sweep over the 003 space (``affectlab sweep``);
5. a report with tables and plots of both (``affectlab report``).

Everything runs on one embedded local Ray (or the cluster of ``RAY_ADDRESS``). The experiment
is the repository's ``search_spaces/au_003.yaml``, shrunk for a laptop: fewer epochs, fewer
trials, a smaller ASHA budget. Outputs::

    <out>/corpus/  <out>/preprocessed/  <out>/cv/  <out>/sweep/  <out>/report/index.html
"""

from __future__ import annotations

import json
import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from affectlab.errors import StorageError

__all__ = ["DemoResult", "DemoSettings", "StepClock", "prepare_out", "run_demo"]

MARKER = "demo.json"
SPACE_FILE = Path(__file__).resolve().parents[2] / "search_spaces" / "au_003.yaml"


@dataclass(frozen=True)
class DemoSettings:
    """Sizes of the demo (the defaults finish in a few minutes on 2 CPUs)."""

    subjects: int = 5
    items: int = 8
    seed: int = 0
    au: str = "AU17"
    kind: str = "occurrence"
    arch: str = "stacked_intraatt"
    lr: float = 5e-3
    cv_epochs: int = 10
    sweep_samples: int = 8
    sweep_epochs: int = 10
    num_cpus: int | None = None


@dataclass
class DemoResult:
    """Where the demo wrote its outputs and how long each step took."""

    out: str
    report: str
    seconds: dict[str, float] = field(default_factory=dict)


def search_space_file(path: str | None, name: str) -> str:
    """``path``, or the repository's ``search_spaces/<name>``; a demo's experiment/sweep file.

    Raises:
        StorageError: The file does not exist (the demos read it from a checkout).
    """
    path = path or str(Path(__file__).resolve().parents[2] / "search_spaces" / name)
    if not os.path.exists(path):
        raise StorageError(f"{path} not found: run the demo from a checkout of the repository")
    return path


def prepare_out(out: str, fresh: tuple[str, ...] = ("cv", "sweep", "report")) -> None:
    """Create ``out``; re-running in an earlier demo's directory removes its ``fresh`` sub-directories
    so those steps start afresh.

    Raises:
        StorageError: ``out`` holds something other than an earlier demo's output.
    """
    path = Path(out)
    if path.exists() and any(path.iterdir()) and not (path / MARKER).exists():
        raise StorageError(f"{out} exists and is not an earlier demo output; choose another --out")
    path.mkdir(parents=True, exist_ok=True)
    for sub in fresh:
        shutil.rmtree(path / sub, ignore_errors=True)


def _base_overrides(out: str, s: DemoSettings, epochs: int) -> list[str]:
    return [
        f"data.features={os.path.join(out, 'preprocessed')}",
        f"data.target.au={s.au}",
        f"data.target.kind={s.kind}",
        f"model.name={s.arch}",
        "model.kwargs={hidden: 16, dropout: 0.1}",
        f"training.lr={s.lr}",
        f"training.max_epochs={epochs}",
        "training.patience=3",
        "training.seed=0",
        "scaling.runner=in_process",
        "scaling.torch_threads=1",
    ]


def run_demo(out: str = "demo-out", settings: DemoSettings | None = None,
             echo: Callable[[str], None] = print, space_file: str | None = None) -> DemoResult:
    """Run the five demo steps into ``out`` (see the module docstring).

    Returns:
        A :class:`DemoResult` with the report's path and each step's seconds.

    Raises:
        StorageError: ``out`` holds something other than an earlier demo's output.
    """
    from affectlab.data.synth import generate
    from affectlab.preprocess import preprocess
    from affectlab.reporting import write_report
    from affectlab.runtime import ray_session
    from affectlab.training.cv import run_cv
    from affectlab.tuning import load_sweep, run_sweep

    s = settings or DemoSettings()
    out = os.path.abspath(out)
    prepare_out(out)
    space_file = search_space_file(space_file, SPACE_FILE.name)
    result = DemoResult(out=out, report="")
    clock = StepClock(result, echo)
    cv_base = load_sweep(space_file, _base_overrides(out, s, s.cv_epochs)).base  # fail early on config problems
    sweep = load_sweep(space_file, [*_base_overrides(out, s, s.sweep_epochs), f"tune.asha.max_t={s.sweep_epochs}",
                                    "tune.asha.grace_period=2", "tune.startup_trials=3"])
    with ray_session(num_cpus=s.num_cpus):
        with clock("1/5 synthesise a speech corpus with planted AUs"):
            card = generate("speech-au", os.path.join(out, "corpus"), subjects=s.subjects, items=s.items,
                            seed=s.seed, overwrite=True)
        with clock("2/5 preprocess with Ray Data (eGeMAPS LLDs + aligned AU labels)"):
            pre = preprocess(card, os.path.join(out, "preprocessed"), audio="egemaps", progress=False, echo=echo)
            if pre.n_failed:
                raise StorageError(f"preprocessing failed for {pre.n_failed} item(s); see {out}/preprocessed/errors/")
        with clock(f"3/5 leave-one-speaker-out CV of {s.arch} ({s.subjects} folds)"):
            cv = run_cv(cv_base, out=out, folds="loso")
            echo(json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in cv.timing.items()}))
        with clock(f"4/5 Optuna TPE + ASHA sweep ({s.sweep_samples} trials)"):
            run_sweep(sweep, out=os.path.join(out, "sweep"), samples=s.sweep_samples, echo=echo)
    with clock("5/5 report"):
        result.report = write_report(out)
    (Path(out) / MARKER).write_text(json.dumps({"settings": s.__dict__, "seconds": result.seconds}, indent=2))
    total = sum(result.seconds.values())
    echo(f"demo finished in {total:.0f} s; report: {result.report}")
    return result


class StepClock:
    """Times each step and prints its start and duration."""

    def __init__(self, result: DemoResult, echo: Callable[[str], None]) -> None:
        self.result, self.echo = result, echo

    def __call__(self, title: str) -> StepClock:
        self.title = title
        return self

    def __enter__(self) -> None:
        self.echo(f"== {self.title}")
        self.started = time.perf_counter()

    def __exit__(self, *exc: object) -> None:
        seconds = time.perf_counter() - self.started
        self.result.seconds[self.title] = round(seconds, 1)
        if exc[0] is None:
            self.echo(f"   done in {seconds:.1f} s")
