"""The task interface: what one training step does and how a model is scored.

A *task* owns everything that differs between model families; the shared loop
(:func:`affectlab.training.loop.fit`) owns everything that does not (epochs or an iteration
budget, evaluation cadence, early stopping, checkpoints, reporters, DDP wrapping, AMP, clipping).

A task:

* builds its **modules** (:meth:`Task.build_modules`): ``{"model": net}`` for one network, or
  several named ones (a GAN's ``generator`` and ``discriminator``). A model builder that returns an
  ``nn.ModuleDict`` gives one module per entry. A module without trainable parameters (frozen)
  is moved to the device but never wrapped in DDP;
* builds one **optimizer** per trainable module group (:meth:`Task.configure_optimizers`);
* performs one **training step** on a batch (:meth:`Task.train_step`) through a
  :class:`StepContext`, which runs the forward pass under autocast and an optimizer update with
  AMP scaling and gradient clipping (:meth:`StepContext.optimize`); the step returns the losses to
  log (:class:`StepOutput`: several named losses, averaged per epoch with the step's weight);
* **evaluates** modules on batches (:meth:`Task.evaluate`) into ``<prefix><metric>`` values, and
  says for each metric whether higher is better (early stopping's mode).

:class:`SingleModelTask` is the common case: one ``model``, one Adam optimizer, one loss.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np
import torch
from torch import nn

if TYPE_CHECKING:
    from affectlab.training.config import ExperimentConfig

__all__ = ["DataInfo", "SingleModelTask", "StepContext", "StepOutput", "Task", "as_tensor", "unwrap"]

Batch = dict[str, Any]


def unwrap(module: nn.Module) -> nn.Module:
    """The plain module inside a DistributedDataParallel wrapper (or the module itself)."""
    return module.module if isinstance(module, nn.parallel.DistributedDataParallel) else module


def as_tensor(value: Any, device: str, dtype: torch.dtype) -> torch.Tensor:
    """``value`` (array, list or tensor) as a tensor of ``dtype`` on ``device``."""
    tensor = value if isinstance(value, torch.Tensor) else torch.as_tensor(np.asarray(value))
    return tensor.to(device=device, dtype=dtype)


@dataclass(frozen=True)
class DataInfo:
    """What a task learns from the data before training.

    ``model_kwargs``: builder keywords that come from the data (feature size, vocabulary sizes);
    ``class_counts``: target classes counted on the training steps (empty when not a
    classification); ``extra``: anything else a task needs (e.g. the AU vocabulary).
    """

    model_kwargs: dict[str, Any] = field(default_factory=dict)
    class_counts: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class StepOutput:
    """Losses of one step (plain floats, one entry per logged loss) and the step's weight.

    The loop reports ``train_<name>`` per epoch: the mean of each loss over the epoch's steps,
    weighted by ``weight`` (e.g. the number of labelled frames in the batch) and summed over DDP
    ranks. A loss that a step did not compute (a GAN's ``d_loss`` on a generator step) is left
    out of that step and averaged over the steps that have it.
    """

    losses: dict[str, float]
    weight: float = 1.0


class StepContext:
    """What a task's :meth:`Task.train_step` works with.

    Attributes:
        modules: The task's modules for training forward passes (DDP-wrapped when distributed).
        optimizers: The optimizers by name (:meth:`Task.configure_optimizers`).
        iteration: Number of training steps taken before this one (0-based, over all epochs).
        epoch: The current epoch (1-based pass over the training data).
        device: ``"cpu"`` or ``"cuda:N"``.
    """

    def __init__(self, modules: dict[str, nn.Module], optimizers: dict[str, torch.optim.Optimizer], *,
                 device: str, amp: bool = False, grad_clip: float | None = None) -> None:
        self.modules = modules
        self.optimizers = optimizers
        self.device = device
        self.grad_clip = grad_clip
        self.amp = bool(amp and device.startswith("cuda"))
        self.scalers = {name: torch.amp.GradScaler("cuda") for name in optimizers} if self.amp else {}
        self.iteration = 0
        self.epoch = 1

    def autocast(self) -> AbstractContextManager[Any]:
        """Mixed precision (float16 on CUDA) when AMP is on; a no-op otherwise."""
        return torch.autocast(device_type="cuda", dtype=torch.float16, enabled=self.amp)

    def optimize(self, name: str, loss: torch.Tensor) -> None:
        """One update of optimizer ``name`` from ``loss``.

        Clears that optimizer's gradients, back-propagates (scaled under AMP), clips the norm of
        its parameters' gradients to ``training.grad_clip`` (after unscaling) and steps.

        Raises:
            KeyError: No optimizer of that name (the message lists the task's optimizers).
        """
        if name not in self.optimizers:
            raise KeyError(f"no optimizer {name!r}; this task has {sorted(self.optimizers)}")
        opt = self.optimizers[name]
        opt.zero_grad(set_to_none=True)
        scaler = self.scalers.get(name)
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.unscale_(opt)
        else:
            loss.backward()
        if self.grad_clip:
            params = [p for group in opt.param_groups for p in group["params"]]
            nn.utils.clip_grad_norm_(params, self.grad_clip)
        if scaler is not None:
            scaler.step(opt)
            scaler.update()
        else:
            opt.step()


class Task(ABC):
    """A model family's training step and evaluation (see the module docstring).

    Class attributes:
        metrics: Names of the metrics :meth:`evaluate` returns (without prefix).
        higher_is_better: The subset of ``metrics`` where larger values are better.
    """

    metrics: ClassVar[tuple[str, ...]] = ("loss",)
    higher_is_better: ClassVar[frozenset[str]] = frozenset()

    def __init__(self, config: ExperimentConfig | None = None) -> None:
        self.config = config

    def build_modules(self, model_name: str, model_kwargs: dict[str, Any]) -> dict[str, nn.Module]:
        """The task's modules, from the model registry (an ``nn.ModuleDict`` gives one per entry)."""
        from affectlab.models import build_model

        model = build_model(model_name, **model_kwargs)
        if isinstance(model, nn.ModuleDict):
            return dict(model.items())
        return {"model": model}

    def configure_optimizers(self, modules: dict[str, nn.Module], lr: float) -> dict[str, torch.optim.Optimizer]:
        """One Adam optimizer per module with trainable parameters, named like the module."""
        out = {}
        for name, module in modules.items():
            params = [p for p in module.parameters() if p.requires_grad]
            if params:
                out[name] = torch.optim.Adam(params, lr=lr)
        return out

    def to_device(self, batch: Batch, device: str) -> dict[str, torch.Tensor]:
        """The batch's arrays as tensors on ``device`` (override to choose dtypes and masks)."""
        return {k: as_tensor(v, device, torch.float32) for k, v in batch.items() if _numeric(v)}

    def set_train_mode(self, modules: dict[str, nn.Module]) -> None:
        """Put the modules in training mode before a round (override to keep frozen ones in eval)."""
        for module in modules.values():
            module.train()

    @abstractmethod
    def train_step(self, ctx: StepContext, batch: dict[str, torch.Tensor]) -> StepOutput:
        """Do one training step on a device batch (from :meth:`to_device`); return its losses."""

    @abstractmethod
    def evaluate(self, modules: dict[str, nn.Module], batches: Iterable[Batch], device: str, *,
                 prefix: str) -> dict[str, float]:
        """``{prefix + metric: value}`` of the (unwrapped) modules on ``batches``, in eval mode."""

    def is_higher_better(self, metric: str) -> bool:
        """Whether larger values of ``metric`` (with or without a ``val_`` prefix) are better."""
        return metric.split("_", 1)[-1] in self.higher_is_better if metric.startswith(("val_", "test_")) \
            else metric in self.higher_is_better


def _numeric(value: Any) -> bool:
    if isinstance(value, torch.Tensor):
        return True
    return np.asarray(value).dtype.kind in "biuf"


class SingleModelTask(Task):
    """One ``model``, one optimizer, one loss (:meth:`train_loss`), plus the model's own
    ``regularization_loss()`` when ``training.regularisation`` is on."""

    @abstractmethod
    def train_loss(self, model: nn.Module, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """The training loss of ``model`` on a device batch."""

    def step_weight(self, batch: dict[str, torch.Tensor]) -> float:
        """How much the step counts in the epoch's mean loss: its labelled steps."""
        return float(batch.get("target_mask", batch["mask"]).sum())

    def train_step(self, ctx: StepContext, batch: dict[str, torch.Tensor]) -> StepOutput:
        """Loss (+ regularisation) of ``model``, one update of its optimizer."""
        model = ctx.modules["model"]
        regularise = self.config is None or self.config.training.regularisation
        with ctx.autocast():
            loss = self.train_loss(model, batch)
            plain = unwrap(model)
            if regularise and hasattr(plain, "regularization_loss"):
                loss = loss + plain.regularization_loss()
        ctx.optimize("model", loss)
        return StepOutput({"loss": float(loss.detach())}, self.step_weight(batch))

