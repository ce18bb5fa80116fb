"""``affectlab demo vae``: seed 004's VAE over body motion with its PAD regressors, end to end.

1. synthesise two ``lma`` corpora (``affectlab synth lma``): PAD planted in the 27 features
   through group rules, and the shuffled control (each clip keeps another clip's PAD);
2. the latent-size sweep 1 ... 8 on the planted corpus as a Ray Tune grid (one trial per size,
   the repository's ``search_spaces/vae_lma.yaml``);
3. the shuffled control at latent 3 (where the planted sweep levels off);
4. a report: per run the 27-feature table, the regressor and round-trip MAEs and the feature x
   PAD correlations (all recomputed from the stored predictions), and the sweep's MAE against
   latent size.

``affectlab preprocess`` keeps only the PAD labels of an ``lma`` card, so the task reads the
features from the card (``data.features`` names it). Outputs::

    <out>/corpus/{planted,shuffled}/  <out>/runs/{sweep,shuffled}/  <out>/runs/report/index.html
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from affectlab.demo import MARKER, DemoResult, StepClock, prepare_out, search_space_file

__all__ = ["VaeDemoSettings", "run_vae_demo"]

SPACE_FILE = Path(__file__).resolve().parents[2] / "search_spaces" / "vae_lma.yaml"


@dataclass(frozen=True)
class VaeDemoSettings:
    """Sizes of the VAE demo (the defaults finish in a few minutes on 2 CPUs)."""

    subjects: int = 10
    items: int = 60
    seed: int = 0
    epochs: int = 60
    num_cpus: int | None = None


def _overrides(card: str, s: VaeDemoSettings) -> list[str]:
    return [f"data.features={card}", f"training.max_epochs={s.epochs}", "scaling.torch_threads=1"]


def run_vae_demo(out: str = "demo-vae", settings: VaeDemoSettings | None = None,
                 echo: Callable[[str], None] = print, space_file: str | None = None) -> DemoResult:
    """Run the four steps into ``out`` (see the module docstring).

    Raises:
        StorageError: ``out`` holds something other than an earlier demo's output, or the
            sweep file is missing.
    """
    from affectlab.data.synth import generate
    from affectlab.reporting import write_report
    from affectlab.runtime import ray_session
    from affectlab.training.run import train
    from affectlab.tuning import load_sweep, run_sweep

    s = settings or VaeDemoSettings()
    out = os.path.abspath(out)
    prepare_out(out, fresh=("runs",))
    space_file = search_space_file(space_file, SPACE_FILE.name)
    cards = {r: os.path.join(out, "corpus", r, "dataset.yaml") for r in ("planted", "shuffled")}
    sweep = load_sweep(space_file, _overrides(cards["planted"], s))  # config problems fail before any work
    control = load_sweep(space_file, [*_overrides(cards["shuffled"], s), "model.kwargs.latent_dim=3",
                                      "name=vae_lma_shuffled"]).base
    result = DemoResult(out=out, report="")
    clock = StepClock(result, echo)
    with ray_session(num_cpus=s.num_cpus):
        with clock(f"1/4 synthesise lma corpora, planted and shuffled ({s.subjects} subjects x {s.items} clips)"):
            for relation in cards:
                generate("lma", os.path.dirname(cards[relation]), subjects=s.subjects, items=s.items, seed=s.seed,
                         relation=relation, overwrite=True)
        with clock("2/4 latent-size sweep 1..8 on the planted corpus (Ray Tune grid)"):
            run_sweep(sweep, out=os.path.join(out, "runs", "sweep"), echo=echo)
        with clock("3/4 shuffled control at latent 3"):
            shuffled = train(control, out=os.path.join(out, "runs", "shuffled"))
            echo(json.dumps({k: round(v, 4) for k, v in shuffled.test.items()}))
    with clock("4/4 report"):
        result.report = write_report(os.path.join(out, "runs"))
    (Path(out) / MARKER).write_text(json.dumps({"demo": "vae", "settings": s.__dict__, "seconds": result.seconds},
                                               indent=2))
    echo(f"demo finished in {sum(result.seconds.values()):.0f} s; report: {result.report}")
    return result
