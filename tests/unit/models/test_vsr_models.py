"""Seed 001's lip-reading models: vocabulary, visual module (ResNet taps, LPA, WDA), decoder, heads, sizes."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from affectlab.errors import ConfigError, DatasetError
from affectlab.models import build_model
from affectlab.models.vsr import LipReader, VisualPretrainModel, vsr_config
from affectlab.models.vsr_visual import (
    PAPER_POOL_KERNELS, AdaptiveTimeMask, FrameResNet, VisualModule, adaptive_time_mask, lpa_pool_kernels, tap_sizes,
)
from affectlab.models.vsr_vocab import DEFAULT_CHARS, CharVocab

# Smaller than ``tiny`` for the tests that need no particular size.
MICRO = {"input_size": 16, "widths": (4, 4, 8, 8, 8), "d_model": 16, "num_heads": 2, "d_ff": 32, "num_layers": 2,
         "gru_hidden": 16}


def _n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def _video(batch: int, steps: int, size: int, channels: int = 1, *, seed: int = 0) -> torch.Tensor:
    return torch.randn(batch, steps, channels, size, size, generator=torch.Generator().manual_seed(seed))


# --- vocabulary -------------------------------------------------------------------------------

def test_vocab_special_ids_are_distinct_from_characters() -> None:
    vocab = CharVocab()
    specials = set(vocab.special_ids)
    assert len(specials) == 4 and {vocab.pad_id, vocab.sos_id, vocab.eos_id, vocab.blank_id} == specials
    char_ids = set(vocab.encode(DEFAULT_CHARS))
    assert len(char_ids) == len(DEFAULT_CHARS) == 38 and not char_ids & specials
    assert vocab.size == 42 and max(char_ids) == vocab.size - 1


def test_vocab_round_trip_and_decode_rules() -> None:
    vocab = CharVocab()
    ids = vocab.encode("we've got 85", sos=True, eos=True)
    assert ids[0] == vocab.sos_id and ids[-1] == vocab.eos_id
    assert vocab.decode(ids) == "we've got 85"
    assert vocab.decode([vocab.blank_id, *vocab.encode("ab"), vocab.pad_id, vocab.eos_id, *vocab.encode("c")]) == "ab"
    assert vocab.normalize("  PRETTY   on The\toutside ") == "pretty on the outside"


def test_vocab_unknown_character_is_named() -> None:
    with pytest.raises(DatasetError) as err:
        CharVocab().encode("happy, really")
    assert "','" in str(err.value) and "position 5" in str(err.value)
    with pytest.raises(ConfigError, match="repeated"):
        CharVocab("abca")


# --- sizes and registry -----------------------------------------------------------------------

def test_tiny_shapes_of_every_piece() -> None:
    torch.manual_seed(0)
    cfg = vsr_config(size="tiny")
    video, mask = _video(2, 6, cfg.input_size), torch.tensor([[True] * 6, [True] * 4 + [False] * 2])
    tokens = torch.tensor([CharVocab().encode("hello", sos=True), CharVocab().encode("hi", sos=True) + [0] * 3])
    lm, visual = build_model("vsr_lm"), build_model("vsr_visual")
    reader = build_model("vsr_lip_reader", ctc_head=True)
    assert lm(tokens).shape == (2, 6, 42)
    assert visual(video, mask).shape == (2, 6, 42)
    out = reader(video, mask, tokens)
    assert out.logits.shape == (2, 6, 42) and out.ctc_logits.shape == (2, 6, 42)
    memory = reader.encode(video, mask)
    assert memory.shape == (2, 6, 64) and torch.all(memory[1, 4:] == 0) and torch.any(memory[1, :4] != 0)


def test_padded_frames_do_not_change_valid_outputs() -> None:
    torch.manual_seed(0)
    model = build_model("vsr_visual", **MICRO).eval()
    video, mask = _video(2, 5, 16), torch.tensor([[True] * 5, [True] * 3 + [False] * 2])
    noisy = video.clone()
    noisy[1, 3:] = 100.0
    with torch.no_grad():
        a, b = model(video, mask), model(noisy, mask)
        alone = model(video[1:, :3], None)
    torch.testing.assert_close(a[1, :3], b[1, :3])
    torch.testing.assert_close(a[1, :3], alone[0], rtol=1e-4, atol=1e-5)


def test_paper_config_on_meta_matches_the_seed() -> None:
    with torch.device("meta"):
        reader = build_model("vsr_lip_reader", size="paper")
    visual = reader.visual
    assert visual.resnet.tap_channels == (64, 256, 512, 1024, 2048)
    assert visual.pool_kernels == list(PAPER_POOL_KERNELS)
    assert [b.in_features for b in visual.lpa] == [200704, 50176, 50176, 50176, 100352]  # the seed's log
    assert reader.decoder.out.weight.shape == (42, 1024) and len(reader.decoder.layers) == 6
    assert reader.decoder.layers[0].ffn1.net[0].weight.shape == (4096, 1024)
    assert reader.decoder.layers[0].self_attn.num_heads == 16
    assert sum(_n_params(b.proj) for b in visual.lpa) == (200704 + 3 * 50176 + 100352 + 5) * 1024
    assert 650e6 < _n_params(reader) < 670e6
    out = reader(torch.empty(1, 3, 3, 224, 224, device="meta"), None,
                 torch.zeros(1, 4, dtype=torch.long, device="meta"))
    assert out.logits.shape == (1, 4, 42) and out.ctc_logits is None


@pytest.mark.parametrize(("backbone", "expected"), [
    ("resnet18", 11_176_512), ("resnet34", 21_284_672), ("resnet50", 23_508_032),  # torchvision's, minus fc
])
def test_standard_resnets_have_torchvision_parameter_counts(backbone: str, expected: int) -> None:
    with torch.device("meta"):
        assert _n_params(FrameResNet(backbone)) == expected


def test_bad_options_are_reported_by_name() -> None:
    with pytest.raises(ConfigError) as err:
        build_model("vsr_lip_reader", backbone="resnet101", stem_time_kernel=4, dropout=2.0)
    message = str(err.value)
    assert "backbone='resnet101'" in message and "resnet50" in message
    assert "stem_time_kernel=4" in message and "dropout=2.0" in message
    with pytest.raises(ConfigError, match="unknown option 'd_modle'"):
        build_model("vsr_lm", d_modle=8)
    with pytest.raises(ConfigError, match="size='huge'.*paper, tiny"):
        build_model("vsr_visual", size="huge")


# --- visual module ----------------------------------------------------------------------------

def test_lpa_pool_kernels_scale_with_the_input() -> None:
    assert tap_sizes(224, 224) == [(56, 56), (56, 56), (28, 28), (14, 14), (7, 7)]
    assert lpa_pool_kernels(224, 224) == list(PAPER_POOL_KERNELS)
    assert lpa_pool_kernels(448, 448) == [(2, 2), (8, 8), (4, 8), (4, 4), (2, 2)]
    assert lpa_pool_kernels(112, 112) == [(1, 1), (2, 2), (1, 2), (1, 1), (1, 1)]
    assert lpa_pool_kernels(32, 32) == [(1, 1)] * 5
    module = VisualModule(input_size=64, in_channels=1, backbone="tiny", widths=(4, 4, 8, 8, 8), d_model=16, d_ff=32)
    assert module.pool_kernels == [(1, 1), (1, 1), (1, 1), (1, 1), (1, 1)]
    module = VisualModule(input_size=128, in_channels=1, backbone="tiny", widths=(4, 4, 8, 8, 8), d_model=16, d_ff=32)
    assert module.pool_kernels == [(1, 1), (2, 2), (1, 2), (1, 1), (1, 1)]
    assert module.lpa[2].in_features == 8 * 16 * 8  # tap 2 is 16x16, pooled (1, 2) -> 16x8
    assert module(_video(1, 2, 128)).shape == (1, 2, 16)


def test_wda_lambda_starts_at_one_and_learns() -> None:
    torch.manual_seed(0)
    model = build_model("vsr_visual", **MICRO)
    lam = model.visual.wda_lambda
    assert torch.equal(lam.detach(), torch.ones(5)) and lam.requires_grad
    model.eval()
    video = _video(1, 4, 16)
    out = model(video)
    out.pow(2).sum().backward()
    assert lam.grad is not None and torch.all(lam.grad != 0)
    with torch.no_grad():
        lam[0] = 3.0
        assert not torch.allclose(model(video), out)


def test_lpa_residual_flag_and_3d_stem() -> None:
    torch.manual_seed(0)
    with_res = build_model("vsr_visual", **MICRO).eval()
    without = build_model("vsr_visual", **MICRO, lpa_residual=False).eval()
    without.load_state_dict(with_res.state_dict())
    video = _video(1, 3, 16)
    with torch.no_grad():
        assert not torch.allclose(with_res(video), without(video))
    stem3d = build_model("vsr_visual", **MICRO, stem="3d").eval()
    assert isinstance(stem3d.visual.resnet.stem_conv, nn.Conv3d)
    mask = torch.tensor([[True, True, False]])
    assert stem3d(video, mask).shape == (1, 3, 42)


def test_adaptive_time_mask_zeroes_whole_frames_without_touching_input() -> None:
    clip = torch.ones(50, 1, 4, 4)
    out = adaptive_time_mask(clip, 10, 25, generator=torch.Generator().manual_seed(3))
    zeroed = (out == 0).flatten(1).all(dim=1)
    assert torch.all(clip == 1) and out.shape == clip.shape
    assert torch.equal((out == 0).flatten(1).any(dim=1), zeroed)  # frames are zeroed whole
    assert 0 < int(zeroed.sum()) <= 2 * 9  # two masks (50 // 25) of at most window - 1 frames
    assert torch.equal(adaptive_time_mask(clip, 1, 25), clip)  # window 1: every draw is 0, nothing masked
    batch = torch.ones(2, 8, 1)
    masked = AdaptiveTimeMask(6, 2)(batch, torch.tensor([8, 3]), generator=torch.Generator().manual_seed(0))
    assert torch.all(masked[1, 3:] == 1)  # padding stays as it was
    with pytest.raises(ConfigError, match="stride=0"):
        adaptive_time_mask(clip, 10, 0)


# --- decoder and heads ------------------------------------------------------------------------

def test_decoder_self_attention_is_causal() -> None:
    torch.manual_seed(0)
    lm = build_model("vsr_lm", **MICRO).eval()
    tokens = torch.tensor([CharVocab().encode("lip reading", sos=True)])
    changed = tokens.clone()
    changed[0, 6] = CharVocab().encode("z")[0]
    with torch.no_grad():
        a, b = lm(tokens), lm(changed)
    torch.testing.assert_close(a[:, :6], b[:, :6])
    assert not torch.allclose(a[:, 6:], b[:, 6:])


def test_cross_attention_off_ignores_memory() -> None:
    torch.manual_seed(0)
    decoder = build_model("vsr_lip_reader", **MICRO).decoder.eval()
    tokens = torch.tensor([CharVocab().encode("bat", sos=True)] * 2)
    mem_a, mem_b = torch.randn(2, 5, 16), torch.randn(2, 5, 16)
    with torch.no_grad():
        off_a = decoder(tokens, mem_a, use_cross_attention=False)
        torch.testing.assert_close(off_a, decoder(tokens, mem_b, use_cross_attention=False))
        torch.testing.assert_close(off_a, decoder(tokens))
        assert not torch.allclose(decoder(tokens, mem_a), decoder(tokens, mem_b))  # control: on, it reads memory


def test_integration_loads_pieces_and_resets_cross_attention() -> None:
    torch.manual_seed(0)
    lm, visual = build_model("vsr_lm", **MICRO), build_model("vsr_visual", **MICRO)
    reader = build_model("vsr_lip_reader", **MICRO, ctc_head=True)
    reader.load_pieces(visual=visual, lm=lm)
    lm_state, reader_state = lm.state_dict(), reader.decoder.state_dict()
    for key, value in lm_state.items():
        same = torch.equal(value, reader_state[key])
        fresh = ".cross_attn." in key and ("weight" in key)
        assert same != fresh, key  # everything copied except the re-initialised cross-attention weights
    torch.testing.assert_close(reader.visual.state_dict(), visual.visual.state_dict())
    torch.testing.assert_close(reader.generator.state_dict(), visual.generator.state_dict())
    with pytest.raises(ValueError, match="does not fit"):
        reader.load_pieces(lm=build_model("vsr_lm", **{**MICRO, "d_model": 32}))


def test_frozen_softmax_gets_no_gradient() -> None:
    torch.manual_seed(0)
    lm = build_model("vsr_lm", **MICRO)
    model = build_model("vsr_visual", **MICRO)
    assert isinstance(model, VisualPretrainModel)
    model.load_softmax_(lm)
    assert torch.equal(model.softmax.weight, lm.out.weight) and model.softmax.weight is not lm.out.weight
    logits = model(_video(2, 4, 16), torch.tensor([[True] * 4, [True, True, False, False]]))
    torch.nn.functional.cross_entropy(logits.reshape(-1, 42), torch.randint(4, 42, (8,))).backward()
    assert model.softmax.weight.grad is None and model.softmax.bias.grad is None
    assert model.generator.gru.weight_ih_l0.grad is not None and model.visual.wda_out.weight.grad is not None
    assert lm.out.weight.requires_grad  # the LM's own layer is not frozen by the copy
    with pytest.raises(ValueError, match="does not match"):
        model.load_softmax_(build_model("vsr_lm", **MICRO, chars="abc"))


def test_lip_reader_ctc_head_shares_the_decoder_softmax() -> None:
    torch.manual_seed(0)
    reader = build_model("vsr_lip_reader", **MICRO, ctc_head=True)
    assert isinstance(reader, LipReader)
    out = reader(_video(1, 4, 16), None, torch.tensor([[1, 5, 6]]))
    reader.decoder.out.weight.grad = None
    out.ctc_logits.sum().backward()
    assert reader.decoder.out.weight.grad is not None  # CTC logits go through the shared, trainable layer
    assert build_model("vsr_lip_reader", **MICRO).generator is None


def test_generator_residual_adds_the_head_input_and_is_off_by_default() -> None:
    """``generator_residual`` (not in the seed; see FrameGenerator): ``fc(gru(x)) + x``; off, the
    seed's ``fc(gru(x))``; the stage-3 CTC head takes the same flag, and a bad value is named."""
    torch.manual_seed(0)
    plain = build_model("vsr_visual", **MICRO)
    residual = build_model("vsr_visual", **MICRO, generator_residual=True)
    assert not plain.generator.residual and residual.generator.residual
    residual.generator.load_state_dict(plain.generator.state_dict())
    context = torch.randn(2, 5, 16)
    assert torch.allclose(residual.generator(context), plain.generator(context) + context)
    assert not torch.allclose(plain.generator(context), plain.generator(context) + context)
    reader = build_model("vsr_lip_reader", **MICRO, ctc_head=True, generator_residual=True)
    assert reader.generator.residual
    with pytest.raises(ConfigError, match="generator_residual='yes'"):
        build_model("vsr_visual", **MICRO, generator_residual="yes")
