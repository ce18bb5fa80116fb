"""Seed 002's GAN networks: shapes for 28 and 32, every head, output ranges, parameter counts, errors."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from affectlab.errors import ConfigError
from affectlab.models import build_model
from affectlab.models.gan import NOISE_DIM, sample_noise


def n_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize("image_size", [28, 32])
@pytest.mark.parametrize("batch", [1, 4])
def test_generator_shape_and_range(image_size: int, batch: int) -> None:
    torch.manual_seed(0)
    gen = build_model("gan_generator", image_size=image_size)
    z = sample_noise(batch, generator=torch.Generator().manual_seed(1))
    out = gen(z)  # training mode: batch statistics (>= 4 values per channel even at batch 1)
    assert out.shape == (batch, 3, image_size, image_size)
    assert out.min() >= -1.0 and out.max() <= 1.0
    # tanh saturating everywhere would also be "in range": the output must vary.
    assert out.std() > 0


@pytest.mark.parametrize("image_size", [28, 32])
@pytest.mark.parametrize("batch", [1, 4])
@pytest.mark.parametrize(("head", "n_aus", "width"), [
    ("au", 8, 9), ("va", 8, 3), ("au_va", 8, 11), ("au", 7, 8), ("au_va", 7, 10),
])
def test_discriminator_heads(image_size: int, batch: int, head: str, n_aus: int, width: int) -> None:
    disc = build_model("gan_discriminator", head=head, n_aus=n_aus, image_size=image_size)
    disc.train()  # batch statistics, as in the seed (each channel still has >= 16 values at batch 1)
    x = torch.rand(batch, 3, image_size, image_size) * 2 - 1
    logits = disc(x)
    assert logits.shape == (batch, width)
    parts = disc.split_logits(logits)
    assert parts["rf"].shape == (batch,)
    assert ("va" in parts) == (head != "au") and ("au" in parts) == (head != "va")
    if "au" in parts:
        assert parts["au"].shape == (batch, n_aus)
    if "va" in parts:
        assert parts["va"].shape == (batch, 2)
    # logits, not probabilities: unbounded outputs are allowed; the RF column is the last one.
    assert torch.equal(parts["rf"], logits[:, -1])


@pytest.mark.parametrize("image_size", [28, 32])
def test_categorical_gan_end_to_end(image_size: int) -> None:
    gan = build_model("categorical_gan", head="au_va", image_size=image_size)
    assert set(gan.keys()) == {"generator", "discriminator"}
    fake = gan["generator"](sample_noise(4))
    logits = gan["discriminator"](fake)
    assert logits.shape == (4, 11)
    logits.sum().backward()  # gradients reach the generator
    assert all(p.grad is not None for p in gan["generator"].parameters())


def test_parameter_counts_28() -> None:
    # Hand-computed for image_size=28 (the seed's tables give no parameter counts):
    # generator: deconv1 100*384*2*2+384 = 153,984; BN 768; deconv2 384*128*3*3+128 = 442,496; BN 256;
    #   deconv3 128*64*4*4+64 = 131,136; BN 128; deconv4 64*3*6*6+3 = 6,915           -> 735,683
    #   (32x32, deconv2 kernel 4: 384*128*16+128 = 786,560                              -> 1,079,747)
    # discriminator body: conv1 3*64*25+64 = 4,864; BN 128; conv2 64*128*25+128 = 204,928; BN 256;
    #   conv3 128*256*25+256 = 819,456; BN 512                                          -> 1,030,144
    #   FC 4096 -> 9 (au): 36,873 -> 1,067,017; -> 3 (va): 12,291 -> 1,042,435; -> 11 (au_va): 45,067 -> 1,075,211
    # vanilla GAN (Table 3.9): G 100*128+128 + 128*784+784 = 114,064; D 784*128+128 + 128+1 = 100,609
    assert n_params(build_model("gan_generator", image_size=28)) == 735_683
    assert n_params(build_model("gan_generator", image_size=32)) == 1_079_747
    assert n_params(build_model("gan_discriminator", head="au")) == 1_067_017
    assert n_params(build_model("gan_discriminator", head="va")) == 1_042_435
    assert n_params(build_model("gan_discriminator", head="au_va")) == 1_075_211
    assert n_params(build_model("gan_discriminator", head="au", image_size=32)) == 1_067_017  # 4x4x256 too
    vanilla = build_model("vanilla_gan")
    assert (n_params(vanilla["generator"]), n_params(vanilla["discriminator"])) == (114_064, 100_609)


def test_generator_kernels_follow_seed_table() -> None:
    kernels = {s: [m.kernel_size[0] for m in build_model("gan_generator", image_size=s).modules()
                   if isinstance(m, nn.ConvTranspose2d)] for s in (28, 32)}
    assert kernels == {32: [2, 4, 4, 6], 28: [2, 3, 4, 6]}
    widths = [m.out_channels for m in build_model("gan_generator").modules() if isinstance(m, nn.ConvTranspose2d)]
    assert widths == [384, 128, 64, 3]


def test_discriminator_layers_follow_seed_table() -> None:
    disc = build_model("gan_discriminator")
    convs = [m for m in disc.modules() if isinstance(m, nn.Conv2d)]
    assert [(c.out_channels, c.kernel_size, c.stride) for c in convs] == [(64, (5, 5), (2, 2)), (128, (5, 5), (2, 2)),
                                                                        (256, (5, 5), (2, 2))]
    assert [m.negative_slope for m in disc.modules() if isinstance(m, nn.LeakyReLU)] == [0.2] * 3
    assert [m.p for m in disc.modules() if isinstance(m, nn.Dropout)] == [0.5] * 3
    assert disc.flat_dim == 4096


@pytest.mark.parametrize("size", [27, 64, 0])
def test_unsupported_image_size_is_named(size: int) -> None:
    with pytest.raises(ConfigError, match=rf"image_size={size}.*supported values: 28, 32"):
        build_model("gan_generator", image_size=size)
    with pytest.raises(ConfigError, match=rf"image_size={size}"):
        build_model("categorical_gan", image_size=size)


def test_bad_head_lists_choices() -> None:
    with pytest.raises(ConfigError, match=r"head='aus'.*au, va, au_va"):
        build_model("gan_discriminator", head="aus")
    with pytest.raises(ConfigError, match=r"n_aus=0"):
        build_model("gan_discriminator", n_aus=0)


def test_noise_is_uniform_and_reproducible() -> None:
    a = sample_noise(2000, generator=torch.Generator().manual_seed(3))
    b = sample_noise(2000, generator=torch.Generator().manual_seed(3))
    assert a.shape == (2000, NOISE_DIM) and torch.equal(a, b)
    assert a.min() >= -1.0 and a.max() <= 1.0
    assert abs(a.mean().item()) < 0.01 and abs(a.var().item() - 1 / 3) < 0.01  # U[-1,1]: mean 0, var 1/3
    assert not torch.equal(a, sample_noise(2000, generator=torch.Generator().manual_seed(4)))
    with pytest.raises(ConfigError, match="batch_size=0"):
        sample_noise(0)


def test_vanilla_gan_shapes() -> None:
    gan = build_model("vanilla_gan")
    for batch in (1, 4):
        fake = gan["generator"](sample_noise(batch))
        assert fake.shape == (batch, 1, 28, 28) and fake.min() >= 0 and fake.max() <= 1
        assert gan["discriminator"](fake).shape == (batch,)
        assert gan["discriminator"](fake.flatten(1)).shape == (batch,)
    # the seed's Xavier init: zero biases, weight std near 1/sqrt(in/2)
    hidden = gan["generator"].hidden
    assert torch.count_nonzero(hidden.bias) == 0
    assert abs(hidden.weight.std().item() - (1 / (100 / 2) ** 0.5)) < 0.01
    with pytest.raises(ConfigError, match="hidden=0"):
        build_model("vanilla_gan", hidden=0)
