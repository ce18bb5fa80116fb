"""Token vocabularies of seed 000: quantized AU intensities (with SOS/EOS) and quantized F0.

A vocabulary maps contiguous ids ``0 .. V-1`` to either a special token (a string such as
``"SOS"``) or a numeric value. It is built from a plain ``ID_to_AU`` / ``ID_to_F0`` mapping
(JSON keys may be strings) or from a linear quantization step, so the models stay decoupled
from how preprocessing stores the vocabulary.

>>> vocab = AUVocab.from_step(0.5)   # {0: SOS, 1: EOS, 2: 0.0, 3: 0.5, ..., 12: 5.0}
>>> vocab.encode([0.2, 4.9]).tolist()
[2, 12]
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from affectlab.errors import ConfigError, DatasetError

__all__ = ["AUVocab", "F0Vocab", "TokenVocab"]


class TokenVocab:
    """Ids <-> quantized values, with optional special tokens.

    Args:
        id_to_token: Mapping id -> value (number) or special token (string). Ids (ints or
            strings of ints) must be exactly ``0 .. V-1``.
        source: Name used in error messages.

    Raises:
        ConfigError: Ids are not contiguous from 0, or a value is neither a number nor a string.
    """

    def __init__(self, id_to_token: Mapping[Any, Any], *, source: str = "vocabulary") -> None:
        try:
            parsed = {int(key): value for key, value in id_to_token.items()}
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"{source}: ids must be integers, got keys {list(id_to_token)[:5]}") from exc
        if sorted(parsed) != list(range(len(parsed))) or not parsed:
            raise ConfigError(
                f"{source}: ids must be 0..{len(parsed) - 1} without gaps, got {sorted(parsed)[:10]}"
            )
        self.id_to_token: dict[int, float | str] = {}
        for key in range(len(parsed)):
            self.id_to_token[key] = _parse_token(parsed[key], key, source)
        numeric = [(v, k) for k, v in self.id_to_token.items() if not isinstance(v, str)]
        if not numeric:
            raise ConfigError(f"{source}: no numeric values, only special tokens")
        numeric.sort()
        self._values = np.array([v for v, _ in numeric], dtype=np.float64)  # sorted values
        self._value_ids = np.array([k for _, k in numeric], dtype=np.int64)
        self._lookup = np.full(len(parsed), np.nan)
        self._lookup[self._value_ids] = self._values

    @classmethod
    def from_step(
        cls, step: float, *, low: float, high: float, specials: tuple[str, ...] = ()
    ) -> TokenVocab:
        """Linear quantization of ``[low, high]`` with ``step``; specials take the first ids.

        Raises:
            ConfigError: ``step`` is not positive or larger than the range.
        """
        if not step > 0 or step > high - low:
            raise ConfigError(f"quantization step must be in (0, {high - low}], got {step!r}")
        count = int(np.floor((high - low) / step + 1e-9)) + 1
        values = [round(low + i * step, 10) for i in range(count)]
        mapping: dict[int, Any] = dict(enumerate(specials))
        mapping.update({len(specials) + i: v for i, v in enumerate(values)})
        return cls(mapping, source=f"{cls.__name__}(step={step})")

    @property
    def size(self) -> int:
        """Number of ids V."""
        return len(self.id_to_token)

    @property
    def low(self) -> float:
        return float(self._values[0])

    @property
    def high(self) -> float:
        return float(self._values[-1])

    def special_id(self, token: str) -> int:
        """Id of special ``token`` (e.g. ``"SOS"``).

        Raises:
            ConfigError: The vocabulary has no such token.
        """
        for key, value in self.id_to_token.items():
            if value == token:
                return key
        specials = [v for v in self.id_to_token.values() if isinstance(v, str)]
        raise ConfigError(f"vocabulary has no special token {token!r}; it has {specials}")

    def encode(self, values: ArrayLike) -> np.ndarray:
        """Nearest-value ids for ``values`` (clipped to [low, high]); same shape, int64.

        Raises:
            DatasetError: A value is NaN.
        """
        arr = np.asarray(values, dtype=np.float64)
        if np.isnan(arr).any():
            raise DatasetError("cannot encode NaN values into vocabulary ids")
        if len(self._values) == 1:
            return np.full(arr.shape, self._value_ids[0], dtype=np.int64)
        arr = np.clip(arr, self.low, self.high)
        right = np.searchsorted(self._values, arr).clip(1, len(self._values) - 1)
        left = right - 1
        nearest = np.where(arr - self._values[left] <= self._values[right] - arr, left, right)
        return self._value_ids[nearest]

    def decode(self, ids: ArrayLike) -> np.ndarray:
        """Values for ``ids`` (float64, same shape); NaN for special tokens.

        Raises:
            DatasetError: An id is outside ``0 .. V-1``.
        """
        arr = np.asarray(ids, dtype=np.int64)
        if arr.size and (arr.min() < 0 or arr.max() >= self.size):
            raise DatasetError(f"token ids must be in 0..{self.size - 1}, got {arr.min()}..{arr.max()}")
        return self._lookup[arr]

    def to_mapping(self) -> dict[str, float | str]:
        """JSON-ready ``{"0": "SOS", "2": 0.0, ...}``."""
        return {str(k): v for k, v in self.id_to_token.items()}


def _parse_token(value: Any, key: int, source: str) -> float | str:
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    if isinstance(value, int | float) and not isinstance(value, bool) and np.isfinite(value):
        return float(value)
    raise ConfigError(f"{source}: id {key} maps to {value!r}; expected a number or a special token name")


class AUVocab(TokenVocab):
    """AU intensity vocabulary: ``SOS`` (id 0), ``EOS`` (id 1), then quantized intensities."""

    @classmethod
    def from_step(  # type: ignore[override]
        cls, step: float, *, low: float = 0.0, high: float = 5.0, specials: tuple[str, ...] = ("SOS", "EOS")
    ) -> AUVocab:
        """Linear quantization of AU intensities (0-5 by default) with SOS/EOS first."""
        return super().from_step(step, low=low, high=high, specials=specials)  # type: ignore[return-value]

    @property
    def sos_id(self) -> int:
        return self.special_id("SOS")

    @property
    def eos_id(self) -> int:
        return self.special_id("EOS")


class F0Vocab(TokenVocab):
    """F0 vocabulary: values clipped to 50-550 Hz and quantized (no special tokens by default)."""

    @classmethod
    def from_step(  # type: ignore[override]
        cls, step: float, *, low: float = 50.0, high: float = 550.0, specials: tuple[str, ...] = ()
    ) -> F0Vocab:
        """Linear quantization of F0 in Hz (50-550 by default)."""
        return super().from_step(step, low=low, high=high, specials=specials)  # type: ignore[return-value]
