"""Experiment files: a ``base`` training config plus optional ``space`` / ``tune`` sections.

An experiment file (``search_spaces/<name>.yaml``) looks like::

    base:                 # ExperimentConfig: what `affectlab train` and `affectlab cv` run
      data: {features: out/demo, feature_set: egemaps, target: {au: AU17, kind: occurrence}}
      model: {name: enc_interatt_dec, kwargs: {hidden: 20}}
      training: {lr: 1e-4, batch_size: 32, max_epochs: 100, patience: 5}
      scaling: {runner: ray_train, num_workers: 1, use_gpu: false}
      tracking: {mlflow_uri: http://mlflow.example:5000}   # optional: MLflow (affectlab.tracking)
    space: {...}          # sweep space: passed through untouched (validated by affectlab.tuning)
    tune: {...}           # sweep settings: passed through untouched (validated by affectlab.tuning)

Any other top-level key is an error. ``--set training.lr=1e-3`` overrides a key of ``base``
(``--set base.training.lr=1e-3`` works too; ``--set space...`` / ``--set tune...`` reach those
sections). Every problem in ``base`` is reported at once, naming the dotted key.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import Field, field_validator, model_validator

from affectlab.config import StrictModel, SubjectParts, apply_overrides, load_yaml, validate
from affectlab.errors import ConfigError
from affectlab.training.gan_config import GanSettings
from affectlab.training.vae_config import VaeSettings
from affectlab.training.vsr_config import VSR_TASKS, VsrSettings, vsr_problems

__all__ = [
    "CheckpointSettings",
    "DataConfig",
    "EmotionSettings",
    "PlateauSettings",
    "SEED001_EMOTIONS",
    "SubjectSplit",
    "Experiment",
    "ExperimentConfig",
    "FailureSettings",
    "ModelConfig",
    "ScalingSettings",
    "TargetConfig",
    "TrackingSettings",
    "TrainingSettings",
    "ValidationSplit",
    "load_experiment",
    "parse_experiment",
]

PASSTHROUGH_SECTIONS = ("space", "tune")
KINDS = ("onset", "apex", "offset", "occurrence")


class TargetConfig(StrictModel):
    """Which label to predict: an AU (``AU17``) and, for frame classification, its class."""

    au: str = Field(default="AU17", pattern=r"^AU\d{1,2}$")
    kind: Literal["onset", "apex", "offset", "occurrence"] = "occurrence"


class ValidationSplit(StrictModel):
    """Held-out data for early stopping, always taken from the training subjects.

    ``subjects`` training subjects (chosen with ``data.split_seed``, preferring subjects whose
    target labels hold two or more classes) are held out; when ``subjects`` is 0, a ``fraction``
    of the training recordings is held out instead.
    """

    subjects: int = Field(default=1, ge=0)
    fraction: float = Field(default=0.2, gt=0, lt=1)


SEED001_EMOTIONS = ("angry", "calm", "disgust", "fear", "happy", "sad", "surprise")


def _actors(first: int, last: int) -> tuple[str, ...]:
    return tuple(f"actor_{i:02d}" for i in range(first, last + 1))


class SubjectSplit(SubjectParts):
    """A fixed subject-disjoint split; the defaults are seed 001's actors 1-18 / 19-20 / 21-24."""

    train: tuple[str, ...] = Field(default=_actors(1, 18), min_length=1)
    val: tuple[str, ...] = Field(default=_actors(19, 20), min_length=1)
    test: tuple[str, ...] = Field(default=_actors(21, 24))


class EmotionSettings(StrictModel):
    """``data.task: emotion``: categorical emotion per clip, from face crops or speech functionals.

    Defaults follow seed 001's emotion CNN (SEED-NOTES Part B): seven classes in the seed's order
    with neutral dropped, actors 1-18 / 19-20 / 21-24, the first 21 frames skipped and every 3rd
    kept, frames balanced per video to the split's minimum, mean-face subtraction, flip and a
    0.4 x 0.4 cutout in training, the video decided by the mean of its frame probabilities.
    """

    modality: Literal["face", "speech"] = Field(
        default="face", description="face: frames of the `face` crop set; speech: one functionals vector per recording")
    classes: tuple[str, ...] = Field(default=SEED001_EMOTIONS, min_length=2,
                                     description="class names in output order (RAVDESS 'fearful' and 'surprised' "
                                                 "are read as 'fear' and 'surprise')")
    drop: tuple[str, ...] = Field(default=("neutral",), description="emotions left out of every split")
    split: SubjectSplit | str = Field(
        default=SubjectSplit(),
        description="the actor split: train/val/test lists, or the name of a split in the dataset card's "
                    "`splits:` (stored by `affectlab preprocess`; `affectlab train --split NAME`)")
    crop_size: int | None = Field(default=None, ge=8,
                                  description="face: which face_<S> column (default: the largest stored)")
    input_size: int | None = Field(default=None, ge=8,
                                   description="face: resize crops to this side for the network (default: crop_size)")
    skip_first_frames: int = Field(default=21, ge=0, description="face: frames dropped at the start of each video")
    frame_step: int = Field(default=3, ge=1, description="face: keep every n-th frame after the skipped ones")
    balance_frames: bool = Field(default=True,
                                 description="face: sample the same number of frames from every video of a split "
                                             "(the split's minimum)")
    mean_face: bool = Field(default=True, description="face: subtract the training actors' mean face")
    flip: bool = Field(default=True, description="face: random horizontal flips in training")
    cutout: float = Field(default=0.4, ge=0, lt=1,
                          description="face: side of a random zeroed square in training, as a fraction of the "
                                      "image side (0: off)")
    cache: bool = Field(default=True,
                        description="materialise each part's selected frames once in Ray's object store (spilled "
                                    "to disk when full); false: re-read and re-select them from Parquet every epoch")
    video_weighting: Literal["mean", "max"] = Field(
        default="mean", description="video decision: mean of frame probabilities, or weighted by each frame's "
                                    "max probability")

    @model_validator(mode="after")
    def _classes(self) -> EmotionSettings:
        dupes = sorted({c for c in self.classes if self.classes.count(c) > 1})
        if dupes:
            raise ValueError(f"classes {dupes} are listed twice")
        both = sorted(set(self.classes) & set(self.drop))
        if both:
            raise ValueError(f"{both} are both in classes and in drop")
        return self


class DataConfig(StrictModel):
    """Where the preprocessed features and labels are and how to turn them into windows."""

    features: str = Field(min_length=1, description="preprocess output directory (path or s3:// URI)")
    feature_set: str = Field(default="egemaps", min_length=1)
    label_set: str | None = Field(default=None, description="labels/<set>; default: au")
    task: str = Field(default="au", description="the task (affectlab.training.tasks.TASKS): au, f0_to_au, game")
    target: TargetConfig = TargetConfig()
    normalisation: Literal["per_speaker", "global", "none"] = Field(
        default="per_speaker", description="features z-scored per speaker (then globally), globally only, or not "
                                           "at all (the AU tasks; emotion speech functionals)")
    rate: Literal["labels", "features"] = Field(
        default="labels", description="train at the annotation rate (25 Hz AUs) or the feature rate (100 Hz)"
    )
    max_steps: int = Field(default=100, ge=2, le=10000)
    au_step: float | None = Field(
        default=None, gt=0, le=5,
        description="f0_to_au: re-quantize the stored AU intensities with this step at load time (must divide 5); "
                    "default: the tokens written by `affectlab preprocess --au-step`",
    )
    test_subjects: tuple[str, ...] = ()
    validation: ValidationSplit = ValidationSplit()
    split_seed: int = Field(
        default=0, ge=0,
        description="seeds the choice of validation subjects (or recordings); training.seed only initialises "
                    "the model and orders batches, so changing it never moves a subject between splits",
    )
    subjects: tuple[str, ...] | None = Field(default=None, description="restrict to these subjects")
    emotion: EmotionSettings = Field(default_factory=EmotionSettings,
                                     description="data.task: emotion (labels, split, frames, augmentation)")
    vae: VaeSettings = Field(default_factory=VaeSettings,
                             description="data.task: vae_lma (loss weights, scaling, outliers, split, regressors)")
    gan: GanSettings = Field(default_factory=GanSettings,
                             description="data.task: gan_au / gan_va / gan_au_va (labels, losses, split)")
    vsr: VsrSettings = Field(default_factory=VsrSettings,
                             description="data.task: vsr_lm / vsr_visual / vsr (lip reading stages: split, "
                                         "previous stage, losses, decoding)")

    @field_validator("au_step")
    @classmethod
    def _au_step_divides_range(cls, value: float | None) -> float | None:
        if value is not None:
            from affectlab.data.labels import au_vocab

            try:
                au_vocab(value)
            except ConfigError as exc:
                raise ValueError(str(exc)) from None
        return value

    @model_validator(mode="after")
    def _au_step_only_for_tokens(self) -> DataConfig:
        if self.au_step is not None and self.task != "f0_to_au":
            raise ValueError(
                "au_step re-quantizes the f0_to_au intensity tokens only; onset/apex/offset/occurrence come from "
                "the quantized intensity at preprocessing time: re-run `affectlab preprocess --au-step` instead"
            )
        return self


class ModelConfig(StrictModel):
    """A model from the registry ``affectlab.models.MODELS`` and its builder keywords.

    The builder validates the keywords, including the regularisation weights of the seed-003
    models (``l2_kernel``, ``l1_bias``, ``attention_reg``); keywords that come from the data
    (``input_dim``, vocabulary sizes, SOS/EOS ids) are filled in by the trainer.
    """

    name: str = "enc_interatt_dec"
    kwargs: dict[str, Any] = Field(default_factory=dict)

    @field_validator("name")
    @classmethod
    def _known_name(cls, value: str) -> str:
        from affectlab.models import MODELS

        if value not in MODELS:
            raise ValueError(f"unknown model {value!r}; known: {', '.join(sorted(MODELS))}")
        return value

    @model_validator(mode="after")
    def _valid_kwargs(self) -> ModelConfig:
        problems = model_problems(self.name, self.kwargs)
        if problems:
            raise ValueError("; ".join(problems))
        return self


class PlateauSettings(StrictModel):
    """Reduce-on-plateau learning-rate schedule (seed 001's emotion CNN: factor 0.5, patience 2)."""

    factor: float = Field(default=0.5, gt=0, lt=1, description="multiply the learning rate by this")
    patience: int = Field(default=2, ge=0, description="evaluations without improvement before reducing")
    min_lr: float = Field(default=0.0, ge=0)


class TrainingSettings(StrictModel):
    """Optimisation and early stopping (defaults: 003, IV-C)."""

    lr: float = Field(default=1e-4, gt=0, le=1)
    batch_size: int = Field(default=32, ge=1)
    max_epochs: int = Field(default=100, ge=1)
    patience: int = Field(default=5, ge=1)
    prev_rounds: int = Field(
        default=15, ge=0,
        description="warm-up epochs and moving-average length of seed 003's rule; 0 = classic early stopping "
                    "(patience against the best earlier value)",
    )
    last_top_results: int = Field(
        default=10, ge=1,
        description="the best epoch is chosen among the last this many (a value >= max_epochs: the best of "
                    "the run, i.e. Keras' restore_best_weights)",
    )
    monitor: str = Field(
        default="val_uar", pattern=r"^val_[a-z0-9_]+$",
        description="early-stopping metric: val_ + one of the task's metrics (the task says which are "
                    "higher-is-better: uar, ccc, f1, accuracy; loss, mae, distance are lower-is-better)",
    )
    seed: int = Field(default=0, ge=0)
    class_weights: bool = True
    regularisation: bool = Field(
        default=True, description="add model.regularization_loss() (weights are model kwargs)"
    )
    grad_clip: float | None = Field(default=None, gt=0)
    amp: bool = Field(default=False, description="mixed precision; only used on CUDA")
    teacher_forcing_ratio: float = Field(
        default=1.0, ge=0, le=1,
        description="f0_to_au: probability of feeding the true previous token at each training step "
                    "(1 = teacher forcing, below 1 = scheduled sampling, 0 = free running)",
    )
    decode: Literal["greedy", "median", "beam"] = Field(
        default="greedy",
        description="f0_to_au decoding: greedy (most probable token), median (per-step median intensity: "
                    "lowest expected absolute error) or beam (beam_size)",
    )
    beam_size: int = Field(default=4, ge=1)
    max_iterations: int | None = Field(
        default=None, ge=1,
        description="an iteration budget instead of epochs: train this many steps (the data is "
                    "cycled), evaluating and checkpointing every eval_every steps; max_epochs is then unused",
    )
    eval_every: int | None = Field(
        default=None, ge=1,
        description="with max_iterations: steps between evaluations (default: max_iterations / 10). "
                    "Early stopping's patience, prev_rounds and last_top_results count evaluations",
    )
    verify_replicas: bool = Field(
        default=False,
        description="with several workers: after every step, check that every rank holds the same "
                    "parameters (a digest per module, all-gathered); a mismatch stops training with an "
                    "error naming the module and step. For debugging a task's DDP use; costs one "
                    "all-gather per step",
    )
    lr_plateau: PlateauSettings | None = Field(
        default=None,
        description="reduce every optimizer's learning rate when training.monitor stops improving "
                    "(torch ReduceLROnPlateau); None: constant learning rate",
    )
    update_rate: int = Field(
        default=1, ge=0,
        description="two-player tasks (game, GANs): the second player (discriminator) steps on iterations "
                    "that are multiples of update_rate + 1, the first on the others",
    )

    @property
    def evaluation_interval(self) -> int | None:
        """Steps between evaluations in iteration mode (None: once per epoch)."""
        if self.max_iterations is None:
            return None
        return self.eval_every or max(1, self.max_iterations // 10)

    @property
    def max_evaluations(self) -> int:
        """How many evaluation rounds (epochs, or iteration periods) the budget allows."""
        interval = self.evaluation_interval
        if interval is None:
            return self.max_epochs
        return -(-self.max_iterations // interval)


class ScalingSettings(StrictModel):
    """Where the epochs run.

    ``runner: ray_train`` uses a TorchTrainer (DDP over ``num_workers``); ``in_process`` runs the
    same epoch code in the calling process (no worker start-up: for CV grids and sweeps).
    """

    runner: Literal["ray_train", "in_process"] = "ray_train"
    num_workers: int = Field(default=1, ge=1)
    use_gpu: bool = False
    cpus_per_worker: float = Field(default=1, gt=0)
    torch_threads: int | None = Field(default=None, ge=1, description="torch threads per worker")
    poll_interval_s: float = Field(
        default=0.1, gt=0, le=60,
        description="ray_train: how often the controller collects worker reports (Ray's default, 2 s, "
        "throttles every epoch shorter than that to 2 s); RAY_TRAIN_HEALTH_CHECK_INTERVAL_S wins if set",
    )


class CheckpointSettings(StrictModel):
    """Checkpoints: one per epoch; Ray Train keeps the latest ``num_to_keep``."""

    num_to_keep: int | None = Field(default=2, ge=1)


class FailureSettings(StrictModel):
    """Worker fault tolerance: Ray Train ``FailureConfig(max_failures)`` (-1: retry forever)."""

    max_failures: int = Field(default=1, ge=-1)


class TrackingSettings(StrictModel):
    """MLflow experiment tracking (:mod:`affectlab.tracking`); off unless a URI or ``--mlflow`` asks for it.

    Precedence of the tracking URI: ``mlflow_uri`` here, then the ``MLFLOW_TRACKING_URI``
    environment variable, then (``--mlflow`` alone) the embedded store under the output
    directory (``<out>/mlruns/mlflow.db``). Credentials never go here: a URI holding a password
    is rejected (MLflow reads ``MLFLOW_TRACKING_USERNAME`` / ``MLFLOW_TRACKING_PASSWORD`` /
    ``MLFLOW_TRACKING_TOKEN`` from the environment).

    The section says where runs are logged, not what is trained, so it is excluded from the
    config's dumps: ``config.yaml``, checkpoint and sweep fingerprints and the configs derived
    with :func:`with_updates` (CV grids, sweep trials) never carry it, and changing it never
    blocks a resume. The commands resolve it once from the loaded experiment.
    """

    mlflow_uri: str | None = Field(
        default=None, min_length=1,
        description="MLflow tracking URI: a tracking server (http(s)://host:5000), a database "
                    "(sqlite:///path/mlflow.db, postgresql://host/db) or databricks",
    )
    experiment: str | None = Field(
        default=None, min_length=1, max_length=250,
        description="MLflow experiment name (default: the config's name)",
    )

    @field_validator("mlflow_uri")
    @classmethod
    def _no_credentials(cls, value: str | None) -> str | None:
        if value is not None:
            from urllib.parse import urlsplit

            if urlsplit(value).password is not None:
                raise ValueError("holds a password; put credentials in MLFLOW_TRACKING_USERNAME / "
                                 "MLFLOW_TRACKING_PASSWORD (or MLFLOW_TRACKING_TOKEN), never in a config")
        return value


class ExperimentConfig(StrictModel):
    """One training configuration: the ``base`` section of an experiment file."""

    name: str = Field(default="experiment", pattern=r"^[A-Za-z0-9_.=-]+$")
    data: DataConfig
    model: ModelConfig = Field(default_factory=ModelConfig)
    training: TrainingSettings = TrainingSettings()
    scaling: ScalingSettings = ScalingSettings()
    checkpoint: CheckpointSettings = CheckpointSettings()
    failure: FailureSettings = FailureSettings()
    tracking: TrackingSettings = Field(
        default_factory=TrackingSettings, exclude=True,
        description="where runs are logged, not what is trained: left out of dumps (config.yaml, checkpoint "
                    "and sweep fingerprints), so changing it never blocks a resume",
    )

    @model_validator(mode="after")
    def _consistent(self) -> ExperimentConfig:
        from affectlab.training.tasks import TASKS, task_model_problem

        problem = task_model_problem(self.data.task, self.model.name)
        if problem:
            raise ValueError(problem)
        metrics = TASKS[self.data.task].metrics
        if self.training.monitor.removeprefix("val_") not in metrics:
            raise ValueError(f"training.monitor={self.training.monitor!r} is not a metric of task "
                             f"{self.data.task!r}; choose one of {['val_' + m for m in metrics]}")
        if self.data.task in VSR_TASKS:
            vsr = vsr_problems(self)
            if vsr:
                raise ValueError("; ".join(vsr))
        if self.data.subjects is not None and not set(self.data.test_subjects) <= set(self.data.subjects):
            raise ValueError(f"data.test_subjects {list(self.data.test_subjects)} must be among data.subjects")
        return self

    @field_validator("name")
    @classmethod
    def _short(cls, value: str) -> str:
        if len(value) > 120:
            raise ValueError("name is longer than 120 characters")
        return value


def model_problems(name: str, kwargs: Mapping[str, Any]) -> list[str]:
    """Problems with a model name and its builder keywords (empty when fine).

    The builder itself validates the keywords: a throw-away model is built with placeholder
    sizes for the keywords that come from the data (the ``data_kwargs`` of the task that trains
    the model, :data:`affectlab.training.tasks.TASKS`).
    """
    from affectlab.errors import AffectlabError
    from affectlab.models import MODELS, build_model
    from affectlab.training.tasks import TASKS

    if name not in MODELS:
        return [f"unknown model {name!r}; known: {', '.join(sorted(MODELS))}"]
    filled = next((spec.placeholder_kwargs(name) for spec in TASKS.values() if name in spec.models), {})
    reserved = [k for k in kwargs if k in filled]
    if reserved:
        return [f"model.kwargs: {reserved} are filled in from the data; remove them"]
    try:
        build_model(name, **filled, **kwargs)
    except AffectlabError as exc:
        return [str(exc).replace("\n", " ")]
    except (TypeError, ValueError) as exc:
        return [f"model {name!r}: {exc}"]
    return []


@dataclass(frozen=True)
class Experiment:
    """A loaded experiment file: the validated ``base`` and the passthrough sections."""

    base: ExperimentConfig
    space: dict[str, Any] | None
    tune: dict[str, Any] | None
    source: str


def _route_overrides(overrides: Iterable[str]) -> list[str]:
    """Overrides without a section prefix address ``base``."""
    routed = []
    for item in overrides:
        head = item.split("=", 1)[0].strip().split(".", 1)[0]
        routed.append(item if head in ("base", *PASSTHROUGH_SECTIONS) else f"base.{item}")
    return routed


def parse_experiment(data: Mapping[str, Any], *, source: str = "<experiment>", overrides: Iterable[str] = ()) -> Experiment:
    """Validate an experiment mapping (see the module docstring for its shape).

    Raises:
        ConfigError: Unknown top-level keys, a missing ``base``, or any problem inside ``base``
            (all reported at once).
    """
    data = apply_overrides(data, _route_overrides(overrides))
    allowed = ("base", *PASSTHROUGH_SECTIONS)
    unknown = [k for k in data if k not in allowed]
    problems = [f"  - {k}: unknown top-level key; allowed: {', '.join(allowed)}" for k in unknown]
    if "base" not in data:
        problems.append("  - base: required key is missing")
    for key in PASSTHROUGH_SECTIONS:
        if data.get(key) is not None and not isinstance(data[key], dict):
            problems.append(f"  - {key}: must be a mapping, got {type(data[key]).__name__}")
    base: ExperimentConfig | None = None
    if isinstance(data.get("base"), dict):
        try:
            base = validate(ExperimentConfig, data["base"], source=source)
        except ConfigError as exc:
            problems.extend("  - base." + line.strip()[2:] for line in str(exc).splitlines()[1:])
    elif "base" in data:
        problems.append(f"  - base: must be a mapping, got {type(data['base']).__name__}")
    if problems or base is None:
        raise ConfigError(f"{source}: {len(problems)} problem(s) in experiment file:\n" + "\n".join(problems))
    return Experiment(base=base, space=data.get("space"), tune=data.get("tune"), source=source)


def load_experiment(path: str, overrides: Iterable[str] = ()) -> Experiment:
    """Load and validate an experiment file from a path or URI (see :func:`parse_experiment`)."""
    return parse_experiment(load_yaml(path), source=path, overrides=overrides)


def with_updates(config: ExperimentConfig, updates: Mapping[str, Any]) -> ExperimentConfig:
    """A copy of ``config`` with dotted-key ``updates`` applied and re-validated.

    Example: ``with_updates(cfg, {"data.test_subjects": ["s01"], "training.lr": 1e-3})``.
    """
    items = [f"{key}={_yaml_scalar(value)}" for key, value in updates.items()]
    return validate(ExperimentConfig, apply_overrides(config.model_dump(mode="json"), items), source="<updates>")


def _yaml_scalar(value: Any) -> str:
    import json

    return json.dumps(value)  # JSON is YAML: lists, strings, numbers and null round-trip
