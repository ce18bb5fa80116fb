"""Seed 001's lip reading stages as tasks: character LM, visual pretraining, integration.

Batches come from :mod:`affectlab.training.vsr_data` (rows of ``tokens`` and, for stages 2-3,
uint8 mouth ``video``); :meth:`VsrTask.to_device` pads them (:func:`~affectlab.training.vsr_data.collate`)
and turns the frames into the model's input: grey frames ``(x / 255 - 0.421) / 0.165`` (the
mouth-ROI statistics auto_avsr uses), or for an RGB model the grey frame in three channels with
ImageNet normalisation (SEED-NOTES A.5.13). Teacher forcing feeds ``SOS + characters`` and
predicts ``characters + EOS`` (PAD ignored).

* :class:`LanguageModelTask` (``vsr_lm``, stage 1): next-character NLL of each training
  transcript with cross-attention off (the seed trains on 128-character blocks of the joined
  corpus; here each transcript is one sequence from SOS, the prefix beam search scores). The
  unused cross-attention sublayers are frozen (they are re-initialised at integration anyway).
  Metrics: ``loss`` (nats per token), ``perplexity``.
* :class:`VisualPretrainTask` (``vsr_visual``, stage 2): the visual module -> GRU -> Linear ->
  the LM's frozen softmax layer, trained with frame-wise cross-entropy against the transcript
  padded to the frame count (:func:`~affectlab.training.vsr_data.frame_targets`; the seed's
  code) or, with ``data.vsr.stage2_loss: ctc``, CTC over the same outputs (dedicated BLANK).
  Metrics: ``loss`` and ``cer`` / ``wer`` of the frame outputs read greedily (ce: argmax per
  frame up to the first EOS; ctc: best path).
* :class:`IntegrationTask` (``vsr``, stage 3): the lip reader from stage 2's visual module and
  the LM's decoder with fresh cross-attention, teacher-forced NLL plus ``ctc_weight`` x CTC of
  the GRU head. Metrics: ``loss`` (the NLL) and ``cer`` / ``wer`` of transcripts decoded with
  ``data.vsr.decoding.val_method`` (what sweeps optimise).

Stages 2 and 3 apply the seed's ``AdaptiveTimeMask`` to the training clips.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Any

import jiwer
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from affectlab.models.vsr import LipReader, VisualPretrainModel
from affectlab.models.vsr_decoder import CharTransformerDecoder
from affectlab.models.vsr_decoding import ctc_greedy, transcribe
from affectlab.models.vsr_visual import IMAGENET_MEAN, IMAGENET_STD, AdaptiveTimeMask
from affectlab.models.vsr_vocab import BLANK_ID, EOS_ID, PAD_ID, SOS_ID
from affectlab.training.tasks.base import Batch, StepContext, StepOutput, Task

__all__ = ["GREY_MEAN", "GREY_STD", "IntegrationTask", "LanguageModelTask", "VisualPretrainTask", "VsrTask",
           "error_rates", "teacher_forcing"]

GREY_MEAN, GREY_STD = 0.421, 0.165
VISUAL_FIELDS = ("input_size", "in_channels", "backbone", "widths", "stem", "stem_time_kernel", "pool_kernels", "d_k",
                 "lpa_residual", "d_model", "d_ff", "chars")
DECODER_FIELDS = ("d_model", "d_ff", "num_layers", "num_heads", "chars")


def error_rates(refs: Sequence[str], hyps: Sequence[str], prefix: str = "") -> dict[str, float]:
    """Corpus-level ``cer`` and ``wer`` (jiwer: errors over all reference characters / words)."""
    if not refs:
        return {f"{prefix}cer": float("nan"), f"{prefix}wer": float("nan")}
    return {f"{prefix}cer": float(jiwer.cer(list(refs), list(hyps))),
            f"{prefix}wer": float(jiwer.wer(list(refs), list(hyps)))}


def teacher_forcing(tokens: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Decoder input ``SOS + chars`` and target ``chars + EOS`` (B, L + 1), PAD after each clip's end."""
    batch, width = tokens.shape
    steps = torch.arange(width + 1, device=tokens.device)[None, :]
    inp = torch.cat([torch.full((batch, 1), SOS_ID, dtype=tokens.dtype, device=tokens.device), tokens], dim=1)
    inp = inp.masked_fill(steps > lengths[:, None], PAD_ID)
    tgt = torch.cat([tokens, torch.full((batch, 1), PAD_ID, dtype=tokens.dtype, device=tokens.device)], dim=1)
    tgt = tgt.masked_fill(steps > lengths[:, None], PAD_ID)
    tgt = tgt.scatter(1, lengths[:, None], EOS_ID)
    return inp, tgt


def _nll_sum(logits: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, int]:
    """Summed cross-entropy over the non-PAD targets, and their count."""
    loss = F.cross_entropy(logits.float().flatten(0, 1), target.flatten(), ignore_index=PAD_ID, reduction="sum")
    return loss, int((target != PAD_ID).sum())


def _ctc(logits: torch.Tensor, frames: torch.Tensor, tokens: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Mean CTC loss (per target character, torch's ``mean``) of per-frame logits (B, T, V), BLANK as blank."""
    log_probs = torch.log_softmax(logits.float(), dim=-1).transpose(0, 1)  # (T, B, V)
    return F.ctc_loss(log_probs, tokens, frames, lengths, blank=BLANK_ID, zero_infinity=True)


class VsrTask(Task):
    """Shared parts of the three stages: the vocabulary, batch preparation, the pieces to start from.

    Args:
        config: The experiment (``data.vsr``, ``model.kwargs``).
        extra: ``pieces``: URIs of the runs to start from (:func:`~affectlab.training.vsr_pieces.resolve_pieces`).
    """

    metrics = ("loss", "cer", "wer")

    def __init__(self, config: Any, extra: dict[str, Any] | None = None) -> None:
        from affectlab.training.vsr_data import model_config

        super().__init__(config)
        self.model_cfg = model_config(config)
        self.vocab = self.model_cfg.vocab
        self.settings = config.data.vsr
        self.pieces: dict[str, str] = dict((extra or {}).get("pieces") or {})
        s = self.settings
        self._lm: CharTransformerDecoder | None = None
        self.time_mask = AdaptiveTimeMask(s.time_mask_window, s.time_mask_stride) if s.time_mask_window else None

    def _frames(self, video: np.ndarray, device: str) -> torch.Tensor:
        """uint8 (B, T, S, S) -> normalised float (B, T, C, S, S)."""
        x = torch.as_tensor(video, device=device).float().div_(255.0)
        if self.model_cfg.in_channels == 1:
            return ((x - GREY_MEAN) / GREY_STD).unsqueeze(2)
        mean = torch.tensor(IMAGENET_MEAN, device=device)[:, None, None]
        std = torch.tensor(IMAGENET_STD, device=device)[:, None, None]
        return (x.unsqueeze(2).expand(-1, -1, 3, -1, -1) - mean) / std

    def to_device(self, batch: Batch, device: str) -> dict[str, torch.Tensor]:
        """Padded tensors: ``tokens``, ``token_lengths`` and (video stages) ``video``, ``mask``, ``frames``."""
        from affectlab.training.vsr_data import collate

        padded = collate(batch)
        out = {"tokens": torch.as_tensor(padded["tokens"], device=device),
               "token_lengths": torch.as_tensor(padded["token_lengths"], device=device)}
        if "video" in padded:
            out["video"] = self._frames(padded["video"], device)
            out["mask"] = torch.as_tensor(padded["mask"], device=device)
            out["frames"] = torch.as_tensor(padded["frames"], device=device)
        return out

    def augment(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Training clips with the adaptive time mask (zeroed frames are the normalised zero)."""
        if self.time_mask is None:
            return batch["video"]
        return self.time_mask(batch["video"], batch["frames"])

    def texts(self, tokens: torch.Tensor, lengths: torch.Tensor) -> list[str]:
        """Reference transcripts of a batch."""
        return [self.vocab.decode(row[:n]) for row, n in zip(tokens.tolist(), lengths.tolist(), strict=True)]

    def load_lm(self) -> CharTransformerDecoder:
        """The stage-1 LM of ``pieces["lm"]`` (eval mode; read once).

        Raises:
            ConfigError: No LM run is known, or its sizes differ from this stage's.
        """
        from affectlab.errors import ConfigError
        from affectlab.training.vsr_pieces import check_sizes, load_piece

        if self._lm is None:
            if "lm" not in self.pieces:
                raise ConfigError("this stage knows no LM run (data.vsr.init / data.vsr.lm)")
            piece = load_piece(self.pieces["lm"], task="vsr_lm")
            check_sizes(piece, self.model_cfg, DECODER_FIELDS, "LM")
            self._lm = piece.model.eval()
        return self._lm


class LanguageModelTask(VsrTask):
    """Stage 1: the character LM (module docstring)."""

    metrics = ("loss", "perplexity")

    def build_modules(self, model_name: str, model_kwargs: dict[str, Any]) -> dict[str, nn.Module]:
        """The decoder with its (unused) cross-attention sublayers frozen."""
        modules = super().build_modules(model_name, model_kwargs)
        for layer in modules["model"].layers:
            layer.cross_attn.requires_grad_(False)
            layer.norm2.requires_grad_(False)
        return modules

    def _nll(self, model: nn.Module, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, int]:
        inp, tgt = teacher_forcing(batch["tokens"], batch["token_lengths"])
        return _nll_sum(model(inp, use_cross_attention=False), tgt)

    def train_step(self, ctx: StepContext, batch: dict[str, torch.Tensor]) -> StepOutput:
        """Mean next-character NLL, one Adam update."""
        with ctx.autocast():
            total, n = self._nll(ctx.modules["model"], batch)
            loss = total / max(n, 1)
        ctx.optimize("model", loss)
        return StepOutput({"loss": float(loss.detach())}, float(n))

    @torch.no_grad()
    def evaluate(self, modules: dict[str, nn.Module], batches: Iterable[Batch], device: str, *,
                 prefix: str) -> dict[str, float]:
        """Mean NLL per token and its perplexity."""
        model = modules["model"].eval()
        total, count = 0.0, 0
        for batch in batches:
            nll, n = self._nll(model, self.to_device(batch, device))
            total, count = total + float(nll), count + n
        loss = total / count if count else float("nan")
        return {f"{prefix}loss": loss, f"{prefix}perplexity": math.exp(min(loss, 50.0))}


class VisualPretrainTask(VsrTask):
    """Stage 2: visual module + GRU head + the LM's frozen softmax layer (module docstring)."""

    def build_modules(self, model_name: str, model_kwargs: dict[str, Any]) -> dict[str, nn.Module]:
        """The pretraining model with the LM's softmax layer copied in (frozen); going on from an
        earlier stage-2 run (``pieces["visual"]``, a curriculum step), all of that run's weights."""
        from affectlab.training.vsr_pieces import check_sizes, load_piece

        modules = super().build_modules(model_name, model_kwargs)
        model = modules["model"]
        if not isinstance(model, VisualPretrainModel):
            raise TypeError(f"data.task 'vsr_visual' trains a VisualPretrainModel, got {type(model).__name__}")
        if "lm" in self.pieces:
            model.load_softmax_(self.load_lm())
        if "visual" in self.pieces:
            piece = load_piece(self.pieces["visual"], task="vsr_visual")
            check_sizes(piece, self.model_cfg, VISUAL_FIELDS + ("gru_hidden", "generator_residual"),
                        "visual pretraining")
            model.load_state_dict(piece.model.state_dict())
        return modules

    def _loss(self, logits: torch.Tensor, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, float]:
        """Mean loss and its weight (frames with a target for ce, characters for ctc)."""
        from affectlab.training.vsr_data import frame_targets

        if self.settings.stage2_loss == "ctc":
            loss = _ctc(logits, batch["frames"], batch["tokens"], batch["token_lengths"])
            return loss, float(batch["token_lengths"].sum())
        target = torch.as_tensor(frame_targets(
            batch["tokens"].cpu().numpy(), batch["token_lengths"].cpu().numpy(), batch["frames"].cpu().numpy(),
            logits.shape[1], pad=self.settings.frame_pad), device=logits.device)
        total, n = _nll_sum(logits, target)
        return total / max(n, 1), float(n)

    def train_step(self, ctx: StepContext, batch: dict[str, torch.Tensor]) -> StepOutput:
        """Frame-wise CE (or CTC) on time-masked clips, one Adam update."""
        with ctx.autocast():
            loss, weight = self._loss(ctx.modules["model"](self.augment(batch), batch["mask"]), batch)
        ctx.optimize("model", loss)
        return StepOutput({"loss": float(loss.detach())}, weight)

    def read(self, logits: torch.Tensor, frames: torch.Tensor) -> list[str]:
        """Transcripts of per-frame logits: best-path CTC, or argmax frames up to the first EOS."""
        if self.settings.stage2_loss == "ctc":
            return [self.vocab.decode(ids) for ids in ctc_greedy(logits, frames)]
        best = logits.argmax(dim=-1).tolist()
        return [self.vocab.decode(row[:n]) for row, n in zip(best, frames.tolist(), strict=True)]

    @torch.no_grad()
    def evaluate(self, modules: dict[str, nn.Module], batches: Iterable[Batch], device: str, *,
                 prefix: str) -> dict[str, float]:
        """Mean loss and the CER / WER of the greedily read frame outputs."""
        model = modules["model"].eval()
        total, weight, refs, hyps = 0.0, 0.0, [], []
        for raw in batches:
            batch = self.to_device(raw, device)
            logits = model(batch["video"], batch["mask"])
            loss, w = self._loss(logits, batch)
            total, weight = total + float(loss) * w, weight + w
            refs += self.texts(batch["tokens"], batch["token_lengths"])
            hyps += self.read(logits, batch["frames"])
        return {f"{prefix}loss": total / weight if weight else float("nan"), **error_rates(refs, hyps, prefix)}


class IntegrationTask(VsrTask):
    """Stage 3: the lip reader, teacher-forced NLL (+ CTC auxiliary), decoded CER / WER (module docstring)."""

    def build_modules(self, model_name: str, model_kwargs: dict[str, Any]) -> dict[str, nn.Module]:
        """The lip reader with stage 2's visual module (and GRU) and the LM's decoder, fresh
        cross-attention, or going on from an earlier stage-3 run (``pieces["lipreader"]``, a
        curriculum step) all of that run's weights; without ``ctc_weight`` the CTC head (if any)
        is frozen (it gets no gradient)."""
        from affectlab.training.vsr_pieces import check_sizes, load_piece

        modules = super().build_modules(model_name, model_kwargs)
        model = modules["model"]
        if not isinstance(model, LipReader):
            raise TypeError(f"data.task 'vsr' trains a LipReader, got {type(model).__name__}")
        if "lipreader" in self.pieces:
            piece = load_piece(self.pieces["lipreader"], task="vsr")
            fields = VISUAL_FIELDS + DECODER_FIELDS + ("gru_hidden", "generator_residual", "ctc_head")
            check_sizes(piece, self.model_cfg, tuple(dict.fromkeys(fields)), "lip reading")
            model.load_state_dict(piece.model.state_dict())
        else:
            visual = None
            if "visual" in self.pieces:
                piece = load_piece(self.pieces["visual"], task="vsr_visual")
                fields = VISUAL_FIELDS + (("gru_hidden", "generator_residual") if model.generator is not None else ())
                check_sizes(piece, self.model_cfg, fields, "visual pretraining")
                visual = piece.model
            model.load_pieces(visual=visual, lm=self.load_lm() if "lm" in self.pieces else None)
        if model.generator is not None and self.settings.ctc_weight == 0:
            model.generator.requires_grad_(False)
        return modules

    def _losses(self, model: nn.Module, batch: dict[str, torch.Tensor], video: torch.Tensor,
                ) -> tuple[torch.Tensor, int, torch.Tensor | None]:
        """Summed NLL, target count and (with ``ctc_weight``) the mean CTC loss."""
        inp, tgt = teacher_forcing(batch["tokens"], batch["token_lengths"])
        out = model(video, batch["mask"], inp)
        nll, n = _nll_sum(out.logits, tgt)
        ctc = None
        if self.settings.ctc_weight > 0 and out.ctc_logits is not None:
            ctc = _ctc(out.ctc_logits, batch["frames"], batch["tokens"], batch["token_lengths"])
        return nll, n, ctc

    def train_step(self, ctx: StepContext, batch: dict[str, torch.Tensor]) -> StepOutput:
        """``(1 - w) NLL + w CTC`` on time-masked clips, one Adam update; logs ``loss``, ``nll``, ``ctc``."""
        w = self.settings.ctc_weight
        with ctx.autocast():
            total, n, ctc = self._losses(ctx.modules["model"], batch, self.augment(batch))
            nll = total / max(n, 1)
            loss = nll if ctc is None else (1 - w) * nll + w * ctc
        ctx.optimize("model", loss)
        losses = {"loss": float(loss.detach()), "nll": float(nll.detach())}
        if ctc is not None:
            losses["ctc"] = float(ctc.detach())
        return StepOutput(losses, float(n))

    def decode(self, model: LipReader, batch: dict[str, torch.Tensor], method: str,
               lm: CharTransformerDecoder | None = None) -> list[Any]:
        """Hypotheses of a device batch: ``greedy``, ``beam`` or ``beam_lm`` (settings of ``data.vsr.decoding``)."""
        d = self.settings.decoding
        return transcribe(model, batch["video"], batch["mask"], vocab=self.vocab,
                          method="greedy" if method == "greedy" else "beam", beam_width=d.beam_width, lm=lm,
                          lm_weight=d.lm_weight if method == "beam_lm" else 0.0, length_penalty=d.length_penalty,
                          extra_steps=d.extra_steps, ctc_weight=d.ctc_weight)

    @torch.no_grad()
    def evaluate(self, modules: dict[str, nn.Module], batches: Iterable[Batch], device: str, *,
                 prefix: str) -> dict[str, float]:
        """Teacher-forced NLL per token and the CER / WER of ``decoding.val_method`` transcripts."""
        model = modules["model"].eval()
        method = self.settings.decoding.val_method
        lm = self.load_lm().to(device) if method == "beam_lm" else None
        total, count, refs, hyps = 0.0, 0, [], []
        for raw in batches:
            batch = self.to_device(raw, device)
            nll, n, _ = self._losses(model, batch, batch["video"])
            total, count = total + float(nll), count + n
            refs += self.texts(batch["tokens"], batch["token_lengths"])
            hyps += [h.text for h in self.decode(model, batch, method, lm)]
        return {f"{prefix}loss": total / count if count else float("nan"), **error_rates(refs, hyps, prefix)}
