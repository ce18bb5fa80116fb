"""``affectlab demo gan``: seed 002's categorical GAN (AU model), end to end on synthetic faces.

1. synthesise a ``faces`` corpus (``affectlab synth faces``): rendered identities whose face
   geometry follows planted AU activations;
2. preprocess it on Ray Data: dlib landmarks and 28 x 28 RGB face crops (the seed's input);
3. the update-rate grid of ``search_spaces/gan_au.yaml`` as one Ray Tune grid search (one
   in-process trial per update rate, side by side), shrunk for 2 CPUs: a short iteration budget
   and a higher learning rate than the seed's 1 000 000 iterations at 1e-4 / 1e-5;
4. the same discriminator trained supervised only (no generator): the reference row;
5. every checkpoint of every run scored by ``affectlab evaluate``'s Ray tasks, then a report with
   the seed's Tables 3.15 / 3.16 (best score per column over the checkpoints, its iteration in
   thousands, the best of each column in bold), D / G loss curves and generated samples.

Outputs::

    <out>/corpus/  <out>/prep/  <out>/runs/{grid,supervised}/  <out>/runs/report/index.html
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from affectlab.demo import MARKER, DemoResult, StepClock, prepare_out, search_space_file

__all__ = ["GanDemoSettings", "run_gan_demo"]

SPACE_FILE = Path(__file__).resolve().parents[2] / "search_spaces" / "gan_au.yaml"


@dataclass(frozen=True)
class GanDemoSettings:
    """Sizes of the GAN demo (the defaults finish in well under 10 minutes on 2 CPUs)."""

    subjects: int = 8
    items: int = 6
    frames: int = 50
    seed: int = 0
    iterations: int = 400
    eval_every: int = 100
    lr: float = 1e-3
    update_rates: tuple[int, ...] = (1, 3)
    num_cpus: int | None = None


def _overrides(prep: str, s: GanDemoSettings) -> list[str]:
    return [f"data.features={prep}", f"training.max_iterations={s.iterations}", f"training.eval_every={s.eval_every}",
            "scaling.torch_threads=1", "data.gan.n_draws=10"]


def run_gan_demo(out: str = "demo-gan", settings: GanDemoSettings | None = None,
                 echo: Callable[[str], None] = print, space_file: str | None = None) -> DemoResult:
    """Run the five steps into ``out`` (see the module docstring).

    Raises:
        StorageError: ``out`` holds something other than an earlier demo's output, or the
            sweep file is missing.
    """
    from affectlab.config import load_yaml
    from affectlab.data.synth import generate
    from affectlab.preprocess import preprocess
    from affectlab.reporting import write_report
    from affectlab.runtime import ray_session
    from affectlab.training.gan_evaluate import evaluate_checkpoints
    from affectlab.training.run import train
    from affectlab.tuning import parse_sweep, run_sweep

    s = settings or GanDemoSettings()
    out = os.path.abspath(out)
    prepare_out(out, fresh=("runs", "prep"))
    space_file = search_space_file(space_file, SPACE_FILE.name)
    prep = os.path.join(out, "prep")
    doc = load_yaml(space_file)
    doc["space"] = {"training.lr": {"grid": [s.lr]}, "training.update_rate": {"grid": list(s.update_rates)}}
    grid = parse_sweep(doc, source=space_file, overrides=_overrides(prep, s))  # config problems fail first
    reference = parse_sweep(doc, source=space_file, overrides=[
        *_overrides(prep, s), "data.gan.supervised_only=true", "name=gan_au_supervised",
        f"training.lr={s.lr}"]).base
    result = DemoResult(out=out, report="")
    clock = StepClock(result, echo)
    with ray_session(num_cpus=s.num_cpus):
        with clock(f"1/5 synthesise rendered faces with planted AUs ({s.subjects} identities x {s.items} videos)"):
            card = generate("faces", os.path.join(out, "corpus"), subjects=s.subjects, items=s.items, seed=s.seed,
                            size=64, frames=s.frames, overwrite=True)
        with clock("2/5 preprocess on Ray Data: dlib landmarks and 28 px RGB face crops"):
            preprocess(card, prep, video="landmarks,face", face_sizes=[28], grayscale=False, progress=False)
        with clock(f"3/5 the update-rate grid {list(s.update_rates)} at lr {s.lr:g} (Ray Tune grid, "
                   f"{s.iterations} iterations, a checkpoint every {s.eval_every})"):
            run_sweep(grid, out=os.path.join(out, "runs", "grid"), echo=echo)
        with clock("4/5 the supervised-only discriminator (no generator), the reference row"):
            train(reference, out=os.path.join(out, "runs", "supervised"))
        with clock("5/5 score every checkpoint (affectlab evaluate, Ray tasks) and write the report"):
            trials = sorted(p.parent for p in Path(out, "runs", "grid", "trials").glob("*/result.json"))
            for run in [*trials, Path(out, "runs", "supervised")]:
                frame = evaluate_checkpoints(str(run), checkpoints="all", split="test")
                echo(f"{run.name}: best mean AU F1 {frame['au_mean_f1'].max():.3f} over {len(frame)} checkpoints")
            result.report = write_report(os.path.join(out, "runs"))
    (Path(out) / MARKER).write_text(json.dumps({"demo": "gan", "settings": {**s.__dict__,
                                                                            "update_rates": list(s.update_rates)},
                                                "seconds": result.seconds}, indent=2))
    echo(f"demo finished in {sum(result.seconds.values()):.0f} s; report: {result.report}")
    return result
