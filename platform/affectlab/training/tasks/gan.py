"""Seed 002's categorical GAN (``data.task: gan_au | gan_va | gan_au_va``): labels, losses, schedule, metrics.

The discriminator (``models/gan.py``, Table 3.10) predicts the labels of a face crop plus a
real/fake node (RF, fake = 1); the generator (Table 3.11) maps U[-1, 1] noise to a crop.
Column order of the discriminator's logits: ``au`` [AU x n, RF]; ``va`` [V, A, RF];
``au_va`` [V, A, AU x n, RF] (see :class:`~affectlab.models.gan.CategoricalDiscriminator`).

Per training iteration ``i`` (0-based, counted over the whole run, :attr:`StepContext.iteration`)
exactly one network is stepped (SEED-NOTES C.3, :func:`steps_discriminator`):

* ``i % (update_rate + 1) == 0`` -> **discriminator**: one forward of ``D`` over the real batch
  and a generated batch concatenated (one DDP forward per backward; batch norm sees both halves
  together), targets :func:`real_targets` ``[y, 0]`` and :func:`fake_targets`
  ``[(1 - alpha)/n ..., alpha]`` (``alpha`` = ``data.gan.label_smoothing``); the generator runs
  under ``no_grad``;
* otherwise -> **generator**: :func:`generator_loss` = ``mean(log D_rf(fake))`` written as
  ``mean(logsigmoid(rf_logit))`` (finite for any logit) + :func:`recon_weight` ``(step)`` ·
  ``mean(Huber(real_batch, fake_batch))``. What is "reconstructed" (SEED-NOTES C.3): the seed compares
  the generated batch with the *real batch of the same iteration, position by position* (image ``b``
  of the fake batch against image ``b`` of the real batch, which are unrelated draws), so it is an
  early pull of the generator towards the data's pixel statistics, not a reconstruction of a given
  image; the weight ``(1500 - step)/1500 * 10`` falls to 0 at step 1500 and stays there. ``step``
  is the global iteration. The discriminator is used through its *plain* module (not its DDP
  wrapper) in this step: its parameters receive gradients that are never used (its optimizer
  clears them before its own step) and no DDP reducer is expecting them, so no unused-parameter
  check and no all-reduce is triggered; every rank follows the same schedule (it depends on the
  iteration only), so collectives stay matched.

Discriminator loss per image (real and fake alike, the D loss is the mean of both):

* ``gan_au``: mean over the AU columns of sigmoid CE + sigmoid CE of RF (SEED-NOTES: "broadcast");
* ``gan_va``: mean of the V and A losses (``va_loss``: ``mse`` or ``ccc`` = ``1 - CCC`` over the
  batch) + sigmoid CE of RF;
* ``gan_au_va``: ``w_va * L_va + w_au * L_au + w_rf * L_rf`` with equal weights 1/3
  (``loss_weights: equal``) or the "ponderated" 0.27 / 0.40 / 0.33 (:data:`PONDERATED`).

Missing labels (NaN VA, -1 AU) are masked out of the real-image label losses.

Optimizers: Adam(beta1 0.5) for both, ``lr_G = training.lr``, ``lr_D = training.lr / 2``;
gradients clipped to norm ``training.grad_clip`` or, when that is unset, ``data.gan.grad_clip`` (20).

Metrics (:meth:`GanTask.evaluate`, real images of the evaluated part, D in eval mode): per AU
``au_f1_<AU>``, ``au_precision_<AU>``, ``au_recall_<AU>``, ``au_accuracy_<AU>`` (threshold 0.5 on the
sigmoid), ``au_mean_f1``, ``au_mean_accuracy``, ``au_score`` (their mean); ``ccc_valence``,
``ccc_arousal``, ``ccc_mean``, ``mse_valence``, ``mse_arousal``; ``real_pct`` (share of real images
whose RF probability is below 0.5, in [0, 1]); ``loss`` (the D loss on the real images).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from affectlab.errors import ConfigError
from affectlab.models.gan import sample_noise
from affectlab.training.tasks.base import Batch, StepContext, StepOutput, Task, as_tensor, unwrap

__all__ = ["GAN_TASKS", "PONDERATED", "GanTask", "ccc", "ccc_loss", "d_label_loss", "fake_targets",
           "generator_loss", "real_targets", "recon_weight", "steps_discriminator"]

GAN_TASKS = {"gan_au": "au", "gan_va": "va", "gan_au_va": "au_va"}
"""``data.task`` -> discriminator head."""

PONDERATED = {"va": 0.27, "au": 0.40, "rf": 0.33}
"""The seed's "ponderated" AU+VA loss weights (SEED-NOTES C.3)."""

EQUAL = {"va": 1 / 3, "au": 1 / 3, "rf": 1 / 3}
VA_LOSSES = ("mse", "ccc")
WEIGHTINGS = ("equal", "ponderated")


def steps_discriminator(iteration: int, update_rate: int) -> bool:
    """Whether iteration ``iteration`` (0-based) steps the discriminator: ``iteration % (update_rate + 1) == 0``.

    Raises:
        ConfigError: ``update_rate`` below 0 (names ``training.update_rate``).
    """
    if not isinstance(update_rate, int) or update_rate < 0:
        raise ConfigError(f"training.update_rate={update_rate!r}: must be an integer >= 0")
    return iteration % (update_rate + 1) == 0


def recon_weight(step: int, horizon: int = 1500, scale: float = 10.0) -> float:
    """``max(0, (horizon - step) / horizon) * scale``: the annealed reconstruction weight (10 at 0, 0 from 1500)."""
    return max(0.0, (horizon - step) / horizon) * scale


def real_targets(labels: torch.Tensor) -> torch.Tensor:
    """``[y, 0]``: the real images' targets ``(B, n + 1)`` from their labels ``(B, n)``."""
    return torch.cat([labels, torch.zeros_like(labels[:, :1])], dim=1)


def fake_targets(batch_size: int, n: int, alpha: float, *, device: Any = None,
                 dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """``[(1 - alpha)/n ... (n times), alpha]`` for every generated image: ``(batch_size, n + 1)``.

    Raises:
        ConfigError: ``alpha`` outside [0, 1] (names ``data.gan.label_smoothing``).
    """
    if not 0.0 <= alpha <= 1.0:
        raise ConfigError(f"data.gan.label_smoothing={alpha!r}: must be in [0, 1]")
    row = torch.full((n + 1,), (1.0 - alpha) / n if n else 0.0, device=device, dtype=dtype)
    row[-1] = alpha
    return row.expand(batch_size, n + 1).clone()


def generator_loss(rf_logit: torch.Tensor) -> torch.Tensor:
    """``mean(log D_rf(fake))`` in its stable form ``mean(logsigmoid(logit))`` (RF = 1 means fake;
    the generator lowers it by making D call its images real)."""
    return F.logsigmoid(rf_logit).mean()


def ccc(pred: torch.Tensor, true: torch.Tensor) -> torch.Tensor:
    """Lin's concordance correlation ``2 cov / (var_p + var_t + (mean_p - mean_t)^2)`` (population moments)."""
    mp, mt = pred.mean(), true.mean()
    vp, vt = ((pred - mp) ** 2).mean(), ((true - mt) ** 2).mean()
    cov = ((pred - mp) * (true - mt)).mean()
    return 2 * cov / (vp + vt + (mp - mt) ** 2 + 1e-12)


def ccc_loss(pred: torch.Tensor, true: torch.Tensor) -> torch.Tensor:
    """``1 - CCC`` over the batch (one column)."""
    return 1.0 - ccc(pred, true)


def _masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    mask = mask.to(values.dtype)
    return (values * mask).sum() / mask.sum().clamp_min(1.0)


def d_label_loss(parts: dict[str, torch.Tensor], targets: dict[str, torch.Tensor], masks: dict[str, torch.Tensor],
                 *, va_loss: str, weights: dict[str, float]) -> torch.Tensor:
    """The discriminator's loss of one half (real or fake) of a batch.

    Args:
        parts: Logits by part (``va`` (B, 2), ``au`` (B, n), ``rf`` (B,)).
        targets: Targets by part, same shapes.
        masks: Bool masks of labelled entries for ``va`` / ``au`` (same shapes as the targets).
        va_loss: ``mse`` or ``ccc`` (``1 - CCC`` per column over the batch).
        weights: ``{"va", "au", "rf"}`` weights; the single-label heads use weight 1 for their labels
            and RF (the seed's "label loss + RF CE"), the ``au_va`` head the given weights.
    """
    terms: dict[str, torch.Tensor] = {"rf": F.binary_cross_entropy_with_logits(parts["rf"], targets["rf"])}
    if "au" in parts:
        ce = F.binary_cross_entropy_with_logits(parts["au"], targets["au"], reduction="none")
        terms["au"] = _masked_mean(ce, masks["au"])
    if "va" in parts:
        cols = []
        for k in range(2):
            m = masks["va"][:, k]
            p, t = parts["va"][:, k][m], targets["va"][:, k][m]
            if p.numel() == 0:
                cols.append(parts["va"].sum() * 0.0)
            elif va_loss == "ccc":
                cols.append(ccc_loss(p, t) if p.numel() > 1 else ((p - t) ** 2).mean())
            else:
                cols.append(((p - t) ** 2).mean())
        terms["va"] = (cols[0] + cols[1]) / 2
    if "au" in parts and "va" in parts:
        return sum(weights[k] * v for k, v in terms.items())  # type: ignore[return-value]
    return sum(terms.values())  # type: ignore[return-value]


def _f1_parts(pred: np.ndarray, true: np.ndarray) -> tuple[float, float, float, float]:
    tp = float(np.sum(pred & true))
    fp = float(np.sum(pred & ~true))
    fn = float(np.sum(~pred & true))
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    accuracy = float(np.mean(pred == true)) if len(true) else 0.0
    return f1, precision, recall, accuracy


def _np_ccc(p: np.ndarray, t: np.ndarray) -> float:
    if len(p) < 2:
        return 0.0
    mp, mt = p.mean(), t.mean()
    denom = p.var() + t.var() + (mp - mt) ** 2
    return float(2 * np.mean((p - mp) * (t - mt)) / denom) if denom > 0 else 0.0


class GanTask(Task):
    """Alternating categorical-GAN training (see the module docstring).

    Args:
        head: ``au``, ``va`` or ``au_va``.
        aus: AU names of the ``au`` columns in order.
        config: The experiment (``training.update_rate``, ``data.gan``), or None for the defaults.
        label_smoothing, va_loss, loss_weights, grad_clip, recon_steps, recon_scale, update_rate:
            Override the config's values (tests, no config).
    """

    metrics = ("loss", "au_mean_f1", "au_mean_accuracy", "au_score", "real_pct", "ccc_valence", "ccc_arousal",
               "ccc_mean", "mse_valence", "mse_arousal")
    higher_is_better = frozenset({"au_mean_f1", "au_mean_accuracy", "au_score", "real_pct", "ccc_valence",
                                  "ccc_arousal", "ccc_mean"})

    def __init__(self, head: str, aus: tuple[str, ...] = (), config: Any = None, *, label_smoothing: float | None = None,
                 va_loss: str | None = None, loss_weights: str | None = None, grad_clip: float | None = None,
                 recon_steps: int | None = None, recon_scale: float | None = None,
                 update_rate: int | None = None) -> None:
        super().__init__(config)
        s = getattr(getattr(config, "data", None), "gan", None)
        pick = lambda value, key, default: value if value is not None else (getattr(s, key) if s is not None else default)  # noqa: E731
        self.head = head
        self.aus = tuple(aus)
        self.alpha = float(pick(label_smoothing, "label_smoothing", 0.9))
        self.va_loss = pick(va_loss, "va_loss", "mse")
        weighting = pick(loss_weights, "loss_weights", "equal")
        self.recon_steps = int(pick(recon_steps, "recon_steps", 1500))
        self.recon_scale = float(pick(recon_scale, "recon_weight", 10.0))
        default_rate = config.training.update_rate if config is not None else 1
        self.update_rate = update_rate if update_rate is not None else default_rate
        clip = config.training.grad_clip if config is not None else None
        self.grad_clip = grad_clip if grad_clip is not None else (clip or pick(None, "grad_clip", 20.0))
        problems = []
        if head not in GAN_TASKS.values():
            problems.append(f"head={head!r}: must be one of {', '.join(GAN_TASKS.values())}")
        if head in ("au", "au_va") and not self.aus:
            problems.append("data.gan.aus: the AU heads need at least one AU")
        if self.va_loss not in VA_LOSSES:
            problems.append(f"data.gan.va_loss={self.va_loss!r}: must be one of {', '.join(VA_LOSSES)}")
        if weighting not in WEIGHTINGS:
            problems.append(f"data.gan.loss_weights={weighting!r}: must be one of {', '.join(WEIGHTINGS)}")
        if not 0.0 <= self.alpha <= 1.0:
            problems.append(f"data.gan.label_smoothing={self.alpha!r}: must be in [0, 1]")
        if not isinstance(self.update_rate, int) or self.update_rate < 0:
            problems.append(f"training.update_rate={self.update_rate!r}: must be an integer >= 0")
        if self.recon_steps < 1:
            problems.append(f"data.gan.recon_steps={self.recon_steps!r}: must be >= 1")
        if problems:
            raise ConfigError("gan task: " + "; ".join(problems))
        self.weights = PONDERATED if weighting == "ponderated" else EQUAL
        self.n_labels = (2 if head in ("va", "au_va") else 0) + (len(self.aus) if head in ("au", "au_va") else 0)
        self._seed = int(config.training.seed) if config is not None else 0
        self.fake_va_target = getattr(s, "fake_va_target", "smoothed")
        self.supervised_only = bool(getattr(s, "supervised_only", False))

    # -- optimizers and batches -----------------------------------------------------------------
    def configure_optimizers(self, modules: dict[str, nn.Module], lr: float) -> dict[str, torch.optim.Optimizer]:
        """Adam(beta1 0.5, beta2 0.999) for each network; ``lr_G = lr``, ``lr_D = lr / 2``."""
        return {"generator": torch.optim.Adam(modules["generator"].parameters(), lr=lr, betas=(0.5, 0.999)),
                "discriminator": torch.optim.Adam(modules["discriminator"].parameters(), lr=lr / 2,
                                                  betas=(0.5, 0.999))}

    def to_device(self, batch: Batch, device: str) -> dict[str, torch.Tensor]:
        """``image`` uint8 (B, S, S, 3) -> float (B, 3, S, S) in [-1, 1]; ``au`` (B, n) 0/1/-1, ``va`` (B, 2) NaN = missing."""
        image = as_tensor(batch["image"], device, torch.float32)
        if image.dim() == 3:  # grey crops: one channel repeated
            image = image[..., None].expand(*image.shape, 3)
        out = {"image": image.permute(0, 3, 1, 2).contiguous() / 127.5 - 1.0}
        if "au" in batch:
            out["au"] = as_tensor(batch["au"], device, torch.float32)
        if "va" in batch:
            out["va"] = as_tensor(batch["va"], device, torch.float32)
        return out

    def _real_parts(self, batch: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        b = batch["image"].shape[0]
        targets = {"rf": torch.zeros(b, device=batch["image"].device)}
        masks = {}
        if self.head in ("au", "au_va"):
            au = batch["au"]
            masks["au"] = au >= 0
            targets["au"] = au.clamp_min(0.0)
        if self.head in ("va", "au_va"):
            va = batch["va"]
            masks["va"] = ~torch.isnan(va)
            targets["va"] = torch.nan_to_num(va, nan=0.0)
        return targets, masks

    def _fake_parts(self, b: int, device: Any, batch: dict[str, torch.Tensor] | None = None,
                    ) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        full = fake_targets(b, self.n_labels, self.alpha, device=device)
        targets, masks, col = {"rf": full[:, -1]}, {}, 0
        if self.head in ("va", "au_va"):
            targets["va"], col = full[:, :2], 2
            masks["va"] = torch.ones_like(targets["va"], dtype=torch.bool)
            if self.fake_va_target == "real_batch_labels" and batch is not None:  # the seed's Table 3.18 code
                va = batch["va"][:b]
                targets["va"], masks["va"] = torch.nan_to_num(va, nan=0.0), ~torch.isnan(va)
        if self.head in ("au", "au_va"):
            targets["au"] = full[:, col:col + len(self.aus)]
            masks["au"] = torch.ones_like(targets["au"], dtype=torch.bool)
        return targets, masks

    def _noise_batch(self, b: int, device: Any, iteration: int) -> torch.Tensor:
        """U[-1, 1] noise drawn from a CPU generator seeded by (``training.seed``, DDP rank,
        iteration): each rank generates different images, the draws do not depend on the device,
        and a run resumed from a checkpoint draws exactly the noise of an uninterrupted one (no
        generator state to save)."""
        dist = torch.distributed
        rank = dist.get_rank() if dist.is_available() and dist.is_initialized() else 0
        seed = int(np.random.SeedSequence([self._seed, rank, iteration]).generate_state(1, np.uint64)[0] >> 1)
        return sample_noise(b, generator=torch.Generator().manual_seed(seed)).to(device)

    def d_loss(self, disc: nn.Module, logits: torch.Tensor, batch: dict[str, torch.Tensor], n_real: int) -> torch.Tensor:
        """Mean of the real half's and the fake half's losses (``logits`` rows: real then fake)."""
        plain = unwrap(disc)
        real_t, real_m = self._real_parts(batch)
        fake_t, fake_m = self._fake_parts(logits.shape[0] - n_real, logits.device, batch)
        real = d_label_loss(plain.split_logits(logits[:n_real]), real_t, real_m, va_loss=self.va_loss,
                            weights=self.weights)
        fake = d_label_loss(plain.split_logits(logits[n_real:]), fake_t, fake_m, va_loss=self.va_loss,
                            weights=self.weights)
        return (real + fake) / 2

    def train_step(self, ctx: StepContext, batch: dict[str, torch.Tensor]) -> StepOutput:
        """One discriminator or one generator update (module docstring)."""
        if ctx.grad_clip is None:
            ctx.grad_clip = self.grad_clip
        real = batch["image"]
        b = real.shape[0]
        if self.supervised_only:  # the reference row: D on the real images' labels, every iteration
            disc = ctx.modules["discriminator"]
            with ctx.autocast():
                logits = disc(real)
                targets, masks = self._real_parts(batch)
                loss = d_label_loss(unwrap(disc).split_logits(logits), targets, masks, va_loss=self.va_loss,
                                    weights=self.weights)
            ctx.optimize("discriminator", loss)
            return StepOutput({"d_loss": float(loss.detach())}, float(b))
        z = self._noise_batch(b, real.device, ctx.iteration)
        if steps_discriminator(ctx.iteration, self.update_rate):
            with torch.no_grad():
                fake = ctx.modules["generator"](z)
            with ctx.autocast():
                logits = ctx.modules["discriminator"](torch.cat([real, fake]))
                loss = self.d_loss(ctx.modules["discriminator"], logits, batch, b)
            ctx.optimize("discriminator", loss)
            return StepOutput({"d_loss": float(loss.detach())}, float(b))
        disc = unwrap(ctx.modules["discriminator"])
        with ctx.autocast():
            fake = ctx.modules["generator"](z)
            rf = disc.split_logits(disc(fake))["rf"]
            adv = generator_loss(rf)
            weight = recon_weight(ctx.iteration, self.recon_steps, self.recon_scale)
            loss = adv + weight * F.huber_loss(fake, real, delta=1.0) if weight > 0 else adv
        ctx.optimize("generator", loss)
        return StepOutput({"g_loss": float(loss.detach()), "g_adv": float(adv.detach())}, float(b))

    # -- evaluation -----------------------------------------------------------------------------
    @torch.no_grad()
    def outputs(self, disc: nn.Module, batches: Iterable[Batch], device: str) -> dict[str, np.ndarray]:
        """Eval-mode discriminator outputs on real images: ``rf`` probabilities, ``au`` probabilities,
        ``va`` values and the labels (``au_true``, ``va_true``), concatenated over ``batches``."""
        disc = unwrap(disc)
        disc.eval()
        out: dict[str, list[np.ndarray]] = {}
        loss_sum, n = 0.0, 0
        for raw in batches:
            batch = self.to_device(raw, device)
            logits = disc(batch["image"])
            parts = disc.split_logits(logits)
            t, m = self._real_parts(batch)
            loss_sum += float(d_label_loss(parts, t, m, va_loss=self.va_loss, weights=self.weights)) * len(logits)
            n += len(logits)
            out.setdefault("rf", []).append(torch.sigmoid(parts["rf"]).cpu().numpy())
            if "au" in parts:
                out.setdefault("au", []).append(torch.sigmoid(parts["au"]).cpu().numpy())
                out.setdefault("au_true", []).append(batch["au"].cpu().numpy())
            if "va" in parts:
                out.setdefault("va", []).append(parts["va"].cpu().numpy())
                out.setdefault("va_true", []).append(batch["va"].cpu().numpy())
        result = {k: np.concatenate(v) for k, v in out.items()}
        result["loss"] = np.asarray(loss_sum / max(n, 1))
        return result

    def scores(self, out: dict[str, np.ndarray], prefix: str = "") -> dict[str, float]:
        """The metrics of :meth:`outputs` (module docstring)."""
        m: dict[str, float] = {f"{prefix}loss": float(out["loss"]),
                               f"{prefix}real_pct": float(np.mean(out["rf"] < 0.5)) if len(out.get("rf", [])) else 0.0}
        if "au" in out:
            f1s, accs = [], []
            for k, name in enumerate(self.aus):
                keep = out["au_true"][:, k] >= 0
                pred, true = out["au"][keep, k] >= 0.5, out["au_true"][keep, k] >= 0.5
                f1, p, r, a = _f1_parts(pred, true)
                m.update({f"{prefix}au_f1_{name}": f1, f"{prefix}au_precision_{name}": p,
                          f"{prefix}au_recall_{name}": r, f"{prefix}au_accuracy_{name}": a})
                f1s.append(f1)
                accs.append(a)
            m[f"{prefix}au_mean_f1"] = float(np.mean(f1s))
            m[f"{prefix}au_mean_accuracy"] = float(np.mean(accs))
            m[f"{prefix}au_score"] = (m[f"{prefix}au_mean_f1"] + m[f"{prefix}au_mean_accuracy"]) / 2
        if "va" in out:
            for k, name in enumerate(("valence", "arousal")):
                keep = ~np.isnan(out["va_true"][:, k])
                p, t = out["va"][keep, k].astype(np.float64), out["va_true"][keep, k].astype(np.float64)
                m[f"{prefix}ccc_{name}"] = _np_ccc(p, t)
                m[f"{prefix}mse_{name}"] = float(np.mean((p - t) ** 2)) if len(t) else 0.0
            m[f"{prefix}ccc_mean"] = (m[f"{prefix}ccc_valence"] + m[f"{prefix}ccc_arousal"]) / 2
        return m

    def evaluate(self, modules: dict[str, nn.Module], batches: Iterable[Batch], device: str, *,
                 prefix: str) -> dict[str, float]:
        """The metrics of the discriminator on the real images of ``batches``."""
        return self.scores(self.outputs(modules["discriminator"], batches, device), prefix)
