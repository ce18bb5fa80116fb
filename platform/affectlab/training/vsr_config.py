"""``data.vsr``: the settings of seed 001's lip reading stages, ``data.task: vsr_lm | vsr_visual | vsr``.

Piece-wise training is three ordinary experiments (SEED-NOTES A.3); each names the output of the
previous one in ``data.vsr.init`` (a run directory written by ``affectlab train --out``, local or
``s3://``, or its ``best_model.pt``):

====================  ===================  ===================================  =======================
stage                 ``data.task``        ``model.name``                       ``data.vsr.init``
====================  ===================  ===================================  =======================
1 char LM             ``vsr_lm``           ``vsr_lm``                           none
2 visual pretraining  ``vsr_visual``       ``vsr_visual``                       the stage-1 run
3 integration         ``vsr``              ``vsr_lip_reader``                   the stage-2 run
====================  ===================  ===================================  =======================

Stage 2 copies the LM's softmax layer into its frozen one; stage 3 takes the visual module (and
GRU generator) of stage 2 and the decoder of the LM that stage 2 was initialised from (its own
``data.vsr.init``), unless ``data.vsr.lm`` names another LM run. The LM found this way is also
the external LM of beam search with ``decoding.val_method: beam_lm`` and of the test evaluation
(:mod:`affectlab.training.vsr_evaluate`). Every stage must use the same ``model.kwargs`` sizes
and characters (a mismatch is an error naming both runs).

``data.features`` is an ``affectlab preprocess --video landmarks,mouth`` output; ``data.feature_set``
must be ``mouth_roi`` (column ``mouth``, T x 96 x 96 uint8 per clip) and the clip labels must hold a
``transcript``. The split is by speaker (``split``): the dataset card's named split (``synth
visemes`` names its split ``speakers``), explicit subject lists, or ``null`` for a seeded draw of
``val_fraction`` / ``test_fraction`` of the speakers (``data.split_seed``). The LM (stage 1) reads
the *training* speakers' transcripts only.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Literal

from pydantic import Field, model_validator

from affectlab.config import StrictModel, SubjectParts

if TYPE_CHECKING:
    from affectlab.training.config import ExperimentConfig

__all__ = ["STAGE_MODELS", "VAL_METHODS", "VSR_TASKS", "VsrDecoding", "VsrSettings", "vsr_problems"]

VSR_TASKS = ("vsr_lm", "vsr_visual", "vsr")
STAGE_MODELS = {"vsr_lm": "vsr_lm", "vsr_visual": "vsr_visual", "vsr": "vsr_lip_reader"}
"""``data.task`` -> the model it trains."""
VAL_METHODS = ("greedy", "beam", "beam_lm")
MOUTH_SET, MOUTH_COLUMN = "mouth_roi", "mouth"


class VsrDecoding(StrictModel):
    """How transcripts are decoded for validation (every round) and for the test evaluation."""

    val_method: Literal["greedy", "beam", "beam_lm"] = Field(
        default="greedy", description="decoding of the validation CER / WER of stage 3 (what sweeps optimise): "
                                      "greedy, beam, or beam with the LM (beam_lm)")
    beam_width: int = Field(default=12, ge=1, description="beams per utterance (the seed's 12)")
    lm_weight: float = Field(default=0.5, ge=0, description="weight of the LM log-probability in beam_lm "
                                                            "(0 = no LM; not given by the seed)")
    length_penalty: float = Field(default=0.0, ge=0, description="rank by score / length ** length_penalty "
                                                                 "(0 = off; not given by the seed)")
    extra_steps: int = Field(default=20, ge=0, description="character budget = frames + this (the seed's T + 20)")
    ctc_weight: float = Field(default=0.0, ge=0, le=1,
                              description="joint CTC / attention decoding: each step scores (1 - w) decoder + w CTC "
                                          "prefix of the CTC head (needs model.kwargs.ctc_head: true; 0 = the "
                                          "decoder alone, the seed)")
    batch_size: int = Field(default=16, ge=1, description="utterances decoded together")


class VsrSettings(StrictModel):
    """Data, stage chaining, losses and decoding of the lip reading stages (module docstring)."""

    split: SubjectParts | str | None = Field(
        default="speakers",
        description="speaker split: a named split of the dataset card (stored by `affectlab preprocess`; "
                    "synth visemes: speakers), train/val/test subject lists, or null for a seeded draw of "
                    "val_fraction / test_fraction of the speakers (data.split_seed)")
    val_fraction: float = Field(default=0.15, gt=0, lt=1, description="split: null: share of speakers validating")
    test_fraction: float = Field(default=0.15, ge=0, lt=1, description="split: null: share of speakers testing")
    crop_size: int | None = Field(default=None, ge=8, le=96,
                                  description="centre crop of the 96 px mouth ROI before resizing (auto_avsr: 88; "
                                              "default: no crop)")
    max_frames: int | None = Field(default=None, ge=2,
                                   description="clips with more frames are left out (listed in result.json)")
    max_words: int | None = Field(
        default=None, ge=1,
        description="word curriculum: train and validate on every run of this many consecutive words of each "
                    "clip (its frames cut at the word timings of the clip labels) instead of whole clips; "
                    "null: whole clips. The test part is always whole clips")
    cache: bool = Field(default=True,
                        description="Ray Train runner: read and resize the clips of every part once and keep them "
                                    "in Ray's object store (spilled to disk when full); false: re-read and resize "
                                    "them from Parquet every epoch")
    time_mask_window: int = Field(default=10, ge=0,
                                  description="AdaptiveTimeMask window in training of stages 2 and 3 "
                                              "(0 = off; the seed gives none, auto_avsr 10)")
    time_mask_stride: int = Field(default=25, ge=1, description="AdaptiveTimeMask stride (auto_avsr 25)")
    init: str | None = Field(default=None, min_length=1,
                             description="the previous stage's run (its --out, or its best_model.pt): stage 2 "
                                         "needs the LM run, stage 3 the visual-pretraining run (either may name "
                                         "an earlier run of its own stage to go on from: a word-curriculum step)")
    lm: str | None = Field(default=None, min_length=1,
                           description="stage 3: the LM run (default: the LM the init run was initialised from)")
    stage2_loss: Literal["ce", "ctc"] = Field(
        default="ce", description="stage 2: frame-wise cross-entropy against the transcript padded to the "
                                  "frame count (the seed's code) or CTC over the same per-frame outputs")
    frame_pad: Literal["eos", "ignore"] = Field(
        default="eos", description="stage 2 ce: target of the frames after the last character: EOS (the "
                                   "seed pads with id 0, its '\\n' symbol, which EOS replaces) or no loss")
    ctc_weight: float = Field(default=0.0, ge=0, le=1,
                              description="stage 3: loss = (1 - w) NLL + w CTC of the GRU head "
                                          "(needs model.kwargs.ctc_head: true)")
    decoding: VsrDecoding = Field(default_factory=VsrDecoding)

    @model_validator(mode="after")
    def _fractions(self) -> VsrSettings:
        if self.split is None and self.val_fraction + self.test_fraction >= 1:
            raise ValueError(f"val_fraction {self.val_fraction} + test_fraction {self.test_fraction} must be "
                             "below 1 (some speakers must train)")
        return self


def vsr_problems(config: ExperimentConfig) -> list[str]:
    """Cross-section problems of a lip reading stage (empty when fine): the feature set, the init
    run each stage needs, and the CTC head that ``ctc_weight`` needs."""
    task, s = config.data.task, config.data.vsr
    problems = []
    if task != "vsr_lm" and config.data.feature_set != MOUTH_SET:
        problems.append(f"data.feature_set={config.data.feature_set!r}: data.task {task!r} reads the mouth ROIs; "
                        f"set data.feature_set: {MOUTH_SET}")
    if task in ("vsr_visual", "vsr") and s.init is None:
        previous = ("the stage-1 LM run (data.task vsr_lm), or a stage-2 run to go on from"
                    if task == "vsr_visual" else
                    "the stage-2 visual-pretraining run (data.task vsr_visual), or a stage-3 run to go on from")
        problems.append(f"data.vsr.init is required for data.task {task!r}: name {previous}")
    if task == "vsr_lm" and s.init is not None:
        problems.append("data.vsr.init: stage 1 (vsr_lm) starts from scratch; remove it")
    if s.lm is not None and task != "vsr":
        problems.append(f"data.vsr.lm is only read by data.task 'vsr' (stage 3), not {task!r}")
    if s.ctc_weight > 0 and task == "vsr" and not config.model.kwargs.get("ctc_head", False):
        problems.append(f"data.vsr.ctc_weight={s.ctc_weight} needs the CTC head: set model.kwargs.ctc_head: true")
    if s.decoding.ctc_weight > 0 and task == "vsr" and not config.model.kwargs.get("ctc_head", False):
        problems.append(f"data.vsr.decoding.ctc_weight={s.decoding.ctc_weight} needs the CTC head: set "
                        "model.kwargs.ctc_head: true")
    if s.decoding.val_method == "beam_lm" and task == "vsr" and s.decoding.lm_weight == 0:
        problems.append("data.vsr.decoding.val_method 'beam_lm' with lm_weight 0 is plain beam: set lm_weight > 0 "
                        "or val_method: beam")
    return problems
