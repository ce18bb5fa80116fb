"""Seed 001's visual module: per-frame ResNet taps -> LPA per scale -> WDA -> post-FFN (SEED-NOTES A.2.1-A.2.4).

``VisualModule.forward(video (B, T, C, H, W), mask (B, T)) -> MC (B, T, d_model)``, the
"multi-motion-informed context". Shapes for the ``paper`` size (224x224x3, ResNet-50,
d_model 1024) in the comments below as ``[paper: ...]``.

* ``FrameResNet`` runs a 2D ResNet on every valid frame and returns five taps: the stem (after
  its max-pool) and ``layer1..4`` (``[paper: (N, 64, 56, 56), (N, 256, 56, 56), (N, 512, 28,
  28), (N, 1024, 14, 14), (N, 2048, 7, 7)]``, N = valid frames). Backbones: ``resnet18``,
  ``resnet34``, ``resnet50`` (the seed's; torchvision's v1.5 layout, stride on the 3x3 conv) and
  ``tiny`` (one basic block per stage with configurable widths, for CPU). Padded frames never
  enter the ResNet, so batch-norm statistics see real frames only. ``stem="3d"`` replaces the
  first conv by a 3D conv with a temporal kernel (the seed's prose "3D convolution",
  ``filter_width = 5``; A.5.1): an option, the seed's code is 2D.
* ``LocalPoolAttention`` (LPA): per frame ``MaxPool2d(kernel = stride)`` -> flatten -> Linear to
  d_model; then over time: + sinusoidal positions -> LayerNorm -> single-head scaled dot-product
  attention (W^Q, W^K: d_model -> d_k, W^V: d_model -> d_model; padded frames are masked as
  keys) -> + residual (the design's ``LPA_i = Res_i + x``; the code has none; a flag, A.5.3).
  Pool kernels are the seed's (1,1),(4,4),(2,4),(2,2),(1,1) at 224 input, scaled with the input
  (:func:`lpa_pool_kernels`).
* WDA: ``(sum_i lambda_i LPA_i) W_out`` with learnable lambda initialised to 1; post-FFN
  ``Linear(d_model, d_ff) -> ReLU -> Linear(d_ff, d_model)``.

Inputs are expected already normalised (ImageNet mean/std for the paper's RGB frames,
:data:`IMAGENET_MEAN`, :data:`IMAGENET_STD`). :func:`adaptive_time_mask` is the seed's
``AdaptiveTimeMask`` augmentation.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from affectlab.errors import ConfigError

__all__ = [
    "BACKBONES", "IMAGENET_MEAN", "IMAGENET_STD", "PAPER_POOL_KERNELS", "STEMS", "AdaptiveTimeMask", "FrameResNet",
    "LocalPoolAttention", "VisualModule", "adaptive_time_mask", "lengths_to_mask", "lpa_pool_kernels",
    "sinusoidal_positions", "tap_sizes",
]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
PAPER_INPUT = 224
PAPER_POOL_KERNELS: tuple[tuple[int, int], ...] = ((1, 1), (4, 4), (2, 4), (2, 2), (1, 1))
"""LPA max-pool kernels of the five taps at 224x224 input (the seed's ``CombinedModelWithWDA``)."""

# backbone -> (block kind, blocks per stage); widths of the standard ResNets: stem 64, planes 64..512
BACKBONES: dict[str, tuple[str, tuple[int, int, int, int]]] = {
    "resnet18": ("basic", (2, 2, 2, 2)),
    "resnet34": ("basic", (3, 4, 6, 3)),
    "resnet50": ("bottleneck", (3, 4, 6, 3)),
    "tiny": ("basic", (1, 1, 1, 1)),
}
STANDARD_WIDTHS = (64, 64, 128, 256, 512)
STEMS = ("2d", "3d")
_NEG = -1e9  # finite "minus infinity" for masked attention keys


def lengths_to_mask(lengths: torch.Tensor, steps: int) -> torch.Tensor:
    """Left-aligned valid-step mask (B, steps) bool from lengths (B,)."""
    return torch.arange(steps, device=lengths.device)[None, :] < lengths[:, None]


def sinusoidal_positions(steps: int, dim: int, *, device: torch.device | None = None,
                         dtype: torch.dtype | None = None) -> torch.Tensor:
    """The seed's sinusoidal encoding (steps, dim): sin on even, cos on odd features (dim even)."""
    position = torch.arange(steps, device=device, dtype=torch.float32)[:, None]  # (T, 1)
    div = torch.exp(torch.arange(0, dim, 2, device=device, dtype=torch.float32) * (-math.log(10000.0) / dim))
    pe = torch.zeros(steps, dim, device=device, dtype=torch.float32)
    pe[:, 0::2] = torch.sin(position * div)
    pe[:, 1::2] = torch.cos(position * div)
    return pe.to(dtype or torch.get_default_dtype())


def tap_sizes(height: int, width: int) -> list[tuple[int, int]]:
    """Spatial (h, w) of the five taps for an input frame: /4, /4, /8, /16, /32 (each halving rounds up)."""
    def half(n: int) -> int:
        return (n + 1) // 2

    h, w = half(half(height)), half(half(width))  # stem conv (stride 2) and max-pool (stride 2)
    sizes = [(h, w), (h, w)]
    for _ in range(3):
        h, w = half(h), half(w)
        sizes.append((h, w))
    return sizes


def lpa_pool_kernels(height: int, width: int) -> list[tuple[int, int]]:
    """LPA pool kernels for ``height x width`` input: the seed's 224 kernels scaled by size / 224.

    Each kernel side is ``round(k * size / 224)``, at least 1 and at most the tap's side, so the
    pooled grid stays near the paper's (56x56, 14x14, 14x7, 7x7, 7x7) where the input allows:
    224 -> (1,1),(4,4),(2,4),(2,2),(1,1); 448 -> doubled; 32 -> all (1, 1).
    """
    kernels = []
    for (kh, kw), (th, tw) in zip(PAPER_POOL_KERNELS, tap_sizes(height, width), strict=True):
        sides = [min(max(1, math.floor(k * size / PAPER_INPUT + 0.5)), tap)
                 for k, size, tap in ((kh, height, th), (kw, width, tw))]
        kernels.append((sides[0], sides[1]))
    return kernels


class _Block(nn.Module):
    """Residual block: ``basic`` (two 3x3 convs) or ``bottleneck`` (1x1, 3x3 with the stride, 1x1 to 4x)."""

    def __init__(self, kind: str, in_ch: int, planes: int, stride: int) -> None:
        super().__init__()
        out_ch = planes * (4 if kind == "bottleneck" else 1)
        if kind == "basic":
            convs = [nn.Conv2d(in_ch, planes, 3, stride, 1, bias=False), nn.BatchNorm2d(planes), nn.ReLU(inplace=True),
                     nn.Conv2d(planes, planes, 3, 1, 1, bias=False), nn.BatchNorm2d(planes)]
        else:
            convs = [nn.Conv2d(in_ch, planes, 1, bias=False), nn.BatchNorm2d(planes), nn.ReLU(inplace=True),
                     nn.Conv2d(planes, planes, 3, stride, 1, bias=False), nn.BatchNorm2d(planes), nn.ReLU(inplace=True),
                     nn.Conv2d(planes, out_ch, 1, bias=False), nn.BatchNorm2d(out_ch)]
        self.body = nn.Sequential(*convs)
        self.shortcut = nn.Identity()
        if stride != 1 or in_ch != out_ch:
            self.shortcut = nn.Sequential(nn.Conv2d(in_ch, out_ch, 1, stride, bias=False), nn.BatchNorm2d(out_ch))
        self.out_channels = out_ch

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(self.body(x) + self.shortcut(x))


class FrameResNet(nn.Module):
    """Per-frame 2D ResNet with five taps (stem, layer1..4); optional 3D stem.

    Args:
        backbone: One of :data:`BACKBONES`.
        in_channels: Channels of a frame (3 for RGB, 1 for grey).
        widths: ``(stem, planes1, planes2, planes3, planes4)``; the standard ResNet widths
            (64, 64, 128, 256, 512) unless given (a bottleneck's output is 4x its planes).
        stem: ``"2d"`` (per-frame conv, the seed's code) or ``"3d"``.
        stem_time_kernel: Temporal kernel of the 3D stem (odd, so T is kept).
    """

    def __init__(self, backbone: str = "resnet50", *, in_channels: int = 3, widths: Sequence[int] | None = None,
                 stem: str = "2d", stem_time_kernel: int = 5) -> None:
        super().__init__()
        kind, blocks = BACKBONES[backbone]
        stem_ch, *planes = widths or STANDARD_WIDTHS
        self.stem_kind = stem
        if stem == "3d":
            pad = stem_time_kernel // 2
            self.stem_conv: nn.Module = nn.Conv3d(in_channels, stem_ch, (stem_time_kernel, 7, 7), (1, 2, 2),
                                                  (pad, 3, 3), bias=False)
            self.stem_bn: nn.Module = nn.BatchNorm3d(stem_ch)
        else:
            self.stem_conv = nn.Conv2d(in_channels, stem_ch, 7, 2, 3, bias=False)
            self.stem_bn = nn.BatchNorm2d(stem_ch)
        self.stem_pool = nn.MaxPool2d(3, 2, 1)
        self.stages = nn.ModuleList()
        channels = [stem_ch]
        for i, (p, n) in enumerate(zip(planes, blocks, strict=True)):
            stage = []
            for j in range(n):
                stage.append(_Block(kind, channels[-1] if j == 0 else stage[-1].out_channels, p,
                                    2 if (i > 0 and j == 0) else 1))
            self.stages.append(nn.Sequential(*stage))
            channels.append(stage[-1].out_channels)
        self.tap_channels: tuple[int, ...] = tuple(channels)  # [paper: 64, 256, 512, 1024, 2048]

    def _stem(self, video: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
        """(B, T, C, H, W) -> valid frames after the stem (N, C0, H/4, W/4)."""
        if self.stem_kind == "3d":
            if mask is not None:
                video = video * mask[:, :, None, None, None].to(video.dtype)  # padded frames are zeros
            y = torch.relu(self.stem_bn(self.stem_conv(video.transpose(1, 2)))).transpose(1, 2)  # (B, T, C0, H/2, W/2)
            frames = y.flatten(0, 1) if mask is None else y[mask]  # (N, C0, H/2, W/2)
        else:
            frames = video.flatten(0, 1) if mask is None else video[mask]  # (N, C, H, W)
            frames = torch.relu(self.stem_bn(self.stem_conv(frames)))  # (N, C0, H/2, W/2)
        return self.stem_pool(frames)  # (N, C0, H/4, W/4)

    def forward(self, video: torch.Tensor, mask: torch.Tensor | None) -> list[torch.Tensor]:
        """Taps of the valid frames of ``video`` (B, T, C, H, W) under ``mask`` (B, T) (None: all valid).

        Returns five (N, C_i, H_i, W_i), N = number of valid frames, in (b, t) order.
        """
        taps = [self._stem(video, mask)]
        for stage in self.stages:
            taps.append(stage(taps[-1]))
        return taps


class LocalPoolAttention(nn.Module):
    """LPA over one tap: pool, flatten, project to d_model, positions, LayerNorm, attention over time.

    Args:
        channels: Channels of the tap.
        tap_hw: Spatial size (h, w) of the tap.
        pool_kernel: Max-pool kernel (= stride) (kh, kw).
        d_model: Output size.
        d_k: Query/key size of the attention (16 in the seed).
        residual: Add the projected input to the attention output (the design's pseudocode).
        dropout: Dropout after adding the positions (the seed's ``PositionalEncoding``).
    """

    def __init__(self, channels: int, tap_hw: tuple[int, int], pool_kernel: tuple[int, int], *, d_model: int,
                 d_k: int = 16, residual: bool = True, dropout: float = 0.1) -> None:
        super().__init__()
        pooled = (tap_hw[0] // pool_kernel[0], tap_hw[1] // pool_kernel[1])
        self.in_features = channels * pooled[0] * pooled[1]  # [paper: 200704, 50176, 50176, 50176, 100352]
        self.pool = nn.MaxPool2d(pool_kernel, stride=pool_kernel)
        self.proj = nn.Linear(self.in_features, d_model)  # W^input
        self.dropout = nn.Dropout(dropout)
        self.norm = nn.LayerNorm(d_model)
        self.w_q = nn.Linear(d_model, d_k, bias=False)
        self.w_k = nn.Linear(d_model, d_k, bias=False)
        self.w_v = nn.Linear(d_model, d_model, bias=False)
        self.d_k, self.residual = d_k, residual

    def forward(self, frames: torch.Tensor, mask: torch.Tensor | None, shape: tuple[int, int]) -> torch.Tensor:
        """Valid frames' tap (N, C, h, w), mask (B, T) (None: all valid), shape (B, T) -> (B, T, d_model).

        Padded frames are masked as keys and their outputs are zero.
        """
        z = self.proj(self.pool(frames).flatten(1))  # (N, d_model)
        batch, steps = shape
        if mask is None:
            seq = z.view(batch, steps, -1)  # (B, T, d)
        else:
            seq = z.new_zeros(batch, steps, z.shape[1]).masked_scatter(mask[..., None], z)  # (B, T, d)
        res = self.dropout(seq + sinusoidal_positions(steps, z.shape[1], device=z.device, dtype=z.dtype))
        h = self.norm(res)
        scores = self.w_q(h) @ self.w_k(h).transpose(1, 2) / math.sqrt(self.d_k)  # (B, T, T)
        if mask is not None:
            scores = scores.masked_fill(~mask[:, None, :], _NEG)
        out = torch.softmax(scores, dim=-1) @ self.w_v(h)  # (B, T, d)
        if self.residual:
            out = out + res
        return out if mask is None else out * mask[..., None].to(out.dtype)


class VisualModule(nn.Module):
    """Frames (B, T, C, H, W) -> multi-motion context (B, T, d_model): ResNet taps, LPA x5, WDA, post-FFN.

    Args:
        input_size: Frame height and width (square frames).
        in_channels: Channels per frame.
        backbone: One of :data:`BACKBONES`.
        widths: ResNet widths (see :class:`FrameResNet`).
        d_model: Output size (the decoder's d_model).
        d_ff: Hidden size of the post-FFN.
        d_k: LPA query/key size.
        pool_kernels: Five LPA pool kernels; scaled from the seed's by :func:`lpa_pool_kernels` if None.
        lpa_residual: LPA residual flag.
        dropout: LPA positional dropout.
        stem, stem_time_kernel: See :class:`FrameResNet`.
    """

    def __init__(self, *, input_size: int, in_channels: int, backbone: str, widths: Sequence[int] | None, d_model: int,
                 d_ff: int, d_k: int = 16, pool_kernels: Sequence[tuple[int, int]] | None = None,
                 lpa_residual: bool = True, dropout: float = 0.1, stem: str = "2d", stem_time_kernel: int = 5) -> None:
        super().__init__()
        self.input_size, self.in_channels, self.d_model = input_size, in_channels, d_model
        self.resnet = FrameResNet(backbone, in_channels=in_channels, widths=widths, stem=stem,
                                  stem_time_kernel=stem_time_kernel)
        kernels = list(pool_kernels) if pool_kernels is not None else lpa_pool_kernels(input_size, input_size)
        self.pool_kernels = [tuple(k) for k in kernels]
        self.lpa = nn.ModuleList(
            LocalPoolAttention(c, hw, k, d_model=d_model, d_k=d_k, residual=lpa_residual, dropout=dropout)
            for c, hw, k in zip(self.resnet.tap_channels, tap_sizes(input_size, input_size), self.pool_kernels,
                                strict=True)
        )
        self.wda_lambda = nn.Parameter(torch.ones(len(self.lpa)))  # lambda_i, init 1
        self.wda_out = nn.Linear(d_model, d_model)  # W^output
        self.ffn = nn.Sequential(nn.Linear(d_model, d_ff), nn.ReLU(), nn.Linear(d_ff, d_model))  # post-FFN

    def forward(self, video: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """MC (B, T, d_model) of ``video`` (B, T, C, H, W) [paper: (B, T, 3, 224, 224)], zero at padded frames.

        Args:
            video: Normalised frames.
            mask: Valid frames (B, T) bool, left-aligned; all frames if None.

        Raises:
            ValueError: ``video`` or ``mask`` has the wrong shape, or no frame is valid.
        """
        expected = (self.in_channels, self.input_size, self.input_size)
        if video.dim() != 5 or tuple(video.shape[2:]) != expected:
            raise ValueError(f"visual module expects video (B, T, {', '.join(map(str, expected))}), "
                             f"got {tuple(video.shape)}")
        if mask is not None and (mask.shape != video.shape[:2] or mask.dtype != torch.bool):
            raise ValueError(f"mask must be bool {tuple(video.shape[:2])}, got {mask.dtype} {tuple(mask.shape)}")
        if mask is not None and not bool(mask.any()):
            raise ValueError("visual module got a batch with no valid frame (mask is all False)")
        shape = (video.shape[0], video.shape[1])
        taps = self.resnet(video, mask)
        lpa = torch.stack([block(tap, mask, shape) for block, tap in zip(self.lpa, taps, strict=True)])  # (5, B, T, d)
        wda = self.wda_out((self.wda_lambda[:, None, None, None] * lpa).sum(dim=0))  # (B, T, d)
        mc = self.ffn(wda)  # (B, T, d)
        return mc if mask is None else mc * mask[..., None].to(mc.dtype)


def adaptive_time_mask(x: torch.Tensor, window: int, stride: int, *,
                       generator: torch.Generator | None = None) -> torch.Tensor:
    """The seed's ``AdaptiveTimeMask`` on one clip ``x`` (T, ...): a copy with random time spans zeroed.

    As the seed's code: ``n = int((T + stride - 0.1) // stride)`` pairs ``(t, span)`` are drawn
    from ``[0, window)``; for each, ``start`` is drawn from ``[0, T - t)`` (skipped when
    ``T - t <= 0``), nothing happens when ``t == 0``, and frames ``start : start + span`` are
    zeroed: the zeroed length is the *second* draw (SEED-NOTES A.5.16). The seed gives no window
    or stride (auto_avsr uses window 10, stride 25 at 25 fps).

    Raises:
        ConfigError: ``window`` or ``stride`` below 1.
    """
    for key, value in (("window", window), ("stride", stride)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"adaptive_time_mask: {key}={value!r}: must be an integer >= 1")
    cloned = x.clone()
    length = cloned.shape[0]
    n_mask = int((length + stride - 0.1) // stride)
    draws = torch.randint(0, window, (n_mask, 2), generator=generator).tolist()
    for t, span in draws:
        if length - t <= 0:
            continue
        start = int(torch.randint(0, length - t, (1,), generator=generator))
        if t == 0:
            continue
        cloned[start:start + span] = 0
    return cloned


class AdaptiveTimeMask(nn.Module):
    """:func:`adaptive_time_mask` per clip of a padded batch (B, T, ...) over its valid frames."""

    def __init__(self, window: int, stride: int) -> None:
        super().__init__()
        adaptive_time_mask(torch.zeros(1), window, stride)  # validates the options
        self.window, self.stride = window, stride

    def forward(self, video: torch.Tensor, lengths: torch.Tensor, *,
                generator: torch.Generator | None = None) -> torch.Tensor:
        """Masked copy of ``video`` (B, T, ...); clip b is masked within its first ``lengths[b]`` frames."""
        out = video.clone()
        for b, n in enumerate(lengths.tolist()):
            out[b, :n] = adaptive_time_mask(video[b, :n], self.window, self.stride, generator=generator)
        return out
