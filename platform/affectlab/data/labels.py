"""Pure label logic: quantization vocabularies, frame-rate alignment and AU phase classes.

Everything here works on numpy arrays and plain dicts (no I/O, no Ray), so it is unit-tested on
hand-made sequences.

Vocabularies (after ``000_*``)
------------------------------
AU intensities (0-5) are quantized linearly with a step that divides 5 into a vocabulary with
two special tokens::

    ID_to_AU = {0: "SOS", 1: "EOS", 2: 0.0, 3: step, 4: 2*step, ..., 2 + 5/step: 5.0}
    AU_to_ID = {v: k for k, v in ID_to_AU.items()}

F0 is clipped to 50-550 Hz and quantized the same way, with one more token for unvoiced
frames::

    ID_to_F0 = {0: "SOS", 1: "EOS", 2: "UNVOICED", 3: 50.0, 4: 50 + step, ..., 550.0}

Frames without a label get :data:`IGNORE_ID` (-1), which is not in any vocabulary.

Alignment
---------
Label frame ``i`` at ``r`` Hz covers ``[i/r, (i+1)/r)``; feature frame ``t`` at ``R`` Hz sits at
``t/R`` (openSMILE frame start). :func:`align_to_frames` samples and holds: feature frame ``t``
takes label frame ``floor(t * r / R)`` (the nearest *previous* label frame); frames past the
last label frame, or whose label frame is unannotated (NaN), are invalid (NaN).

AU phases (``003_*`` Section III-D, our precise reading)
------------------------------------------------------
Phases are computed on the *quantized* intensity at the label's own frame rate (the rules talk
about "two consecutive frames" of the annotation; after sample-and-hold to 100 Hz a single
decrease would be followed by repeats), then aligned like any label. Per AU:

* **occurrence**: every frame with intensity > 0; an *episode* is a maximal run of such frames
  (NaN frames also end an episode). occurrence == onset | apex | offset.
* Within an episode, phases cycle onset -> apex -> offset (-> onset ...):

  - **offset** starts at frame ``t`` when the intensity decreases over two consecutive frames,
    ``x[t] < x[t-1]`` and ``x[t+1] < x[t]`` (the drop to 0 right after an episode counts as the
    second decrease). It lasts while the intensity does not rise and ends with the episode (drop
    to zero) or at a *new onset*: the first frame with ``x[t] > x[t-1]``.
  - **onset** starts at the episode's first frame (the first increasing change from 0) or at a
    new onset; it covers the rise, including flat or briefly dipping stretches ("initial
    periods with little change ... if a granular increase occurs"), up to the frame before the
    span's peak. The onset frame itself is always onset, even when it jumps straight to the
    peak.
  - **apex** runs from the first frame that reaches the span's maximum (span = onset start up
    to the next offset start, or the episode end) until the offset starts; a one-frame dip
    does not end it.

  A single-frame decrease never starts an offset, so an episode that drops from its apex to 0
  in one step has no offset frames. An episode at the very start of a sequence is treated as
  starting with an onset.

Class arrays use 1 (class present), 0 (absent) and -1 (frame invalid: unannotated).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from affectlab.errors import ConfigError

__all__ = [
    "AU_MAX",
    "F0_MAX_HZ",
    "F0_MIN_HZ",
    "IGNORE_ID",
    "PHASES",
    "align_to_frames",
    "au_phases",
    "au_vocab",
    "class_counts",
    "clip_f0",
    "f0_vocab",
    "quantize_au",
    "quantize_f0",
]

IGNORE_ID = -1
AU_MAX = 5.0
F0_MIN_HZ = 50.0
F0_MAX_HZ = 550.0
PHASES = ("onset", "apex", "offset", "occurrence")
_SPECIAL = ("SOS", "EOS")


def _check_step(step: float, span: float, what: str, key: str) -> int:
    """Number of steps in ``span``; the step must be positive and divide ``span``."""
    if not isinstance(step, int | float) or isinstance(step, bool) or not step > 0 or math.isinf(step):
        raise ConfigError(f"{key}: must be a positive number, got {step!r}")
    n = span / step
    if abs(n - round(n)) > 1e-6 or round(n) < 1:
        raise ConfigError(
            f"{key}: {step!r} does not divide the {what} range ({span:g}) into whole steps; "
            f"choose a divisor, e.g. {', '.join(f'{span / k:g}' for k in (50, 20, 10, 5))}"
        )
    return int(round(n))


def au_vocab(step: float = 0.1) -> dict[str, Any]:
    """The AU intensity vocabulary for a quantization ``step``.

    Returns:
        ``{"step": step, "ID_to_AU": {id: token or value}, "AU_to_ID": {token or value: id}}``
        with ids 0 (SOS), 1 (EOS), then 2.. for 0.0, step, ..., 5.0.

    Raises:
        ConfigError: ``step`` is not positive or does not divide 5.
    """
    n = _check_step(step, AU_MAX, "AU intensity 0-5", "au_step")
    id_to_au: dict[int, Any] = {0: "SOS", 1: "EOS"}
    id_to_au.update({2 + k: round(k * step, 6) for k in range(n + 1)})
    return {"step": float(step), "ID_to_AU": id_to_au, "AU_to_ID": {v: k for k, v in id_to_au.items()}}


def f0_vocab(step: float = 10.0) -> dict[str, Any]:
    """The F0 vocabulary: SOS, EOS, UNVOICED, then 50, 50+step, ..., 550 Hz.

    Raises:
        ConfigError: ``step`` is not positive or does not divide 500 Hz.
    """
    n = _check_step(step, F0_MAX_HZ - F0_MIN_HZ, "F0 50-550 Hz", "f0_step")
    id_to_f0: dict[int, Any] = {0: "SOS", 1: "EOS", 2: "UNVOICED"}
    id_to_f0.update({3 + k: round(F0_MIN_HZ + k * step, 6) for k in range(n + 1)})
    return {"step": float(step), "ID_to_F0": id_to_f0, "F0_to_ID": {v: k for k, v in id_to_f0.items()}}


def quantize_au(intensity: np.ndarray, step: float) -> tuple[np.ndarray, np.ndarray]:
    """Quantize AU intensities (any shape) to the grid and to vocabulary ids.

    Values are clipped to 0-5 and rounded to the nearest multiple of ``step``.

    Returns:
        ``(values, ids)``: quantized float32 values (NaN stays NaN) and int16 ids
        (:data:`IGNORE_ID` where the input is NaN).
    """
    n = _check_step(step, AU_MAX, "AU intensity 0-5", "au_step")
    x = np.asarray(intensity, dtype=np.float64)
    nan = np.isnan(x)
    k = np.rint(np.clip(np.where(nan, 0.0, x), 0.0, AU_MAX) / step).astype(np.int64)
    k = np.clip(k, 0, n)
    values = np.where(nan, np.nan, k * step).astype(np.float32)
    ids = np.where(nan, IGNORE_ID, k + 2).astype(np.int16)
    return values, ids


def clip_f0(f0_hz: np.ndarray) -> np.ndarray:
    """Clip voiced F0 to 50-550 Hz; unvoiced (<= 0) stays 0; NaN stays NaN. Returns float32."""
    x = np.asarray(f0_hz, dtype=np.float64)
    voiced = x > 0
    return np.where(voiced, np.clip(x, F0_MIN_HZ, F0_MAX_HZ), np.where(np.isnan(x), np.nan, 0.0)).astype(np.float32)


def quantize_f0(f0_hz: np.ndarray, step: float) -> np.ndarray:
    """F0 in Hz (0 = unvoiced) to :func:`f0_vocab` ids (int16; NaN -> :data:`IGNORE_ID`)."""
    n = _check_step(step, F0_MAX_HZ - F0_MIN_HZ, "F0 50-550 Hz", "f0_step")
    x = clip_f0(f0_hz).astype(np.float64)
    nan = np.isnan(x)
    k = np.clip(np.rint((np.where(nan | (x <= 0), F0_MIN_HZ, x) - F0_MIN_HZ) / step), 0, n).astype(np.int64)
    ids = np.where(x > 0, k + 3, 2)
    return np.where(nan, IGNORE_ID, ids).astype(np.int16)


def align_to_frames(values: np.ndarray, label_rate_hz: float, n_frames: int, frame_rate_hz: float) -> np.ndarray:
    """Sample-and-hold labels (L x K, or L) at ``label_rate_hz`` onto ``n_frames`` feature frames.

    Feature frame ``t`` (time ``t / frame_rate_hz``) takes label frame
    ``floor(t * label_rate_hz / frame_rate_hz)``; frames beyond the labels are NaN.

    Returns:
        float32 array with ``n_frames`` rows and the same trailing shape as ``values``.
    """
    x = np.asarray(values, dtype=np.float32)
    # integer arithmetic where the rates allow it avoids 0.9999 -> 0 flooring errors
    idx = np.floor((np.arange(n_frames) * float(label_rate_hz) + 1e-6) / float(frame_rate_hz)).astype(np.int64)
    out = np.full((n_frames, *x.shape[1:]), np.nan, dtype=np.float32)
    inside = idx < x.shape[0]
    out[inside] = x[idx[inside]]
    return out


def _phases_1d(x: np.ndarray) -> np.ndarray:
    """Phase codes for one AU: 0 none, 1 onset, 2 apex, 3 offset, -1 invalid (see module doc)."""
    n = len(x)
    codes = np.where(np.isnan(x), -1, 0).astype(np.int8)
    t = 0
    while t < n:
        if not (x[t] > 0):
            t += 1
            continue
        end = t
        while end < n and x[end] > 0:
            end += 1
        after = x[end] if end < n else np.nan  # 0 when the episode drops to zero; NaN if unknown
        _episode(np.append(x[t:end], after), codes[t:end])
        t = end
    return codes


def _episode(x: np.ndarray, codes: np.ndarray) -> None:
    """Fill ``codes`` (length m) for one episode ``x[:m]``; ``x[m]`` is the value after it."""
    m = len(codes)
    start = 0
    while start < m:
        offset = next(
            (t for t in range(start + 1, m) if x[t] < x[t - 1] and x[t + 1] < x[t]),
            m,
        )
        peak = start + int(np.argmax(x[start:offset]))
        peak = max(peak, start + 1)
        codes[start : min(peak, offset)] = 1
        codes[peak:offset] = 2
        t = offset
        while t < m and (t == offset or not x[t] > x[t - 1]):
            t += 1
        codes[offset:t] = 3
        start = t


def au_phases(intensity: np.ndarray) -> dict[str, np.ndarray]:
    """Onset / apex / offset / occurrence classes of AU intensity sequences.

    Args:
        intensity: ``(L,)`` or ``(L, K)`` intensities at the label frame rate (quantized values
            recommended, see module docstring); NaN = unannotated.

    Returns:
        ``{"onset", "apex", "offset", "occurrence"}`` -> int8 arrays of the input's shape with
        1 / 0, and -1 on invalid frames.
    """
    x = np.asarray(intensity, dtype=np.float64)
    two_d = x.reshape(len(x), -1)
    codes = np.stack([_phases_1d(two_d[:, k]) for k in range(two_d.shape[1])], axis=1) if two_d.size else two_d.astype(np.int8)
    codes = codes.reshape(x.shape)
    invalid = codes < 0
    out = {}
    for name, code in (("onset", 1), ("apex", 2), ("offset", 3)):
        out[name] = np.where(invalid, -1, codes == code).astype(np.int8)
    out["occurrence"] = np.where(invalid, -1, codes > 0).astype(np.int8)
    return out


def class_counts(
    phase_arrays: Sequence[dict[str, np.ndarray]], names: Sequence[str]
) -> dict[str, dict[str, dict[str, int]]]:
    """Count positive / negative / invalid frames per AU and class over many recordings.

    Args:
        phase_arrays: One :func:`au_phases`-style dict of ``(T, K)`` arrays per recording.
        names: The K AU names.

    Returns:
        ``{au: {class: {"positive": n, "negative": n, "invalid": n}}}``.
    """
    counts = {n: {c: {"positive": 0, "negative": 0, "invalid": 0} for c in PHASES} for n in names}
    for arrays in phase_arrays:
        for cls in PHASES:
            a = np.asarray(arrays[cls]).reshape(-1, len(names))
            for k, name in enumerate(names):
                col = a[:, k]
                counts[name][cls]["positive"] += int((col == 1).sum())
                counts[name][cls]["negative"] += int((col == 0).sum())
                counts[name][cls]["invalid"] += int((col < 0).sum())
    return counts
