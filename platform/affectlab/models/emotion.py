"""Seed 001's emotion classifiers: the face CNN (``net_4``) and a small MLP over speech functionals.

``emotion_cnn`` is the seed's Keras ``net_4`` (SEED-NOTES B.2) in torch. Per block:
``Conv2d(same padding) -> BatchNorm2d -> ELU -> MaxPool2d(2)``, then ``Dropout(conv_dropout)``
on every block but the first; ``Flatten -> Linear(dense) -> BatchNorm1d -> ELU ->
Dropout(dense_dropout) -> Linear(n_classes)``. It returns logits: training applies
cross-entropy to them (the seed's ``from_logits=True`` on softmax outputs is a bug, B.5.5).
The seed's augmentation (horizontal flip, cutout) sits inside its Keras model; here it is the
training task's job, so the model is a pure function of its input.

Initialisation follows Keras: ``he_normal`` (a normal truncated at two standard deviations,
rescaled so that the kept values have std ``sqrt(2 / fan_in)``) for the convolutions and the
hidden dense layer, ``glorot_uniform`` (Keras' default, the seed sets no initializer there) for
the output layer, zero biases, batch norm gamma 1 and beta 0 with Keras' ``momentum=0.99``
(torch ``momentum=0.01``) and ``epsilon=1e-3``.

``speech_emotion_mlp`` classifies one recording from its openSMILE functionals (88 eGeMAPS
values): ``Linear -> norm -> activation -> Dropout`` per hidden layer, then ``Linear``. The
functionals have very different scales; standardise them (on the training subjects) first.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from affectlab.models.builders import _Checks

__all__ = ["EmotionCNN", "SpeechEmotionMLP", "emotion_cnn", "he_normal_", "speech_emotion_mlp"]

# Keras BatchNormalization defaults (momentum 0.99 of the running average = torch momentum 0.01).
KERAS_BN_MOMENTUM = 0.01
KERAS_BN_EPS = 1e-3
# Std of a standard normal truncated to [-2, 2] (Keras VarianceScaling divides by it).
_TRUNCATED_STD = 0.87962566103423978
MLP_NORMS = ("layer", "batch", "none")
MLP_ACTIVATIONS = ("relu", "elu")


def he_normal_(weight: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
    """Keras ``he_normal`` in place: truncated normal (+-2 std) with std ``sqrt(2 / fan_in)``.

    ``fan_in`` is ``in_features`` of a linear weight (out, in) and ``in_channels * kh * kw`` of a
    convolution weight (out, in, kh, kw).
    """
    fan_in = math.prod(weight.shape[1:])
    std = math.sqrt(2.0 / fan_in) / _TRUNCATED_STD
    with torch.no_grad():
        return nn.init.trunc_normal_(weight, mean=0.0, std=std, a=-2.0 * std, b=2.0 * std, generator=generator)


def _conv_block(in_ch: int, out_ch: int, kernel: int, dropout: float | None,
                bn_momentum: float = KERAS_BN_MOMENTUM) -> nn.Sequential:
    """(B, in_ch, S, S) -> (B, out_ch, S/2, S/2)."""
    layers: list[nn.Module] = [
        nn.Conv2d(in_ch, out_ch, kernel, padding="same"),  # (B, out_ch, S, S)
        nn.BatchNorm2d(out_ch, eps=KERAS_BN_EPS, momentum=bn_momentum),
        nn.ELU(),
        nn.MaxPool2d(2),  # (B, out_ch, S/2, S/2)
    ]
    if dropout is not None:
        layers.append(nn.Dropout(dropout))
    return nn.Sequential(*layers)


class EmotionCNN(nn.Module):
    """Seed 001's ``net_4``: conv blocks and a dense head; ``forward(x (B, C, S, S)) -> logits (B, K)``."""

    def __init__(
        self, input_size: int, in_channels: int, n_classes: int, widths: Sequence[int], kernels: Sequence[int],
        dense: int, conv_dropout: float, dense_dropout: float, bn_momentum: float = KERAS_BN_MOMENTUM,
    ) -> None:
        super().__init__()
        self.input_size, self.in_channels = input_size, in_channels
        channels = [in_channels, *widths]
        self.features = nn.Sequential(*(
            _conv_block(channels[i], channels[i + 1], kernels[i], None if i == 0 else conv_dropout, bn_momentum)
            for i in range(len(widths))
        ))
        side = input_size // 2 ** len(widths)  # 112 -> 7 with four blocks
        self.flat_dim = side * side * widths[-1]  # 7 * 7 * 256 = 12544
        self.head = nn.Sequential(
            nn.Flatten(),  # (B, flat_dim)
            nn.Linear(self.flat_dim, dense),  # (B, dense)
            nn.BatchNorm1d(dense, eps=KERAS_BN_EPS, momentum=bn_momentum),
            nn.ELU(),
            nn.Dropout(dense_dropout),
            nn.Linear(dense, n_classes),  # (B, n_classes): logits
        )
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """Keras initialisation: he_normal convs and hidden dense, glorot_uniform output, zero biases."""
        output = self.head[-1]
        for module in self.modules():
            if isinstance(module, nn.Conv2d | nn.Linear):
                if module is output:
                    nn.init.xavier_uniform_(module.weight)
                else:
                    he_normal_(module.weight)
                nn.init.zeros_(module.bias)
            elif isinstance(module, nn.BatchNorm2d | nn.BatchNorm1d):
                module.reset_parameters()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Images (B, C, S, S) float -> logits (B, n_classes)."""
        expected = (self.in_channels, self.input_size, self.input_size)
        if x.dim() != 4 or tuple(x.shape[1:]) != expected:
            raise ValueError(f"emotion_cnn expects input (B, {', '.join(map(str, expected))}), got {tuple(x.shape)}")
        return self.head(self.features(x))  # (B, C, S, S) -> (B, widths[-1], S/16, S/16) -> (B, n_classes)


class SpeechEmotionMLP(nn.Module):
    """``forward(x (B, D)) -> logits (B, K)``: ``Linear -> norm -> activation -> Dropout`` per hidden layer."""

    def __init__(
        self, input_dim: int, n_classes: int, hidden: Sequence[int], dropout: float, norm: str, activation: str,
    ) -> None:
        super().__init__()
        self.input_dim = input_dim
        layers: list[nn.Module] = []
        width = input_dim
        for units in hidden:
            layers.append(nn.Linear(width, units))  # (B, units)
            if norm == "layer":
                layers.append(nn.LayerNorm(units))
            elif norm == "batch":
                layers.append(nn.BatchNorm1d(units))
            layers += [nn.ReLU() if activation == "relu" else nn.ELU(), nn.Dropout(dropout)]
            width = units
        layers.append(nn.Linear(width, n_classes))  # (B, n_classes): logits
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Functionals (B, D) float -> logits (B, n_classes)."""
        if x.dim() != 2 or x.shape[1] != self.input_dim:
            raise ValueError(f"speech_emotion_mlp expects input (B, {self.input_dim}), got {tuple(x.shape)}")
        return self.net(x)


def _int_list(checks: _Checks, key: str, value: Any, *, allow_empty: bool) -> list[int]:
    """``value`` as a list of integers >= 1 (a problem is recorded otherwise)."""
    items = list(value) if isinstance(value, list | tuple) else None
    if items is None or (not items and not allow_empty) or any(
        isinstance(v, bool) or not isinstance(v, int) or v < 1 for v in items
    ):
        need = "a list of integers >= 1" + ("" if allow_empty else " (at least one)")
        checks.problems.append(f"{key}={value!r}: must be {need}")
        return []
    return items


def emotion_cnn(
    *, input_size: int = 112, in_channels: int = 1, n_classes: int = 7, widths: Sequence[int] = (32, 64, 128, 256),
    kernels: Sequence[int] = (5, 5, 3, 3), dense: int = 128, conv_dropout: float = 0.5, dense_dropout: float = 0.6,
    bn_momentum: float = KERAS_BN_MOMENTUM,
) -> nn.Module:
    """Seed 001's face emotion CNN (``net_4``): logits (B, n_classes) from images (B, C, S, S).

    ``bn_momentum`` is torch's (weight of the new batch in the running statistics): Keras'
    default 0.01 (``momentum=0.99``) needs a few hundred steps before evaluation-mode outputs
    mean anything, as in the seed's 362 steps per epoch; small corpora (tens of steps per epoch)
    want torch's 0.1.

    Raises:
        ConfigError: Bad options, e.g. ``input_size`` not divisible by ``2 ** len(widths)`` (16).
    """
    checks = _Checks("emotion_cnn")
    for key in ("input_size", "in_channels", "n_classes", "dense"):
        checks.positive_int(key, locals()[key])
    width_list = _int_list(checks, "widths", widths, allow_empty=False)
    kernel_list = _int_list(checks, "kernels", kernels, allow_empty=False)
    if width_list and kernel_list and len(width_list) != len(kernel_list):
        checks.problems.append(f"kernels={kernels!r}: must have one kernel size per width ({len(width_list)})")
    checks.unit_interval("conv_dropout", conv_dropout)
    checks.unit_interval("dense_dropout", dense_dropout)
    if not 0 < bn_momentum <= 1:
        checks.problems.append(f"bn_momentum={bn_momentum!r}: must be in (0, 1]")
    factor = 2 ** max(len(width_list), 1)
    if isinstance(input_size, int) and not isinstance(input_size, bool) and input_size >= 1 and input_size % factor:
        near = [n for n in (input_size // factor * factor, (input_size // factor + 1) * factor) if n > 0]
        checks.problems.append(
            f"input_size={input_size!r}: must be divisible by {factor} ({len(width_list)} blocks each halve it), "
            f"e.g. {' or '.join(map(str, near))}"
        )
    checks.done()
    return EmotionCNN(input_size, in_channels, n_classes, width_list, kernel_list, dense, float(conv_dropout),
                      float(dense_dropout), float(bn_momentum))


def speech_emotion_mlp(
    *, input_dim: int, n_classes: int = 7, hidden: Sequence[int] = (64,), dropout: float = 0.3, norm: str = "layer",
    activation: str = "relu",
) -> nn.Module:
    """Emotion of one recording from its functionals (B, input_dim), e.g. 88 eGeMAPS: logits (B, n_classes).

    ``hidden=()`` is multinomial logistic regression. ``norm``: ``layer`` (LayerNorm), ``batch``
    (BatchNorm1d; needs batches of two or more in training) or ``none``.

    Raises:
        ConfigError: Bad options (every problem at once).
    """
    checks = _Checks("speech_emotion_mlp")
    checks.positive_int("input_dim", input_dim)
    checks.positive_int("n_classes", n_classes)
    hidden_list = _int_list(checks, "hidden", hidden, allow_empty=True)
    checks.unit_interval("dropout", dropout)
    checks.choice("norm", norm, MLP_NORMS)
    checks.choice("activation", activation, MLP_ACTIVATIONS)
    checks.done()
    return SpeechEmotionMLP(input_dim, n_classes, hidden_list, float(dropout), norm, activation)
