"""The task registry: ``data.task`` names a :class:`Task`, the way ``MODELS`` names a builder.

Each entry (:class:`TaskSpec`) says how to build the task from the experiment and the data
(:class:`DataInfo`), which models it can train (a config pairing a task with a model it does not
fit is an error naming both), the metrics it reports (``training.monitor`` must be one of them,
with a ``val_`` prefix) and placeholder data keywords used to validate ``model.kwargs`` before
any data is read.

=============  ==========================================  ===================================
``data.task``  models                                      metrics
=============  ==========================================  ===================================
``au``         the seed-003 networks (``stacked`` ...)     loss, uar, accuracy, f1
``f0_to_au``   ``f0_to_au``                                loss, uar, accuracy, mae, ccc
``game``       ``quadratic_game``                          loss, distance
``emotion``    ``emotion_cnn`` (face), ``speech_emotion_mlp``  loss, accuracy, video_accuracy, uar
``vae_lma``    ``vae_mlp``                                 loss, mae
``gan_au``     ``categorical_gan``                         loss, real_pct, au_mean_f1, ... (tasks.gan)
``gan_va``     ``categorical_gan``                         loss, real_pct, ccc_*, mse_*
``gan_au_va``  ``categorical_gan``                         both of the above
``vsr_lm``     ``vsr_lm``                                  loss, perplexity (seed 001 stage 1)
``vsr_visual`` ``vsr_visual``                              loss, cer, wer (stage 2)
``vsr``        ``vsr_lip_reader``                          loss, cer, wer (stage 3)
=============  ==========================================  ===================================

A new family adds a module here with its Task subclass and one :func:`register_task` call.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from affectlab.errors import ConfigError, unknown_name_error
from affectlab.training.losses import class_weights as eq11_weights
from affectlab.training.tasks.base import (DataInfo, SingleModelTask, StepContext, StepOutput, Task,
                                           unwrap)
from affectlab.training.tasks.emotion import EmotionTask
from affectlab.training.tasks.frame import FrameTask
from affectlab.training.tasks.game import GameTask
from affectlab.training.tasks.seq2seq import Seq2SeqTask
from affectlab.training.tasks.vae import VaeTask

if TYPE_CHECKING:
    from affectlab.training.config import ExperimentConfig

__all__ = ["TASKS", "DataInfo", "EmotionTask", "FrameTask", "GameTask", "Seq2SeqTask", "SingleModelTask", "StepContext",
           "StepOutput", "Task", "TaskSpec", "VaeTask", "build_task", "register_task", "task_model_problem", "task_spec",
           "unwrap"]


@dataclass(frozen=True)
class TaskSpec:
    """A registered task: its factory, the models it fits, its metrics and placeholder data keywords."""

    name: str
    build: Callable[[ExperimentConfig, DataInfo], Task]
    models: tuple[str, ...]
    metrics: tuple[str, ...]
    data_kwargs: dict[str, Any] = field(default_factory=dict)
    description: str = ""
    model_data_kwargs: dict[str, dict[str, Any]] = field(default_factory=dict)

    def placeholder_kwargs(self, model: str) -> dict[str, Any]:
        """Placeholder data keywords for ``model`` (its own entry in ``model_data_kwargs``, else
        ``data_kwargs``): enough to build a throw-away model that validates ``model.kwargs``."""
        return self.model_data_kwargs.get(model, self.data_kwargs)


TASKS: dict[str, TaskSpec] = {}


def register_task(spec: TaskSpec) -> TaskSpec:
    """Add ``spec`` to :data:`TASKS` (a name registered twice is a programming error)."""
    if spec.name in TASKS:
        raise ValueError(f"task {spec.name!r} is already registered")
    TASKS[spec.name] = spec
    return spec


def task_spec(name: str) -> TaskSpec:
    """The registered task ``name``.

    Raises:
        RegistryError: Unknown task (the message lists the known ones).
    """
    if name not in TASKS:
        raise unknown_name_error("task", name, list(TASKS))
    return TASKS[name]


def task_model_problem(task: str, model: str) -> str | None:
    """Why ``data.task`` and ``model.name`` do not fit together, or None when they do."""
    spec = TASKS.get(task)
    if spec is None:
        return f"unknown data.task {task!r}; known: {', '.join(sorted(TASKS))}"
    if model not in spec.models:
        fitting = [name for name, s in TASKS.items() if model in s.models]
        hint = f"; model {model!r} fits task(s) {fitting}" if fitting else ""
        return (f"data.task={task!r} does not fit model.name={model!r}: task {task!r} trains "
                f"{list(spec.models)}{hint}")
    return None


def build_task(config: ExperimentConfig, info: DataInfo) -> Task:
    """The task object of ``config.data.task`` for data described by ``info``.

    Raises:
        ConfigError: The task and model do not fit (names both).
    """
    problem = task_model_problem(config.data.task, config.model.name)
    if problem:
        raise ConfigError(problem)
    return TASKS[config.data.task].build(config, info)


# -- the registered tasks ------------------------------------------------------------------------

SEED003_MODELS = ("stacked", "stacked_intraatt", "stacked2_intraatt", "encdec", "enc_interatt_dec",
                  "enc_interatt_dec_intraatt")


def _au(config: ExperimentConfig, info: DataInfo) -> Task:
    weights = eq11_weights(info.class_counts) if config.training.class_weights else None
    return FrameTask(weights, config)


def _f0_to_au(config: ExperimentConfig, info: DataInfo) -> Task:
    vocab = info.extra.get("vocab")
    if vocab is None:
        raise ConfigError("task 'f0_to_au' needs the AU vocabulary of the label set; re-run `affectlab preprocess`")
    t = config.training
    weights = None
    if t.class_weights:
        counts = np.asarray(info.class_counts)
        weights = np.where(counts > 0, eq11_weights(counts), 1.0)  # EOS / unseen tokens: weight 1
    return Seq2SeqTask(np.asarray(vocab["id_values"]), int(vocab["sos_id"]), int(vocab["eos_id"]),
                       teacher_forcing_ratio=t.teacher_forcing_ratio,
                       beam_width=t.beam_size if t.decode == "beam" else 1,
                       pick="median" if t.decode == "median" else "mode", class_weights=weights, config=config)


def _game(config: ExperimentConfig, info: DataInfo) -> Task:
    return GameTask(config.training.update_rate, config)


register_task(TaskSpec("au", _au, SEED003_MODELS, FrameTask.metrics, {"input_dim": 4},
                       "seed 003: per-step binary AU activity"))
register_task(TaskSpec("f0_to_au", _f0_to_au, ("f0_to_au",), Seq2SeqTask.metrics,
                       {"au_vocab_size": 16, "f0_vocab_size": 16, "sos_id": 0, "eos_id": 1},
                       "seed 000: F0 tokens to AU intensity tokens"))
register_task(TaskSpec("game", _game, ("quadratic_game",), GameTask.metrics, {"input_dim": 2},
                       "two-player quadratic game with a known equilibrium (checks the loop)"))


def _emotion(config: ExperimentConfig, info: DataInfo) -> Task:
    return EmotionTask(config, {"n_classes": len(config.data.emotion.classes), **info.extra})


register_task(TaskSpec("emotion", _emotion, ("emotion_cnn", "speech_emotion_mlp"), EmotionTask.metrics,
                       description="seed 001: categorical emotion from face crops (or speech functionals)",
                       model_data_kwargs={"emotion_cnn": {"n_classes": 7, "input_size": 16, "in_channels": 1},
                                          "speech_emotion_mlp": {"n_classes": 7, "input_dim": 4}}))


def _vae(config: ExperimentConfig, info: DataInfo) -> Task:
    return VaeTask(config, info.extra)


register_task(TaskSpec("vae_lma", _vae, ("vae_mlp",), VaeTask.metrics, {"input_dim": 27},
                       "seed 004: VAE over LMA body-motion features, XGBoost PAD regressors"))


def _gan(config: ExperimentConfig, info: DataInfo) -> Task:
    from affectlab.training.tasks.gan import GAN_TASKS, GanTask

    return GanTask(GAN_TASKS[config.data.task], tuple(info.extra.get("aus", config.data.gan.aus)), config)


_GAN_METRICS = {"gan_au": ("loss", "real_pct", "au_mean_f1", "au_mean_accuracy", "au_score"),
                "gan_va": ("loss", "real_pct", "ccc_valence", "ccc_arousal", "ccc_mean", "mse_valence", "mse_arousal"),
                "gan_au_va": ("loss", "real_pct", "au_mean_f1", "au_mean_accuracy", "au_score", "ccc_valence",
                              "ccc_arousal", "ccc_mean", "mse_valence", "mse_arousal")}
for _name, _head in (("gan_au", "au"), ("gan_va", "va"), ("gan_au_va", "au_va")):
    register_task(TaskSpec(_name, _gan, ("categorical_gan",), _GAN_METRICS[_name],
                           {"head": _head, "n_aus": 8, "image_size": 28},
                           f"seed 002: categorical GAN over face crops, discriminator head {_head!r}"))


def _vsr(config: ExperimentConfig, info: DataInfo) -> Task:
    from affectlab.training.tasks.vsr import IntegrationTask, LanguageModelTask, VisualPretrainTask

    kinds = {"vsr_lm": LanguageModelTask, "vsr_visual": VisualPretrainTask, "vsr": IntegrationTask}
    return kinds[config.data.task](config, info.extra)


for _name, _model, _metrics, _what in (
        ("vsr_lm", "vsr_lm", ("loss", "perplexity"), "stage 1: character LM on the training transcripts"),
        ("vsr_visual", "vsr_visual", ("loss", "cer", "wer"), "stage 2: visual pretraining, frozen LM softmax"),
        ("vsr", "vsr_lip_reader", ("loss", "cer", "wer"), "stage 3: integration, transcripts from mouth ROIs")):
    register_task(TaskSpec(_name, _vsr, (_model,), _metrics, {}, f"seed 001 lip reading {_what}"))
