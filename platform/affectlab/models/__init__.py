"""Plain torch models behind a registry of builder functions (no Ray imports here).

>>> from affectlab.models import build_model
>>> model = build_model("enc_interatt_dec", input_dim=28)   # logits (B, T) per AU class
>>> seq2seq = build_model("f0_to_au", au_vocab_size=53, f0_vocab_size=51)

Seed 003 (per-step binary AU activity): ``stacked``, ``stacked_intraatt``,
``stacked2_intraatt``, ``encdec``, ``enc_interatt_dec``, ``enc_interatt_dec_intraatt``; every
one takes ``forward(x (B, T, D), mask (B, T)) -> logits (B, T)`` and offers
``regularization_loss()``. Seed 000: ``f0_to_au`` (see :mod:`affectlab.models.f0_to_au`). ``quadratic_game``: two players
(an ``nn.ModuleDict``) of the game that checks the training loop (:mod:`affectlab.models.game`).
Seed 001 (emotion, :mod:`affectlab.models.emotion`): ``emotion_cnn`` (face crops
``forward(x (B, C, S, S)) -> logits (B, K)``, the seed's ``net_4``) and ``speech_emotion_mlp``
(openSMILE functionals ``forward(x (B, D)) -> logits (B, K)``). Seed 004 (body motion,
:mod:`affectlab.models.vae`): ``vae_mlp`` (``forward(x (B, D)) -> (x' (B, D), mu (B, L), logvar (B, L))``).
Seed 002 (GANs, :mod:`affectlab.models.gan`): ``gan_generator``, ``gan_discriminator`` (heads ``au`` / ``va`` /
``au_va``, logits ``(B, n + 1)``), ``categorical_gan`` and ``vanilla_gan`` (``{"generator", "discriminator"}``).
Seed 001 (lip reading, :mod:`affectlab.models.vsr`), one model per training stage, all taking
the options of :func:`~affectlab.models.vsr.vsr_config` (``size="tiny"`` or ``"paper"`` plus
overrides): ``vsr_lm`` (character LM, ``forward(tokens (B, L)) -> logits (B, L, V)``),
``vsr_visual`` (visual pretraining, ``forward(video (B, T, C, H, W), mask (B, T)) -> logits (B, T, V)``)
and ``vsr_lip_reader`` (``forward(video, mask, tokens) -> (logits (B, L, V), ctc_logits)``);
decoding in :mod:`affectlab.models.vsr_decoding`, token ids in :mod:`affectlab.models.vsr_vocab`.
"""

from __future__ import annotations

import difflib
import inspect
from collections.abc import Callable
from typing import Any

from torch import nn

from affectlab.errors import ConfigError, unknown_name_error
from affectlab.models import builders
from affectlab.models.emotion import emotion_cnn, speech_emotion_mlp
from affectlab.models.game import quadratic_game
from affectlab.models.gan import categorical_gan, gan_discriminator, gan_generator, vanilla_gan
from affectlab.models.vae import vae_mlp
from affectlab.models.vsr import vsr_lip_reader, vsr_lm, vsr_visual

__all__ = ["MODELS", "build_model", "model_options"]

MODELS: dict[str, Callable[..., nn.Module]] = {
    "stacked": builders.stacked,
    "stacked_intraatt": builders.stacked_intraatt,
    "stacked2_intraatt": builders.stacked2_intraatt,
    "encdec": builders.encdec,
    "enc_interatt_dec": builders.enc_interatt_dec,
    "enc_interatt_dec_intraatt": builders.enc_interatt_dec_intraatt,
    "f0_to_au": builders.f0_to_au,
    "quadratic_game": quadratic_game,
    "emotion_cnn": emotion_cnn,
    "speech_emotion_mlp": speech_emotion_mlp,
    "vae_mlp": vae_mlp,
    "gan_generator": gan_generator,
    "gan_discriminator": gan_discriminator,
    "categorical_gan": categorical_gan,
    "vanilla_gan": vanilla_gan,
    "vsr_lm": vsr_lm,
    "vsr_visual": vsr_visual,
    "vsr_lip_reader": vsr_lip_reader,
}


def _builder(name: str) -> Callable[..., nn.Module]:
    if name not in MODELS:
        raise unknown_name_error("model", name, list(MODELS))
    return MODELS[name]


def model_options(name: str) -> dict[str, Any]:
    """Options of model ``name`` and their defaults (``inspect.Parameter.empty`` if required).

    Raises:
        RegistryError: Unknown model name.
    """
    params = inspect.signature(_builder(name)).parameters
    return {key: p.default for key, p in params.items()}


def build_model(name: str, **kwargs: Any) -> nn.Module:
    """Build registered model ``name`` with keyword options.

    Raises:
        RegistryError: Unknown model name (the message lists the known ones).
        ConfigError: Unknown or missing options, or bad values (every problem at once).
    """
    options = model_options(name)
    problems = []
    for key in kwargs:
        if key not in options:
            close = difflib.get_close_matches(key, list(options), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            problems.append(f"unknown option {key!r}{hint}")
    missing = [k for k, v in options.items() if v is inspect.Parameter.empty and k not in kwargs]
    problems += [f"missing required option {k!r}" for k in missing]
    if problems:
        raise ConfigError(
            f"model {name!r}: {'; '.join(problems)}; allowed options: {', '.join(options)}"
        )
    return MODELS[name](**kwargs)
