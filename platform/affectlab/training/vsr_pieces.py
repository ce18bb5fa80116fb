"""The pretrained pieces a lip reading stage starts from: earlier stages' runs, by URI.

A stage names the previous stage's run in ``data.vsr.init``: the run directory that ``affectlab
train --out`` wrote (local path or ``s3://``), or its ``best_model.pt``. From the run's
``config.yaml`` the piece is rebuilt with its own model name and keywords, and its best weights
are loaded. The URIs a stage used are recorded (absolute) in its ``result.json`` under
``pieces``, so the next stage finds the LM through the visual run without being told.
"""

from __future__ import annotations

import io
import json
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from affectlab import storage
from affectlab.errors import ConfigError, DatasetError

__all__ = ["Piece", "load_piece", "resolve_pieces", "run_dir"]

BEST = "best_model.pt"


@dataclass
class Piece:
    """A pretrained stage: its run, experiment config and the model with its best weights."""

    uri: str
    config: Any  # ExperimentConfig
    model: nn.Module


def run_dir(uri: str) -> tuple[str, str]:
    """The run directory and weights file of ``uri`` (a run directory or a ``.pt`` file in one)."""
    uri = storage.absolute(uri)
    if uri.endswith(".pt"):
        return uri.rsplit("/", 1)[0], uri
    return uri, storage.join(uri, BEST)


def _run_config(run: str, key: str) -> Any:
    from affectlab.config import load_yaml
    from affectlab.training.config import parse_experiment

    config_uri = storage.join(run, "config.yaml")
    if not storage.exists(config_uri):
        raise DatasetError(f"{key}={run}: no config.yaml there (not an `affectlab train` output)")
    return parse_experiment(load_yaml(config_uri), source=config_uri).base


def _stage_config(uri: str, task: str, key: str) -> Any:
    """The experiment of the run at ``uri``, which must have trained ``task``.

    Raises:
        DatasetError: No run there.
        ConfigError: The run trained another task (names it and the one expected).
    """
    config = _run_config(run_dir(uri)[0], key)
    if config.data.task != task:
        raise ConfigError(f"{key}={uri}: that run trained data.task {config.data.task!r}; this stage needs a "
                          f"{task!r} run")
    return config


def load_piece(uri: str, *, task: str, key: str = "data.vsr.init") -> Piece:
    """The model of the ``task`` run at ``uri`` (:func:`run_dir`) with its best weights (CPU).

    Raises:
        DatasetError: No run or weights there.
        ConfigError: The run trained another task (names it and the one expected).
    """
    from affectlab.models import build_model

    run, weights = run_dir(uri)
    config = _stage_config(uri, task, key)
    if not storage.exists(weights):
        raise DatasetError(f"{key}={uri}: no weights {weights} (did the run finish?)")
    model = build_model(config.model.name, **config.model.kwargs)
    state = torch.load(io.BytesIO(storage.read_bytes(weights)), map_location="cpu", weights_only=True)
    model.load_state_dict(state)
    return Piece(run, config, model)


def _lm_of(run: str) -> str | None:
    """The LM a stage-2 or stage-3 run used: its recorded pieces, else (a stage-2 run started
    from the LM) its ``data.vsr.init``."""
    result_uri = storage.join(run, "result.json")
    if storage.exists(result_uri):
        lm = (json.loads(storage.read_text(result_uri)).get("pieces") or {}).get("lm")
        if lm:
            return lm
    init = _run_config(run, "data.vsr.init").data.vsr.init
    if init is None or _run_config(run_dir(init)[0], "data.vsr.init").data.task != "vsr_lm":
        return None
    return run_dir(init)[0]


def resolve_pieces(config: Any) -> dict[str, str]:
    """Absolute URIs of the runs a stage starts from: ``{"lm": ...}`` for stage 2 started from the
    LM; ``{"visual": ..., "lm": ...}`` for stage 3, and for stage 2 going on from an earlier
    stage-2 run (a curriculum step); ``{"lipreader": ..., "lm": ...}`` for stage 3 going on from
    an earlier stage-3 run; {} for stage 1. The LM is the init run's own (stage 3: unless
    ``data.vsr.lm`` names one).

    Raises:
        DatasetError: A named run does not exist.
        ConfigError: A named run trained another stage, or no LM is known.
    """
    s, task = config.data.vsr, config.data.task
    if task not in ("vsr_visual", "vsr"):
        return {}
    init = run_dir(s.init)[0]
    init_task = _run_config(init, "data.vsr.init").data.task
    previous, name = ("vsr_lm", "stage 2") if task == "vsr_visual" else ("vsr_visual", "stage 3")
    if init_task not in (previous, task):
        raise ConfigError(f"data.vsr.init={s.init}: that run trained data.task {init_task!r}; {name} needs a "
                          f"{previous!r} run (or a {task!r} run to go on from, e.g. a word-curriculum step)")
    if init_task == "vsr_lm":
        return {"lm": init}
    # stage 3 from stage 2, or a curriculum step going on from a run of its own stage
    pieces = {"visual" if init_task == "vsr_visual" else "lipreader": init}
    lm = _lm_of(init)
    if s.lm is not None and task == "vsr":
        _stage_config(s.lm, "vsr_lm", "data.vsr.lm")
        lm = run_dir(s.lm)[0]
    if lm is None:
        raise ConfigError(f"data.vsr.init={s.init}: that run names no LM; set data.vsr.lm")
    return {**pieces, "lm": lm}


def check_sizes(piece: Piece, model_cfg: Any, fields: tuple[str, ...], what: str) -> None:
    """Raise when the piece's model sizes differ from this stage's on ``fields``.

    Raises:
        ConfigError: Names the run, the fields and both values.
    """
    from affectlab.models.vsr import vsr_config

    theirs = vsr_config(**piece.config.model.kwargs)
    diff = [f"{f}: {getattr(theirs, f)!r} there, {getattr(model_cfg, f)!r} here" for f in fields
            if getattr(theirs, f) != getattr(model_cfg, f)]
    if diff:
        raise ConfigError(f"the {what} run {piece.uri} was trained with other model.kwargs sizes: "
                          f"{'; '.join(diff)}; every stage must use the same sizes")
