"""Builder functions of the registered models: keyword options with the papers' defaults.

Every builder validates its options and raises one :class:`~affectlab.errors.ConfigError`
listing every bad value with what is allowed. Defaults of the seed-003 models follow the paper
(hidden 20, dropout 0.2, sum merge, batch norm, L2 kernel 1e-1, L1 bias 1e-4, attention
regulariser 1e-4, window 15).
"""

from __future__ import annotations

from typing import Any

from torch import nn

from affectlab.errors import ConfigError
from affectlab.models.attention import WINDOW_MODES
from affectlab.models.au_activity import EncDecNet, StackedNet
from affectlab.models.f0_to_au import CONTEXT_MODES, INPUT_MODES, F0ToAU
from affectlab.models.layers import MERGE_MODES, RNN_CELLS

__all__ = [
    "enc_interatt_dec",
    "enc_interatt_dec_intraatt",
    "encdec",
    "f0_to_au",
    "stacked",
    "stacked2_intraatt",
    "stacked_intraatt",
]

NORMALISE_MODES = ("sum", "softmax")
FEEDBACK_MODES = ("prob", "hard")


class _Checks:
    """Collects option problems of one model and raises them together."""

    def __init__(self, model: str) -> None:
        self.model = model
        self.problems: list[str] = []

    def choice(self, key: str, value: Any, choices: tuple[str, ...]) -> None:
        if value not in choices:
            self.problems.append(f"{key}={value!r}: must be one of {', '.join(choices)}")

    def positive_int(self, key: str, value: Any) -> None:
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            self.problems.append(f"{key}={value!r}: must be an integer >= 1")

    def boolean(self, key: str, value: Any) -> None:
        if not isinstance(value, bool):
            self.problems.append(f"{key}={value!r}: must be true or false")

    def unit_interval(self, key: str, value: Any) -> None:
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0.0 <= value < 1.0:
            self.problems.append(f"{key}={value!r}: must be a number in [0, 1)")

    def non_negative(self, key: str, value: Any) -> None:
        if isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0.0:
            self.problems.append(f"{key}={value!r}: must be a number >= 0")

    def done(self) -> None:
        if self.problems:
            lines = "\n".join(f"  - {p}" for p in self.problems)
            raise ConfigError(f"model {self.model!r}: {len(self.problems)} bad option(s):\n{lines}")


def _check_common(checks: _Checks, opts: dict[str, Any]) -> None:
    for key in ("input_dim", "hidden"):
        checks.positive_int(key, opts[key])
    checks.choice("merge", opts["merge"], MERGE_MODES)
    checks.unit_interval("dropout", opts["dropout"])
    checks.boolean("batch_norm", opts["batch_norm"])
    for key in ("l2_kernel", "l1_bias", "attention_reg"):
        checks.non_negative(key, opts[key])


def _common_kwargs(opts: dict[str, Any]) -> dict[str, Any]:
    """The options every 003 network takes (validated by :func:`_check_common`)."""
    return {
        "merge": opts["merge"], "batch_norm": bool(opts["batch_norm"]), "dropout": float(opts["dropout"]),
        **{key: float(opts[key]) for key in ("l2_kernel", "l1_bias", "attention_reg")},
    }


def _check_intra(checks: _Checks, opts: dict[str, Any]) -> dict[str, Any]:
    """Validate the IntraAtt options and return :class:`IntraAttention` keyword arguments."""
    checks.positive_int("window", opts["window"])
    checks.choice("window_mode", opts["window_mode"], WINDOW_MODES)
    checks.positive_int("attention_units", opts["attention_units"])
    checks.choice("normalise", opts["normalise"], NORMALISE_MODES)
    return {
        "units": opts["attention_units"],
        "window": opts["window"],
        "mode": opts["window_mode"],
        "normalise": opts["normalise"],
    }


def _stacked(name: str, intra_after: tuple[int, ...], opts: dict[str, Any]) -> nn.Module:
    checks = _Checks(name)
    _check_common(checks, opts)
    checks.positive_int("num_layers", opts["num_layers"])
    intra = _check_intra(checks, opts)
    checks.done()
    last = opts["num_layers"] - 1
    return StackedNet(
        opts["input_dim"],
        hidden=opts["hidden"],
        num_layers=opts["num_layers"],
        intra_after=tuple(last if i < 0 else i for i in intra_after),
        intra=intra,
        **_common_kwargs(opts),
    )


def stacked(
    *, input_dim: int, hidden: int = 20, num_layers: int = 2, merge: str = "sum", batch_norm: bool = True,
    dropout: float = 0.2, l2_kernel: float = 1e-1, l1_bias: float = 1e-4, attention_reg: float = 1e-4,
) -> nn.Module:
    """Stacked BiLSTMs and a per-step classifier (Stacked-NoAtt). Returns logits (B, T)."""
    opts = dict(locals(), window=15, window_mode="bi", attention_units=20, normalise="sum")
    return _stacked("stacked", (), opts)


def stacked_intraatt(
    *, input_dim: int, hidden: int = 20, num_layers: int = 2, window: int = 15, window_mode: str = "bi",
    attention_units: int = 20, normalise: str = "sum", merge: str = "sum", batch_norm: bool = True,
    dropout: float = 0.2, l2_kernel: float = 1e-1, l1_bias: float = 1e-4, attention_reg: float = 1e-4,
) -> nn.Module:
    """Stacked BiLSTMs with one IntraAtt between the first and second layer (Stacked-IntraAtt)."""
    return _stacked("stacked_intraatt", (0,), dict(locals()))


def stacked2_intraatt(
    *, input_dim: int, hidden: int = 20, num_layers: int = 2, window: int = 15, window_mode: str = "bi",
    attention_units: int = 20, normalise: str = "sum", merge: str = "sum", batch_norm: bool = True,
    dropout: float = 0.2, l2_kernel: float = 1e-1, l1_bias: float = 1e-4, attention_reg: float = 1e-4,
) -> nn.Module:
    """Stacked BiLSTMs with IntraAtt after the first and after the last layer (2xStacked-IntraAtt)."""
    return _stacked("stacked2_intraatt", (0, -1), dict(locals()))


def _encdec(name: str, inter: bool, with_intra: bool, opts: dict[str, Any]) -> nn.Module:
    checks = _Checks(name)
    _check_common(checks, opts)
    checks.positive_int("encoder_layers", opts["encoder_layers"])
    checks.choice("feedback", opts["feedback"], FEEDBACK_MODES)
    checks.boolean("aligned_input", opts["aligned_input"])
    checks.positive_int("attention_units", opts["attention_units"])
    intra = None
    if with_intra:
        intra = _check_intra(checks, opts)
    checks.done()
    return EncDecNet(
        opts["input_dim"],
        hidden=opts["hidden"],
        encoder_layers=opts["encoder_layers"],
        inter_attention=inter,
        intra=intra,
        attention_units=opts["attention_units"],
        feedback=opts["feedback"],
        aligned_input=bool(opts["aligned_input"]),
        **_common_kwargs(opts),
    )


def encdec(
    *, input_dim: int, hidden: int = 20, encoder_layers: int = 1, feedback: str = "prob", merge: str = "sum",
    batch_norm: bool = True, dropout: float = 0.2, l2_kernel: float = 1e-1, l1_bias: float = 1e-4,
    attention_reg: float = 1e-4,
) -> nn.Module:
    """BiLSTM encoder and a feedback decoder on the aligned encoder states (Enc-Dec-NoAtt)."""
    return _encdec("encdec", False, False, dict(locals(), attention_units=20, aligned_input=False))


def enc_interatt_dec(
    *, input_dim: int, hidden: int = 20, encoder_layers: int = 1, attention_units: int = 20,
    feedback: str = "prob", aligned_input: bool = False, merge: str = "sum", batch_norm: bool = True,
    dropout: float = 0.2, l2_kernel: float = 1e-1, l1_bias: float = 1e-4, attention_reg: float = 1e-4,
) -> nn.Module:
    """BiLSTM encoder, additive inter-attention and the eqs. 8-10 decoder (Enc-InterAtt-Dec)."""
    return _encdec("enc_interatt_dec", True, False, dict(locals()))


def enc_interatt_dec_intraatt(
    *, input_dim: int, hidden: int = 20, encoder_layers: int = 1, attention_units: int = 20,
    window: int = 15, window_mode: str = "pa", normalise: str = "sum", feedback: str = "prob",
    aligned_input: bool = False, merge: str = "sum", batch_norm: bool = True, dropout: float = 0.2,
    l2_kernel: float = 1e-1, l1_bias: float = 1e-4, attention_reg: float = 1e-4,
) -> nn.Module:
    """Enc-InterAtt-Dec with IntraAtt on the encoded sequence (Enc-InterAtt-Dec-IntraAtt)."""
    return _encdec("enc_interatt_dec_intraatt", True, True, dict(locals()))


def f0_to_au(
    *, au_vocab_size: int, input_mode: str = "tokens", f0_vocab_size: int | None = None,
    f0_range: tuple[float, float] = (50.0, 550.0), embed_dim: int = 32, au_embed_dim: int = 32,
    hidden: int = 64, cell: str = "lstm", encoder_layers: int = 1, bidirectional: bool = True,
    context: str = "attention", attention_units: int = 64, dropout: float = 0.1, sos_id: int = 0,
    eos_id: int = 1,
) -> nn.Module:
    """Seed-000 F0 -> AU token encoder-decoder (see :mod:`affectlab.models.f0_to_au`)."""
    checks = _Checks("f0_to_au")
    for key in ("au_vocab_size", "embed_dim", "au_embed_dim", "hidden", "encoder_layers", "attention_units"):
        checks.positive_int(key, locals()[key])
    checks.choice("input_mode", input_mode, INPUT_MODES)
    checks.choice("cell", cell, RNN_CELLS)
    checks.choice("context", context, CONTEXT_MODES)
    checks.unit_interval("dropout", dropout)
    checks.boolean("bidirectional", bidirectional)
    if input_mode == "tokens":
        checks.positive_int("f0_vocab_size (required when input_mode='tokens')", f0_vocab_size)
    if not _is_range(f0_range):
        checks.problems.append(f"f0_range={f0_range!r}: must be [low, high] with low < high")
    vocab_size = au_vocab_size if isinstance(au_vocab_size, int) else 0
    for key, value in (("sos_id", sos_id), ("eos_id", eos_id)):
        if not isinstance(value, int) or not 0 <= value < vocab_size:
            checks.problems.append(f"{key}={value!r}: must be an id in 0..au_vocab_size-1")
    checks.done()
    return F0ToAU(
        au_vocab_size=au_vocab_size, input_mode=input_mode, f0_vocab_size=f0_vocab_size,
        f0_range=(float(f0_range[0]), float(f0_range[1])), embed_dim=embed_dim, au_embed_dim=au_embed_dim,
        hidden=hidden, cell=cell, encoder_layers=encoder_layers, bidirectional=bool(bidirectional),
        context=context, attention_units=attention_units, dropout=float(dropout), sos_id=sos_id,
        eos_id=eos_id,
    )


def _is_range(value: Any) -> bool:
    try:
        low, high = (float(v) for v in value)
    except (TypeError, ValueError):
        return False
    return low < high
