"""Seed 001's emotion models: the face CNN (net_4) and the speech-functionals MLP."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from affectlab.errors import ConfigError
from affectlab.models import build_model, model_options
from affectlab.models.emotion import EmotionCNN, he_normal_


def _n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("size", [112, 48])
def test_cnn_returns_logits_per_class(size: int) -> None:
    torch.manual_seed(0)
    model = build_model("emotion_cnn", input_size=size)
    model.eval()
    logits = model(torch.rand(3, 1, size, size))
    assert logits.shape == (3, 7) and logits.dtype == torch.float32
    assert not torch.allclose(logits.softmax(-1).sum(-1), logits.sum(-1))  # logits, not probabilities
    assert model.flat_dim == (size // 16) ** 2 * 256


def test_cnn_parameter_count_matches_net_4() -> None:
    model = build_model("emotion_cnn")
    convs = [(1, 32, 5), (32, 64, 5), (64, 128, 3), (128, 256, 3)]
    expected = sum(cin * cout * k * k + cout + 2 * cout for cin, cout, k in convs)  # conv weight, bias, BN gamma/beta
    expected += 7 * 7 * 256 * 128 + 128 + 2 * 128 + 128 * 7 + 7  # dense 12544 -> 128, BN, output 128 -> 7
    assert expected == 2_028_999  # Keras would list 2,030,215: it counts BN moving mean/variance as parameters
    assert _n_params(model) == expected
    assert model.head[1].in_features == 12544


def test_cnn_layers_follow_the_seed() -> None:
    model = build_model("emotion_cnn")
    blocks = list(model.features)
    assert [type(m) for m in blocks[0]] == [nn.Conv2d, nn.BatchNorm2d, nn.ELU, nn.MaxPool2d]
    for block in blocks[1:]:
        assert [type(m) for m in block] == [nn.Conv2d, nn.BatchNorm2d, nn.ELU, nn.MaxPool2d, nn.Dropout]
        assert block[-1].p == 0.5
    assert [b[0].kernel_size for b in blocks] == [(5, 5), (5, 5), (3, 3), (3, 3)]
    assert [type(m) for m in model.head] == [nn.Flatten, nn.Linear, nn.BatchNorm1d, nn.ELU, nn.Dropout, nn.Linear]
    assert model.head[4].p == 0.6
    assert model.head[2].eps == 1e-3 and model.head[2].momentum == 0.01  # Keras BatchNormalization defaults


def test_cnn_init_is_keras_he_normal_with_zero_biases() -> None:
    torch.manual_seed(1)
    model = build_model("emotion_cnn")
    weights = [model.features[i][0].weight for i in range(4)] + [model.head[1].weight]
    for w in weights:
        fan_in = math.prod(w.shape[1:])
        target = math.sqrt(2.0 / fan_in)
        assert abs(w.std().item() / target - 1) < 0.05 + 3 / math.sqrt(w.numel())
        assert abs(w.mean().item()) < 0.05 * target + 4 * target / math.sqrt(w.numel())
        assert w.abs().max().item() <= 2 * target / 0.8796256610342398 + 1e-6  # truncated at 2 std
    for module in model.modules():
        if isinstance(module, nn.Conv2d | nn.Linear):
            assert torch.count_nonzero(module.bias) == 0
    out = model.head[-1].weight  # Keras default glorot_uniform: U(-l, l), l = sqrt(6 / (fan_in + fan_out))
    assert out.abs().max().item() <= math.sqrt(6 / (128 + 7))


def test_he_normal_on_a_large_tensor() -> None:
    w = he_normal_(torch.empty(512, 64, 3, 3), torch.Generator().manual_seed(0))
    assert w.std().item() == pytest.approx(math.sqrt(2 / (64 * 9)), rel=0.01)


@pytest.mark.parametrize("size", [100, 8, 113])
def test_cnn_rejects_input_size_not_divisible_by_16(size: int) -> None:
    with pytest.raises(ConfigError, match=rf"input_size={size}: must be divisible by 16"):
        build_model("emotion_cnn", input_size=size)


def test_cnn_reports_every_bad_option() -> None:
    with pytest.raises(ConfigError) as err:
        build_model("emotion_cnn", widths=(32, 64), kernels=(5, 5, 3), conv_dropout=1.0, n_classes=0)
    message = str(err.value)
    for fragment in ("3 bad option(s)", "n_classes=0", "kernels=(5, 5, 3)", "conv_dropout=1.0"):
        assert fragment in message


def test_cnn_input_size_follows_the_number_of_blocks() -> None:
    with pytest.raises(ConfigError, match=r"input_size=22: must be divisible by 4 .* e.g. 20 or 24"):
        build_model("emotion_cnn", input_size=22, widths=[8, 16], kernels=[3, 3])
    model = build_model("emotion_cnn", input_size=20, widths=[8, 16], kernels=[3, 3])
    assert isinstance(model, EmotionCNN) and model.flat_dim == 5 * 5 * 16
    model.eval()
    assert model(torch.rand(2, 1, 20, 20)).shape == (2, 7)


def test_cnn_rejects_a_wrong_input_shape() -> None:
    model = build_model("emotion_cnn", input_size=48)
    with pytest.raises(ValueError, match=r"\(B, 1, 48, 48\), got \(2, 1, 112, 112\)"):
        model(torch.zeros(2, 1, 112, 112))


def test_cnn_dropout_only_in_training() -> None:
    torch.manual_seed(0)
    model = build_model("emotion_cnn", input_size=48)
    x = torch.rand(4, 1, 48, 48)
    model.eval()
    with torch.no_grad():
        assert torch.equal(model(x), model(x))
    model.train()
    with torch.no_grad():
        assert not torch.allclose(model(x), model(x))


def test_cnn_trains_on_a_tiny_batch() -> None:
    torch.manual_seed(0)
    model = build_model("emotion_cnn", input_size=16, widths=(8, 16, 32, 64), conv_dropout=0.0, dense_dropout=0.0)
    x, y = torch.rand(8, 1, 16, 16), torch.arange(8) % 7
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    losses = []
    for _ in range(15):
        optimizer.zero_grad()
        loss = nn.functional.cross_entropy(model(x), y)
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]


def test_cnn_options_expose_the_seed_defaults() -> None:
    opts = model_options("emotion_cnn")
    assert (opts["input_size"], opts["in_channels"], opts["n_classes"]) == (112, 1, 7)
    assert (tuple(opts["widths"]), tuple(opts["kernels"]), opts["dense"]) == ((32, 64, 128, 256), (5, 5, 3, 3), 128)
    assert (opts["conv_dropout"], opts["dense_dropout"]) == (0.5, 0.6)


@pytest.mark.parametrize(("hidden", "norm", "activation"), [
    ((64,), "layer", "relu"), ((32, 16), "batch", "elu"), ((), "none", "relu"),
])
def test_mlp_shapes(hidden: tuple[int, ...], norm: str, activation: str) -> None:
    model = build_model("speech_emotion_mlp", input_dim=88, hidden=hidden, norm=norm, activation=activation)
    model.train()
    assert model(torch.randn(5, 88)).shape == (5, 7)
    model.eval()
    x = torch.randn(3, 88)
    with torch.no_grad():
        assert torch.equal(model(x), model(x))
    n_linear = sum(isinstance(m, nn.Linear) for m in model.modules())
    assert n_linear == len(hidden) + 1


def test_mlp_options_and_errors() -> None:
    opts = model_options("speech_emotion_mlp")
    assert (opts["n_classes"], tuple(opts["hidden"]), opts["dropout"]) == (7, (64,), 0.3)
    with pytest.raises(ConfigError) as err:
        build_model("speech_emotion_mlp", input_dim=88, hidden=[64, 0], norm="group", activation="tanh")
    message = str(err.value)
    for fragment in ("hidden=[64, 0]", "norm='group'", "layer, batch, none", "activation='tanh'", "relu, elu"):
        assert fragment in message
    with pytest.raises(ConfigError, match="missing required option 'input_dim'"):
        build_model("speech_emotion_mlp")
    model = build_model("speech_emotion_mlp", input_dim=88, n_classes=4)
    with pytest.raises(ValueError, match=r"\(B, 88\), got \(2, 10\)"):
        model(torch.zeros(2, 10))
