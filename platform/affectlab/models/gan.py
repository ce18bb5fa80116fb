"""Seed 002's GANs over face crops: the categorical GAN (Tables 3.10, 3.11) and the vanilla GAN (Table 3.9).

Plain torch; every network returns *logits* (the losses apply the sigmoid), images are
``(B, 3, S, S)`` in [-1, 1] for the categorical GAN.

>>> from affectlab.models import build_model
>>> gan = build_model("categorical_gan", head="au_va", image_size=28)
>>> z = sample_noise(4, generator=torch.Generator().manual_seed(0))  # (4, 100) in U[-1, 1]
>>> fake = gan["generator"](z)                                        # (4, 3, 28, 28) in [-1, 1]
>>> logits = gan["discriminator"](fake)                               # (4, 2 + 8 + 1)

Choices where the seed is ambiguous (SEED-NOTES C.5, "most faithful choice" each time):

* Generator size (C.5.1): Table 3.11 (kernels 2,4,4,6, strides 1,2,2,2, VALID) makes 32x32, the text
  says 28x28. Channels 384/128/64/3 and strides are kept; the kernels come from ``image_size``:
  32 -> (2, 4, 4, 6) (1->2->6->14->32), 28 -> (2, 3, 4, 6) (1->2->5->12->28).
* Discriminator flatten size (C.5.2): computed from the conv stack (4*4*256 = 4096 for 28 and 32),
  not the text's "256*1".
* Leaky ReLU (C.5.3): leak 0.2 (the text's "0.54x + 0.4|x|" has no consistent leak).
* Noise (C.5.10): U[-1, 1], reshaped to (B, 100, 1, 1).
* "SAME" padding of the 5x5 stride-2 convs: symmetric padding 2, which gives TF's output sizes
  (ceil(S/2)); TF pads one pixel less on the top/left for even inputs.
* Output heads (C.2 table): ``au`` = [AU x n, RF]; ``va`` = [V, A, RF]; ``au_va`` = [V, A, AU x n, RF];
  RF means fake = 1, real = 0. All are logits (sigmoid semantics on AU and RF, V/A linear).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from affectlab.errors import ConfigError

__all__ = [
    "GENERATOR_KERNELS", "HEADS", "NOISE_DIM", "CategoricalDiscriminator", "CategoricalGenerator",
    "VanillaDiscriminator", "VanillaGenerator", "categorical_gan", "gan_discriminator", "gan_generator",
    "sample_noise", "vanilla_gan",
]

NOISE_DIM = 100
"""Length of the generator's noise vector (seed 002, §3.2.3)."""

GENERATOR_KERNELS: dict[int, tuple[int, int, int, int]] = {32: (2, 4, 4, 6), 28: (2, 3, 4, 6)}
"""Deconv kernel sizes per supported ``image_size`` (strides 1, 2, 2, 2; no padding, i.e. VALID)."""

GENERATOR_STRIDES = (1, 2, 2, 2)
GENERATOR_CHANNELS = (384, 128, 64, 3)
DISCRIMINATOR_CHANNELS = (64, 128, 256)
HEADS = ("au", "va", "au_va")
LEAK = 0.2


def sample_noise(batch_size: int, noise_dim: int = NOISE_DIM, *, generator: torch.Generator | None = None,
                 device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> torch.Tensor:
    """Noise ``(batch_size, noise_dim)`` drawn from U[-1, 1] (seed 002: "100 random numbers between -1 and 1").

    Args:
        batch_size: Rows to draw (>= 1).
        noise_dim: Values per row (>= 1; 100 in the seed).
        generator: A ``torch.Generator`` for reproducible draws (must live on ``device``).
        device: Device of the result (the generator's device if omitted and a generator is given).
        dtype: Floating dtype of the result (torch's default if omitted).

    Raises:
        ConfigError: ``batch_size`` or ``noise_dim`` below 1.
    """
    problems = [f"{name}={value!r}: must be an integer >= 1" for name, value in
                (("batch_size", batch_size), ("noise_dim", noise_dim)) if not isinstance(value, int) or value < 1]
    if problems:
        raise ConfigError("sample_noise: " + "; ".join(problems))
    if device is None and generator is not None:
        device = generator.device
    u = torch.rand(batch_size, noise_dim, generator=generator, device=device, dtype=dtype)  # U[0, 1)
    return u * 2.0 - 1.0  # U[-1, 1)


def _check_image_size(image_size: int) -> None:
    if image_size not in GENERATOR_KERNELS:
        raise ConfigError(f"image_size={image_size!r}: not supported by the categorical GAN generator; "
                          f"supported values: {', '.join(str(s) for s in sorted(GENERATOR_KERNELS))}")


def _check_positive(**values: int) -> list[str]:
    return [f"{k}={v!r}: must be an integer >= 1" for k, v in values.items() if not isinstance(v, int) or v < 1]


class CategoricalGenerator(nn.Module):
    """Table 3.11: noise ``(B, 100)`` -> image ``(B, 3, S, S)`` in [-1, 1], ``S = image_size`` (28 or 32).

    deconv1 (k2, s1) -> 384 -> lReLU -> BN; deconv2 (k3|4, s2) -> 128 -> lReLU -> BN;
    deconv3 (k4, s2) -> 64 -> lReLU -> BN; deconv4 (k6, s2) -> 3 -> tanh. No padding (VALID).
    """

    def __init__(self, image_size: int = 28, noise_dim: int = NOISE_DIM, channels: int = 3) -> None:
        super().__init__()
        _check_image_size(image_size)
        problems = _check_positive(noise_dim=noise_dim, channels=channels)
        if problems:
            raise ConfigError("gan generator: " + "; ".join(problems))
        self.image_size, self.noise_dim = image_size, noise_dim
        widths = (*GENERATOR_CHANNELS[:-1], channels)
        layers: list[nn.Module] = []
        previous = noise_dim
        for i, (width, kernel, stride) in enumerate(zip(widths, GENERATOR_KERNELS[image_size], GENERATOR_STRIDES,
                                                        strict=True)):
            layers.append(nn.ConvTranspose2d(previous, width, kernel_size=kernel, stride=stride, padding=0))
            if i < len(widths) - 1:
                layers += [nn.LeakyReLU(LEAK), nn.BatchNorm2d(width)]  # seed order: "lrelu, batch norm"
            previous = width
        layers.append(nn.Tanh())
        # 28: (B,100,1,1) -> (B,384,2,2) -> (B,128,5,5) -> (B,64,12,12) -> (B,3,28,28)
        # 32: (B,100,1,1) -> (B,384,2,2) -> (B,128,6,6) -> (B,64,14,14) -> (B,3,32,32)
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """``z (B, noise_dim)`` -> images ``(B, channels, S, S)`` in [-1, 1]."""
        if z.dim() != 2 or z.shape[1] != self.noise_dim:
            raise ValueError(f"z: expected shape (B, {self.noise_dim}), got {tuple(z.shape)}")
        return self.net(z[:, :, None, None])


class CategoricalDiscriminator(nn.Module):
    """Table 3.10: image ``(B, 3, S, S)`` -> logits ``(B, n + 1)``, the last column real/fake (fake = 1).

    Three blocks conv 5x5 stride 2 ("SAME") -> lReLU(0.2) -> BN -> dropout(0.5), widths 64/128/256,
    then a linear layer from the flattened map (256 * ceil(S/8)^2; 4096 for S = 28 or 32) to ``n + 1``.
    Column order per head: ``au`` [AU x n_aus, RF]; ``va`` [V, A, RF]; ``au_va`` [V, A, AU x n_aus, RF].
    """

    def __init__(self, head: str = "au", n_aus: int = 8, image_size: int = 28, channels: int = 3,
                 dropout: float = 0.5) -> None:
        super().__init__()
        problems = []
        if head not in HEADS:
            problems.append(f"head={head!r}: must be one of {', '.join(HEADS)}")
        problems += _check_positive(n_aus=n_aus, image_size=image_size, channels=channels)
        if not isinstance(dropout, (int, float)) or not 0.0 <= dropout < 1.0:
            problems.append(f"dropout={dropout!r}: must be in [0, 1)")
        if problems:
            raise ConfigError("gan discriminator: " + "; ".join(problems))
        self.head, self.n_aus, self.image_size = head, n_aus, image_size
        self.n_va = 2 if head in ("va", "au_va") else 0
        self.n_au = n_aus if head in ("au", "au_va") else 0
        layers: list[nn.Module] = []
        previous, size = channels, image_size
        for width in DISCRIMINATOR_CHANNELS:
            layers += [nn.Conv2d(previous, width, kernel_size=5, stride=2, padding=2), nn.LeakyReLU(LEAK),
                       nn.BatchNorm2d(width), nn.Dropout(dropout)]
            previous, size = width, math.ceil(size / 2)
        # 28: (B,3,28,28) -> (B,64,14,14) -> (B,128,7,7) -> (B,256,4,4); 32: -> 16 -> 8 -> 4
        self.features = nn.Sequential(*layers, nn.Flatten())
        self.flat_dim = previous * size * size  # 4096 for 28 and 32
        self.n_outputs = self.n_va + self.n_au + 1
        self.fc = nn.Linear(self.flat_dim, self.n_outputs)  # (B, 4096) -> (B, n + 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x (B, C, S, S)`` -> logits ``(B, n + 1)`` (no sigmoid; V and A are linear outputs)."""
        if x.dim() != 4 or x.shape[-1] != self.image_size or x.shape[-2] != self.image_size:
            raise ValueError(f"x: expected shape (B, C, {self.image_size}, {self.image_size}), got {tuple(x.shape)}")
        return self.fc(self.features(x))

    def split_logits(self, logits: torch.Tensor) -> dict[str, torch.Tensor]:
        """Split ``(B, n + 1)`` logits into ``{"va": (B, 2), "au": (B, n_aus), "rf": (B,)}`` (absent parts omitted)."""
        parts: dict[str, torch.Tensor] = {}
        if self.n_va:
            parts["va"] = logits[:, :2]
        if self.n_au:
            parts["au"] = logits[:, self.n_va:self.n_va + self.n_au]
        parts["rf"] = logits[:, -1]
        return parts


def gan_generator(image_size: int = 28, noise_dim: int = NOISE_DIM, channels: int = 3) -> CategoricalGenerator:
    """Build the categorical GAN's generator (Table 3.11).

    Args:
        image_size: Output side, 28 (the seed's text, deconv2 kernel 3) or 32 (Table 3.11 literally).
        noise_dim: Noise length (100 in the seed).
        channels: Output channels (3: RGB, SEED-NOTES C.5.18).

    Raises:
        ConfigError: An unsupported ``image_size`` (the supported values listed) or a size below 1.
    """
    return CategoricalGenerator(image_size=image_size, noise_dim=noise_dim, channels=channels)


def gan_discriminator(head: str = "au", n_aus: int = 8, image_size: int = 28, channels: int = 3,
                      dropout: float = 0.5) -> CategoricalDiscriminator:
    """Build the categorical GAN's discriminator (Table 3.10).

    Args:
        head: ``au`` (n_aus + RF), ``va`` (V, A + RF) or ``au_va`` (V, A, n_aus + RF).
        n_aus: AU outputs (8 in the seed; 7 for Aff-Wild2, which has no AU20). Ignored by ``va``.
        image_size: Input side (any size >= 1; the flatten size is computed).
        channels: Input channels (3: RGB).
        dropout: Drop probability after each block (keep prob 0.5 in the seed).

    Raises:
        ConfigError: Unknown head (valid ones listed), sizes below 1, dropout outside [0, 1).
    """
    return CategoricalDiscriminator(head=head, n_aus=n_aus, image_size=image_size, channels=channels,
                                    dropout=dropout)


def categorical_gan(head: str = "au", n_aus: int = 8, image_size: int = 28, noise_dim: int = NOISE_DIM,
                    channels: int = 3, dropout: float = 0.5) -> nn.ModuleDict:
    """Both networks of the categorical GAN as ``{"generator", "discriminator"}`` (each with its own optimizer).

    Raises:
        ConfigError: As :func:`gan_generator` and :func:`gan_discriminator`.
    """
    return nn.ModuleDict({
        "generator": gan_generator(image_size=image_size, noise_dim=noise_dim, channels=channels),
        "discriminator": gan_discriminator(head=head, n_aus=n_aus, image_size=image_size, channels=channels,
                                           dropout=dropout),
    })


def _xavier_seed(linear: nn.Linear) -> None:
    """Seed 002's "Xavier" init: weights ~ N(0, 1 / sqrt(in_dim / 2)), biases 0."""
    with torch.no_grad():
        linear.weight.normal_(0.0, 1.0 / math.sqrt(linear.in_features / 2.0))
        linear.bias.zero_()


class VanillaGenerator(nn.Module):
    """Table 3.9: noise ``(B, 100)`` -> 128 ReLU -> ``C*S*S`` sigmoid -> image ``(B, C, S, S)`` in [0, 1]."""

    def __init__(self, image_size: int = 28, channels: int = 1, noise_dim: int = NOISE_DIM, hidden: int = 128) -> None:
        super().__init__()
        self.image_size, self.channels, self.noise_dim = image_size, channels, noise_dim
        self.hidden = nn.Linear(noise_dim, hidden)  # (B, 100) -> (B, 128)
        self.out = nn.Linear(hidden, channels * image_size * image_size)  # (B, 128) -> (B, 784)
        _xavier_seed(self.hidden)
        _xavier_seed(self.out)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """``z (B, noise_dim)`` -> images ``(B, C, S, S)`` in [0, 1] (sigmoid output, as in the seed)."""
        if z.dim() != 2 or z.shape[1] != self.noise_dim:
            raise ValueError(f"z: expected shape (B, {self.noise_dim}), got {tuple(z.shape)}")
        flat = torch.sigmoid(self.out(torch.relu(self.hidden(z))))
        return flat.view(-1, self.channels, self.image_size, self.image_size)


class VanillaDiscriminator(nn.Module):
    """Table 3.9: image ``(B, C, S, S)`` (or flat ``(B, C*S*S)``) -> 128 ReLU -> real/fake logit ``(B,)``.

    The seed's output is a sigmoid probability of *real* (real = 1, fake = 0); this returns its logit.
    """

    def __init__(self, image_size: int = 28, channels: int = 1, hidden: int = 128) -> None:
        super().__init__()
        self.in_dim = channels * image_size * image_size
        self.hidden = nn.Linear(self.in_dim, hidden)  # (B, 784) -> (B, 128)
        self.out = nn.Linear(hidden, 1)  # (B, 128) -> (B, 1)
        _xavier_seed(self.hidden)
        _xavier_seed(self.out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``x (B, C, S, S)`` or ``(B, C*S*S)`` -> logit ``(B,)`` that the image is real."""
        flat = x.reshape(x.shape[0], -1)
        if flat.shape[1] != self.in_dim:
            raise ValueError(f"x: expected {self.in_dim} values per image, got {flat.shape[1]}")
        return self.out(torch.relu(self.hidden(flat))).squeeze(1)


def vanilla_gan(image_size: int = 28, channels: int = 1, noise_dim: int = NOISE_DIM,
                hidden: int = 128) -> nn.ModuleDict:
    """The baseline vanilla GAN of Table 3.9 as ``{"generator", "discriminator"}``.

    Defaults follow the seed: 28x28 images flattened to 784 (one channel), 128 hidden ReLU units in
    each network, noise of 100 values in U[-1, 1], the seed's "Xavier" normal init
    (std ``1/sqrt(in_dim/2)``, biases 0).

    Raises:
        ConfigError: A size below 1 (every bad option named).
    """
    problems = _check_positive(image_size=image_size, channels=channels, noise_dim=noise_dim, hidden=hidden)
    if problems:
        raise ConfigError("vanilla_gan: " + "; ".join(problems))
    return nn.ModuleDict({
        "generator": VanillaGenerator(image_size=image_size, channels=channels, noise_dim=noise_dim, hidden=hidden),
        "discriminator": VanillaDiscriminator(image_size=image_size, channels=channels, hidden=hidden),
    })
