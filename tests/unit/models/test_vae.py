"""The MLP VAE of seed 004: shapes, eval-mode determinism and option errors."""

from __future__ import annotations

import pytest
import torch

from affectlab.errors import ConfigError
from affectlab.models import build_model


@pytest.mark.parametrize(("latent", "hidden"), [(1, (64, 32)), (3, (16,)), (8, ())])
def test_shapes(latent: int, hidden: tuple[int, ...]) -> None:
    torch.manual_seed(0)
    vae = build_model("vae_mlp", input_dim=27, latent_dim=latent, hidden=hidden, activation="tanh")
    recon, mu, logvar = vae(torch.randn(5, 27))
    assert recon.shape == (5, 27) and mu.shape == (5, latent) and logvar.shape == (5, latent)
    assert vae.decode(torch.zeros(2, latent)).shape == (2, 27)


def test_eval_decodes_the_mean_and_training_samples() -> None:
    torch.manual_seed(0)
    vae = build_model("vae_mlp", input_dim=6, latent_dim=2)
    x = torch.randn(4, 6)
    vae.eval()
    assert torch.equal(vae(x)[0], vae(x)[0])
    assert torch.allclose(vae(x)[0], vae.decode(vae.encode(x)[0]))
    vae.train()
    assert not torch.equal(vae(x)[0], vae(x)[0])


def test_unknown_activation_names_the_key_and_choices() -> None:
    with pytest.raises(ConfigError, match=r"model.kwargs.activation 'swish' is not one of \['elu', 'gelu'"):
        build_model("vae_mlp", input_dim=27, activation="swish")


def test_latent_size_below_one_is_an_error() -> None:
    with pytest.raises(ConfigError, match="model.kwargs.latent_dim must be >= 1, got 0"):
        build_model("vae_mlp", input_dim=27, latent_dim=0)
