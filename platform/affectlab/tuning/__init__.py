"""Sweeps: search-space files, Ray Tune running an Optuna study (TPE + ASHA pruner), resumable from its journal.

>>> from affectlab.tuning import load_sweep, run_sweep
>>> sweep = load_sweep("search_spaces/au_003.yaml", ["data.features=out/demo"])
>>> summary = run_sweep(sweep, out="out/sweep")        # inside affectlab.runtime.ray_session()
"""

from __future__ import annotations

from affectlab.tuning.space import AshaSettings, Dimension, Sweep, TuneSettings, load_sweep, parse_sweep, trial_config
from affectlab.tuning.sweep import SweepSummary, run_sweep

__all__ = [
    "AshaSettings",
    "Dimension",
    "Sweep",
    "SweepSummary",
    "TuneSettings",
    "load_sweep",
    "parse_sweep",
    "run_sweep",
    "trial_config",
]
