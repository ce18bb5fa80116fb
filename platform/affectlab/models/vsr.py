"""Seed 001's lip reader: sizes, the visual-pretraining head, the full model and their builders.

Three registered models, one per training stage, all built from one :class:`VSRConfig` (a
named size, ``paper`` or ``tiny``, plus overrides) so that their shapes agree:

* ``vsr_lm`` (stage 1): :class:`~affectlab.models.vsr_decoder.CharTransformerDecoder`, trained
  as a character LM with ``use_cross_attention=False``; ``forward(tokens (B, L)) -> (B, L, V)``.
* ``vsr_visual`` (stage 2): :class:`VisualPretrainModel`, visual module -> 1-layer GRU ->
  Linear -> the decoder's softmax layer, frozen (A.2.6): ``forward(video (B, T, C, H, W), mask
  (B, T)) -> logits (B, T, V)`` for frame-wise cross-entropy (or CTC with the BLANK id).
* ``vsr_lip_reader`` (stage 3): :class:`LipReader`, visual module + decoder with fresh
  cross-attention; teacher-forced ``forward(video, mask, tokens) -> LipReaderOutput(logits (B, L,
  V), ctc_logits (B, T, V) or None)``; ``ctc_head=True`` adds the GRU generator sharing the
  decoder's softmax layer for a CTC auxiliary loss.

The token ids are :class:`~affectlab.models.vsr_vocab.CharVocab`'s (dedicated PAD / SOS / EOS /
BLANK). Sizes: ``paper`` is the seed's (ResNet-50, 224x224x3 ImageNet-normalised, d_model 1024,
6 layers, 16 heads, d_ff 4096, dropout 0.1, GRU 1024; about 660M parameters, 462M of them in
the LPA input projections); ``tiny`` (32x32 grey, a one-block-per-stage ResNet, d_model 64, 2
layers, 4 heads) trains on two CPU cores.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Sequence
from typing import Any, NamedTuple

import torch
from torch import nn

from affectlab.errors import ConfigError
from affectlab.models.builders import _Checks
from affectlab.models.vsr_decoder import CharTransformerDecoder
from affectlab.models.vsr_visual import BACKBONES, STEMS, VisualModule, tap_sizes
from affectlab.models.vsr_vocab import DEFAULT_CHARS, CharVocab

__all__ = [
    "SIZES", "FrameGenerator", "LipReader", "LipReaderOutput", "VSRConfig", "VisualPretrainModel", "vsr_config",
    "vsr_lip_reader", "vsr_lm", "vsr_visual",
]


@dataclasses.dataclass(frozen=True)
class VSRConfig:
    """Sizes of the lip reader's pieces (see :func:`vsr_config` for the meaning of each field)."""

    input_size: int
    in_channels: int
    backbone: str
    widths: tuple[int, ...] | None
    stem: str
    stem_time_kernel: int
    pool_kernels: tuple[tuple[int, int], ...] | None
    d_k: int
    lpa_residual: bool
    d_model: int
    d_ff: int
    num_layers: int
    num_heads: int
    dropout: float
    gru_hidden: int
    ctc_head: bool
    chars: str
    generator_residual: bool = False

    @property
    def vocab(self) -> CharVocab:
        """The token vocabulary of ``chars``."""
        return CharVocab(self.chars)


SIZES: dict[str, VSRConfig] = {
    "paper": VSRConfig(224, 3, "resnet50", None, "2d", 5, None, 16, True, 1024, 4096, 6, 16, 0.1, 1024, False,
                       DEFAULT_CHARS),
    "tiny": VSRConfig(32, 1, "tiny", (16, 16, 32, 48, 64), "2d", 5, None, 16, True, 64, 256, 2, 4, 0.1, 64, False,
                      DEFAULT_CHARS),
}


def _check_int_seq(checks: _Checks, key: str, value: Any, length: int) -> None:
    if not isinstance(value, list | tuple) or len(value) != length or any(
            isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in value):
        checks.problems.append(f"{key}={value!r}: must be {length} integers >= 1")


def _check_pool_kernels(checks: _Checks, cfg: VSRConfig) -> None:
    kernels = cfg.pool_kernels
    if not isinstance(kernels, list | tuple) or len(kernels) != 5:
        checks.problems.append(f"pool_kernels={kernels!r}: must be 5 (kh, kw) pairs, one per ResNet tap")
        return
    before = len(checks.problems)
    for i, kernel in enumerate(kernels):
        _check_int_seq(checks, f"pool_kernels[{i}]", kernel, 2)
    if len(checks.problems) == before:
        for i, (kernel, tap) in enumerate(zip(kernels, tap_sizes(cfg.input_size, cfg.input_size), strict=True)):
            if kernel[0] > tap[0] or kernel[1] > tap[1]:
                checks.problems.append(f"pool_kernels[{i}]={tuple(kernel)!r}: larger than tap {i}'s {tap} at "
                                       f"input_size {cfg.input_size}")


def _validate(cfg: VSRConfig, model: str) -> None:
    """Raise one ConfigError listing every bad field of ``cfg``."""
    checks = _Checks(model)
    for key in ("input_size", "in_channels", "stem_time_kernel", "d_k", "d_model", "d_ff", "num_layers", "num_heads",
                "gru_hidden"):
        checks.positive_int(key, getattr(cfg, key))
    checks.choice("backbone", cfg.backbone, tuple(BACKBONES))
    checks.choice("stem", cfg.stem, STEMS)
    checks.boolean("lpa_residual", cfg.lpa_residual)
    checks.boolean("ctc_head", cfg.ctc_head)
    checks.boolean("generator_residual", cfg.generator_residual)
    checks.unit_interval("dropout", cfg.dropout)
    if cfg.widths is not None:
        _check_int_seq(checks, "widths", cfg.widths, 5)
    elif cfg.backbone == "tiny":
        checks.problems.append("widths=None: backbone 'tiny' needs 5 widths (stem, planes1..4), "
                               "e.g. (16, 16, 32, 48, 64)")
    if isinstance(cfg.stem_time_kernel, int) and cfg.stem_time_kernel % 2 == 0:
        checks.problems.append(f"stem_time_kernel={cfg.stem_time_kernel!r}: must be odd (keeps the frame count)")
    if isinstance(cfg.d_model, int) and isinstance(cfg.num_heads, int) and cfg.num_heads >= 1 and (
            cfg.d_model % 2 or cfg.d_model % cfg.num_heads):
        checks.problems.append(f"d_model={cfg.d_model!r}: must be even and divisible by num_heads={cfg.num_heads}")
    if cfg.pool_kernels is not None and isinstance(cfg.input_size, int) and cfg.input_size >= 1:
        _check_pool_kernels(checks, cfg)
    try:
        CharVocab(cfg.chars)
    except ConfigError as exc:
        checks.problems.append(str(exc))
    checks.done()


def vsr_config(
    *, size: str = "tiny", input_size: int | None = None, in_channels: int | None = None, backbone: str | None = None,
    widths: Sequence[int] | None = None, stem: str | None = None, stem_time_kernel: int | None = None,
    pool_kernels: Sequence[Sequence[int]] | None = None, d_k: int | None = None, lpa_residual: bool | None = None,
    d_model: int | None = None, d_ff: int | None = None, num_layers: int | None = None, num_heads: int | None = None,
    dropout: float | None = None, gru_hidden: int | None = None, ctc_head: bool | None = None,
    chars: str | None = None, generator_residual: bool | None = None, _model: str = "vsr",
) -> VSRConfig:
    """The named size ``paper`` or ``tiny`` with every option that is not None overriding it.

    Options: ``input_size`` (square frame side), ``in_channels`` (3 RGB, 1 grey), ``backbone``
    (``resnet18``, ``resnet34``, ``resnet50``, ``tiny``), ``widths`` (ResNet stem and stage
    widths, 5 integers; tiny's (16, 16, 32, 48, 64), paper's None = the standard (64, 64, 128,
    256, 512)), ``stem`` (``2d`` or the optional ``3d``), ``stem_time_kernel`` (3D stem, odd),
    ``pool_kernels`` (5 LPA pool kernels;
    scaled from the seed's by the input size if None), ``d_k`` (LPA query/key size),
    ``lpa_residual``, ``d_model``, ``d_ff`` (decoder FFNs and visual post-FFN), ``num_layers``,
    ``num_heads``, ``dropout``, ``gru_hidden`` (the pretraining head's GRU), ``ctc_head`` (the lip
    reader's CTC generator), ``chars`` (vocabulary characters), ``generator_residual`` (add the
    head's input to its output, ``fc(gru(x)) + x``; not in the seed, default off: see
    :class:`FrameGenerator`).

    Raises:
        ConfigError: Unknown size, or bad values (every problem at once).
    """
    given = dict(locals())
    if size not in SIZES:
        raise ConfigError(f"model {_model!r}: size={size!r}: must be one of {', '.join(SIZES)}")
    options = {key: value for key, value in given.items() if key not in ("size", "_model") and value is not None}
    if isinstance(widths, list | tuple):
        options["widths"] = tuple(widths)
    if isinstance(pool_kernels, list | tuple):
        options["pool_kernels"] = tuple(tuple(k) if isinstance(k, list | tuple) else k for k in pool_kernels)
    cfg = dataclasses.replace(SIZES[size], **options)
    _validate(cfg, _model)
    return cfg


class FrameGenerator(nn.Module):
    """The "probability generator" before the softmax layer: 1-layer GRU -> Linear (B, T, d) -> (B, T, d).

    ``residual`` adds the input to the output (``fc(gru(x)) + x``), which the seed does not have.
    Measured on ``synth visemes`` (benchmarks/RESULTS.md): through the seed's head, CTC stays on its
    blank plateau (loss ~3.4 per character after 200 steps on single words, whatever the softmax,
    GRU direction or head learning rate), while the same model without the GRU, or with this
    residual, learns in 150-200 steps (loss 1.3-1.5).
    """

    def __init__(self, d_model: int, hidden: int, *, residual: bool = False) -> None:
        super().__init__()
        self.gru = nn.GRU(d_model, hidden, num_layers=1, batch_first=True)
        self.fc = nn.Linear(hidden, d_model)
        self.residual = residual

    def forward(self, context: torch.Tensor) -> torch.Tensor:
        """Unidirectional, so right padding never reaches the valid frames' outputs."""
        out = self.fc(self.gru(context)[0])  # (B, T, hidden) -> (B, T, d)
        return out + context if self.residual else out


def _visual_module(cfg: VSRConfig) -> VisualModule:
    return VisualModule(
        input_size=cfg.input_size, in_channels=cfg.in_channels, backbone=cfg.backbone, widths=cfg.widths,
        d_model=cfg.d_model, d_ff=cfg.d_ff, d_k=cfg.d_k, pool_kernels=cfg.pool_kernels,
        lpa_residual=cfg.lpa_residual, dropout=cfg.dropout, stem=cfg.stem, stem_time_kernel=cfg.stem_time_kernel,
    )


def _decoder(cfg: VSRConfig) -> CharTransformerDecoder:
    return CharTransformerDecoder(cfg.vocab.size, d_model=cfg.d_model, num_layers=cfg.num_layers,
                                  num_heads=cfg.num_heads, d_ff=cfg.d_ff, dropout=cfg.dropout)


class VisualPretrainModel(nn.Module):
    """Stage 2: visual module -> GRU -> Linear -> frozen softmax layer; logits (B, T, V) per frame."""

    def __init__(self, cfg: VSRConfig) -> None:
        super().__init__()
        self.config = cfg
        self.visual = _visual_module(cfg)
        self.generator = FrameGenerator(cfg.d_model, cfg.gru_hidden, residual=cfg.generator_residual)
        self.softmax = nn.Linear(cfg.d_model, cfg.vocab.size)  # a copy of the LM's ``out``: load_softmax_
        self.softmax.requires_grad_(False)

    def forward(self, video: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Frames (B, T, C, H, W) and valid mask (B, T) -> per-frame logits (B, T, V)."""
        return self.softmax(self.generator(self.visual(video, mask)))

    def load_softmax_(self, decoder: CharTransformerDecoder) -> None:
        """Copy the pretrained decoder's softmax layer (``decoder.out``) into the frozen one.

        Raises:
            ValueError: The decoder's softmax layer has another shape (other d_model or vocabulary).
        """
        src = decoder.out
        if src.weight.shape != self.softmax.weight.shape:
            raise ValueError(f"decoder softmax layer {tuple(src.weight.shape)} does not match this model's "
                             f"{tuple(self.softmax.weight.shape)} (vocabulary size, d_model)")
        with torch.no_grad():
            self.softmax.weight.copy_(src.weight)
            self.softmax.bias.copy_(src.bias)


class LipReaderOutput(NamedTuple):
    """Teacher-forced decoder logits (B, L, V) and, with a CTC head, per-frame logits (B, T, V)."""

    logits: torch.Tensor
    ctc_logits: torch.Tensor | None


class LipReader(nn.Module):
    """Stage 3 and inference: visual module + decoder (cross-attention over MC), optional CTC head."""

    def __init__(self, cfg: VSRConfig) -> None:
        super().__init__()
        self.config = cfg
        self.visual = _visual_module(cfg)
        self.decoder = _decoder(cfg)
        self.generator = FrameGenerator(cfg.d_model, cfg.gru_hidden, residual=cfg.generator_residual) \
            if cfg.ctc_head else None

    def encode(self, video: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Multi-motion context MC (B, T, d_model) of frames (B, T, C, H, W)."""
        return self.visual(video, mask)

    def ctc_logits(self, memory: torch.Tensor) -> torch.Tensor:
        """Per-frame CTC logits (B, T, V) of the context ``memory`` (B, T, d_model): the GRU generator
        and the decoder's softmax layer.

        Raises:
            ValueError: The model has no CTC head (``ctc_head: false``).
        """
        if self.generator is None:
            raise ValueError("this lip reader has no CTC head (ctc_head: false)")
        return self.decoder.out(self.generator(memory))

    def forward(self, video: torch.Tensor, mask: torch.Tensor | None, tokens: torch.Tensor) -> LipReaderOutput:
        """Teacher forcing: ``tokens`` (B, L) start with SOS; logits predict the next token at each position."""
        memory = self.visual(video, mask)  # (B, T, d)
        logits = self.decoder(tokens, memory, memory_mask=mask)  # (B, L, V)
        return LipReaderOutput(logits, None if self.generator is None else self.ctc_logits(memory))

    def load_pieces(self, *, visual: VisualPretrainModel | None = None, lm: CharTransformerDecoder | None = None,
                    reset_cross_attention: bool = True) -> None:
        """Integration: take the stage-2 visual module (and GRU generator) and the stage-1 LM.

        With ``lm``, the decoder gets its weights and then (``reset_cross_attention``) fresh
        cross-attention, as the seed's integration step.

        Raises:
            ValueError: A piece's shapes do not match this model (the torch message names the tensors).
        """
        try:
            if visual is not None:
                self.visual.load_state_dict(visual.visual.state_dict())
                if self.generator is not None:
                    self.generator.load_state_dict(visual.generator.state_dict())
            if lm is not None:
                self.decoder.load_state_dict(lm.state_dict())
        except RuntimeError as exc:
            raise ValueError(f"pretrained piece does not fit the lip reader: {exc}") from exc
        if lm is not None and reset_cross_attention:
            self.decoder.reset_cross_attention()


def vsr_lm(**options: Any) -> nn.Module:
    """Stage 1, the character LM: a :class:`CharTransformerDecoder` (options of :func:`vsr_config`).

    Raises:
        ConfigError: Bad options.
    """
    return _decoder(vsr_config(**options, _model="vsr_lm"))


def vsr_visual(**options: Any) -> nn.Module:
    """Stage 2, visual pretraining: a :class:`VisualPretrainModel` (options of :func:`vsr_config`).

    Raises:
        ConfigError: Bad options.
    """
    return VisualPretrainModel(vsr_config(**options, _model="vsr_visual"))


def vsr_lip_reader(**options: Any) -> nn.Module:
    """Stage 3 and inference: a :class:`LipReader` (options of :func:`vsr_config`).

    Raises:
        ConfigError: Bad options.
    """
    return LipReader(vsr_config(**options, _model="vsr_lip_reader"))


# The three builders take exactly vsr_config's options; the registry reads them from the signature.
_PUBLIC_OPTIONS = inspect.signature(vsr_config)
_PUBLIC_OPTIONS = _PUBLIC_OPTIONS.replace(
    parameters=[p for p in _PUBLIC_OPTIONS.parameters.values() if p.name != "_model"],
    return_annotation="nn.Module")
for _builder in (vsr_lm, vsr_visual, vsr_lip_reader):
    _builder.__signature__ = _PUBLIC_OPTIONS  # type: ignore[attr-defined]
