"""The model registry: names, options, and the errors a user sees for bad configs."""

from __future__ import annotations

import inspect

import pytest
from torch import nn

from affectlab.errors import ConfigError, RegistryError
from affectlab.models import MODELS, build_model, model_options

SEED_003 = [
    "stacked", "stacked_intraatt", "stacked2_intraatt", "encdec", "enc_interatt_dec", "enc_interatt_dec_intraatt",
]


def test_registry_has_every_seed_model() -> None:
    assert set(SEED_003) | {"f0_to_au", "quadratic_game", "emotion_cnn", "speech_emotion_mlp", "vae_mlp",
                            "gan_generator", "gan_discriminator", "categorical_gan", "vanilla_gan", "vsr_lm", "vsr_visual",
                            "vsr_lip_reader"} == set(MODELS)


def test_unknown_model_lists_known_names() -> None:
    with pytest.raises(RegistryError) as err:
        build_model("enc_interatt_decc", input_dim=3)
    message = str(err.value)
    assert "enc_interatt_decc" in message and "stacked2_intraatt" in message
    assert "Did you mean 'enc_interatt_dec'" in message


def test_unknown_option_names_key_and_allowed_options() -> None:
    with pytest.raises(ConfigError) as err:
        build_model("stacked", input_dim=3, hiden=8)
    message = str(err.value)
    assert "'hiden'" in message and "did you mean 'hidden'" in message
    assert "allowed options:" in message and "dropout" in message


def test_missing_required_option() -> None:
    with pytest.raises(ConfigError, match="missing required option 'input_dim'"):
        build_model("encdec")


def test_bad_values_are_all_reported() -> None:
    with pytest.raises(ConfigError) as err:
        build_model(
            "stacked_intraatt", input_dim=3, merge="max", window=0, window_mode="future", dropout=1.5, batch_norm="yes"
        )
    message = str(err.value)
    assert "5 bad option(s)" in message and "batch_norm='yes': must be true or false" in message
    for fragment in ("merge='max'", "sum, mean, concat", "window=0", "window_mode='future'", "bi, pa", "dropout=1.5"):
        assert fragment in message


def test_f0_to_au_requires_f0_vocab_for_tokens() -> None:
    with pytest.raises(ConfigError, match="f0_vocab_size"):
        build_model("f0_to_au", au_vocab_size=10)
    with pytest.raises(ConfigError, match="context='luong'"):
        build_model("f0_to_au", au_vocab_size=10, input_mode="continuous", context="luong")
    assert isinstance(build_model("f0_to_au", au_vocab_size=10, input_mode="continuous"), nn.Module)


def test_model_options_expose_paper_defaults() -> None:
    opts = model_options("enc_interatt_dec")
    assert opts["input_dim"] is inspect.Parameter.empty
    assert (opts["hidden"], opts["dropout"], opts["merge"]) == (20, 0.2, "sum")
    assert (opts["l2_kernel"], opts["l1_bias"], opts["attention_reg"]) == (1e-1, 1e-4, 1e-4)
    assert model_options("enc_interatt_dec_intraatt")["window_mode"] == "pa"
    with pytest.raises(RegistryError):
        model_options("nope")
