"""``affectlab demo lipreading``: seed 001's piece-wise lip reading, end to end on a planted corpus.

1. synthesise a ``visemes`` corpus (``affectlab synth visemes``): sentences spoken as mouth
   shapes on a rendered talking face, 12 viseme classes shared by several letters, per-speaker
   face geometry, lighting and speaking rate; held-out speakers from the card's split;
2. preprocess it on Ray Data: dlib landmarks and 96 px grey mouth ROIs;
3. ``search_spaces/vsr.yaml`` as one pipeline (:mod:`affectlab.training.vsr_pipeline`), shrunk
   for 2 CPUs (the ``tiny`` model, few epochs): stage 1 char LM on the training transcripts,
   stage 2 visual pretraining through the LM's frozen softmax, stage 3 integration, each on
   Ray Train and naming the previous stage's run;
4. greedy, beam and beam + LM decoding of the held-out speakers (WER / CER) and the report with
   the seed's comparison table, its 12 transcripts and the per-stage loss curves.

Outputs::

    <out>/corpus/  <out>/prep/  <out>/runs/{lm,visual,lipreader}/  <out>/runs/report/index.html
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from affectlab.demo import MARKER, DemoResult, StepClock, prepare_out, search_space_file

__all__ = ["VsrDemoSettings", "demo_overrides", "run_vsr_demo"]

SPACE_FILE = "vsr.yaml"


@dataclass(frozen=True)
class VsrDemoSettings:
    """Sizes of the lip reading demo (the defaults aim at under 10 minutes on 2 CPUs)."""

    subjects: int = 6
    items: int = 6
    seed: int = 0
    size: int = 128
    lm_epochs: int = 30
    visual_epochs: int = 4
    lipreader_epochs: int = 8
    beam_width: int = 4
    sentences: str | None = None
    runner: str = "ray_train"
    num_cpus: int | None = None


def demo_overrides(s: VsrDemoSettings) -> list[str]:
    """The pipeline overrides that shrink ``search_spaces/vsr.yaml`` for the demo's corpus and CPUs."""
    return [
        f"scaling.runner={s.runner}", "scaling.torch_threads=1", "training.batch_size=8",
        f"lm:training.max_epochs={s.lm_epochs}", f"lm:training.patience={s.lm_epochs}",
        f"visual:training.max_epochs={s.visual_epochs}", "visual:data.vsr.stage2_loss=ctc",
        f"lipreader:training.max_epochs={s.lipreader_epochs}", f"lipreader:training.patience={s.lipreader_epochs}",
        f"lipreader:data.vsr.decoding.beam_width={s.beam_width}",
    ]


def run_vsr_demo(out: str = "demo-lipreading", settings: VsrDemoSettings | None = None,
                 echo: Callable[[str], None] = print, space_file: str | None = None) -> DemoResult:
    """Run the four steps into ``out`` (see the module docstring).

    Raises:
        StorageError: ``out`` holds something other than an earlier demo's output, or the
            pipeline file is missing.
        ConfigError: A bad setting (checked before any work starts).
    """
    from affectlab.data.synth import generate
    from affectlab.preprocess import preprocess
    from affectlab.runtime import ray_session
    from affectlab.training.vsr_pipeline import load_pipeline, run_vsr_pipeline

    s = settings or VsrDemoSettings()
    out = os.path.abspath(out)
    prepare_out(out, fresh=("runs", "prep"))
    prep = os.path.join(out, "prep")
    pipeline = load_pipeline(search_space_file(space_file, SPACE_FILE),
                             [f"data.features={prep}", *demo_overrides(s)])  # config problems fail first
    result = DemoResult(out=out, report="")
    clock = StepClock(result, echo)
    options = {"size": s.size, **({"sentences": s.sentences} if s.sentences else {})}
    with ray_session(num_cpus=s.num_cpus):
        with clock(f"1/3 synthesise sentences as mouth shapes ({s.subjects} speakers x {s.items} clips)"):
            card = generate("visemes", os.path.join(out, "corpus"), subjects=s.subjects, items=s.items, seed=s.seed,
                            overwrite=True, **options)
        with clock("2/3 preprocess on Ray Data: dlib landmarks and 96 px mouth ROIs"):
            preprocess(card, prep, audio="", video="landmarks,mouth", progress=False)
        with clock(f"3/3 the three stages of {SPACE_FILE} (tiny; LM {s.lm_epochs}, visual {s.visual_epochs}, "
                   f"integration {s.lipreader_epochs} epochs; {s.runner}), then test decoding and the report"):
            done = run_vsr_pipeline(pipeline, os.path.join(out, "runs"), echo=echo)
            result.report = done.report or ""
    (Path(out) / MARKER).write_text(json.dumps({"demo": "lipreading", "settings": s.__dict__,
                                                "seconds": result.seconds, "summary": done.summary}, indent=2))
    echo(f"demo finished in {sum(result.seconds.values()):.0f} s; report: {result.report}")
    return result
