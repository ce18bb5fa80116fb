"""affectlab: a Ray platform for affective-computing research.

Preprocess audio and video corpora with Ray Data, train the seed models with Ray Train and
sweep them with Ray Tune + Optuna. Import the submodules you need; this top level stays light so
that ``import affectlab`` never starts Ray or loads torch.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__"]
