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

:func:`quantize_au` / :func:`quantize_f0` encode (values to ids); :func:`vocab_values` reads
either mapping back as one value per id (NaN for the special tokens; JSON's string keys
accepted) and :func:`decode_ids` / :func:`special_id` decode ids and find ``SOS`` / ``EOS``.
This is the one vocabulary implementation: preprocessing writes these dicts to ``vocab.json``,
training and the models read them through the same functions.

Alignment
---------
One convention for a frame's time: **the centre of its analysis window**.

* Label frame ``k`` at ``r`` Hz covers ``[k/r, (k+1)/r)``; its time is the centre ``(k + 1/2)/r``.
* Feature frame ``t`` at ``R`` Hz sits at ``c_t = offset + t/R``, where ``offset`` is the centre of
  frame 0's analysis window. For openSMILE LLDs (eGeMAPSv02 and ComParE_2016 alike) the frame
  starts at ``t * 10 ms`` and its descriptors come from a 20 ms and a 60 ms window starting
  there, so the frame's time is the centre of the whole 60 ms span: ``t * 10 ms + 30 ms``
  (:data:`affectlab.features.audio.FRAME_OFFSET_S`, derivation there).

:func:`align_to_frames` (preprocessing) samples and holds: feature frame ``t`` takes the label
frame whose span holds its time, ``floor(c_t * r)`` (:func:`frame_label_index`); frames whose
label frame is past the last one, or unannotated (NaN), are invalid (NaN).

:func:`label_frame_spans` (training at the label rate) goes back: label frame ``k`` owns the
feature frames whose time lies in its span (the frames that hold its value), and its *nearest
frame* is the feature frame whose time is nearest its centre (ties to the earlier frame). When
the span holds at least one feature frame time, the nearest frame is one of them and carries
label frame ``k``'s own value exactly; features are averaged over the span and held inputs
(F0 tokens) are taken from the nearest frame. A span without any feature frame time (label
frames faster than the features, or the first label frames when ``offset`` exceeds one label
period, e.g. 50 Hz labels: frame 0 covers 0-20 ms, the first LLD time is 30 ms) never reached
the stored grid: its label is unknown (-1) and its input is the nearest frame's.

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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from affectlab.errors import ConfigError, DatasetError

__all__ = [
    "AU_MAX",
    "F0_MAX_HZ",
    "F0_MIN_HZ",
    "IGNORE_ID",
    "PHASES",
    "LabelFrameSpans",
    "align_to_frames",
    "au_phases",
    "au_vocab",
    "class_counts",
    "clip_f0",
    "decode_ids",
    "f0_vocab",
    "frame_label_index",
    "label_frame_spans",
    "quantize_au",
    "quantize_f0",
    "special_id",
    "vocab_values",
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


def _vocab_entries(id_to_token: Mapping[Any, Any], source: str) -> list[float | str]:
    """The tokens of ids ``0 .. V-1`` in order: numbers as floats, special tokens as strings."""
    try:
        parsed = {int(key): value for key, value in id_to_token.items()}
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{source}: ids must be integers, got keys {list(id_to_token)[:5]}") from exc
    if not parsed or sorted(parsed) != list(range(len(parsed))):
        raise ConfigError(f"{source}: ids must be 0..{len(parsed) - 1} without gaps, got {sorted(parsed)[:10]}")
    tokens: list[float | str] = []
    for key in range(len(parsed)):
        value = parsed[key]
        if isinstance(value, str):
            tokens.append(value)
        elif isinstance(value, int | float | np.integer | np.floating) and not isinstance(value, bool) \
                and math.isfinite(value):
            tokens.append(float(value))
        else:
            raise ConfigError(f"{source}: id {key} maps to {value!r}; expected a number or a special token name")
    if all(isinstance(t, str) for t in tokens):
        raise ConfigError(f"{source}: no numeric values, only special tokens {tokens}")
    return tokens


def vocab_values(id_to_token: Mapping[Any, Any], *, source: str = "vocabulary") -> np.ndarray:
    """The value of every id of an ``ID_to_AU`` / ``ID_to_F0`` mapping; NaN for special tokens.

    Args:
        id_to_token: ``{id: value or special token}`` as :func:`au_vocab` / :func:`f0_vocab`
            build it, or as read back from ``vocab.json`` (string keys are accepted).
        source: Names the vocabulary in error messages.

    Returns:
        float64 array of length V: entry ``i`` is id ``i``'s value.

    Raises:
        ConfigError: Ids that are not exactly ``0 .. V-1``, a token that is neither a finite
            number nor a string, or no numeric token at all.
    """
    return np.array([np.nan if isinstance(t, str) else t for t in _vocab_entries(id_to_token, source)],
                    dtype=np.float64)


def special_id(id_to_token: Mapping[Any, Any], token: str, *, source: str = "vocabulary") -> int:
    """The id of special token ``token`` (e.g. ``"SOS"``, ``"EOS"``, ``"UNVOICED"``).

    Raises:
        ConfigError: The vocabulary is malformed (see :func:`vocab_values`) or has no such token
            (the message lists the ones it has).
    """
    tokens = _vocab_entries(id_to_token, source)
    if token in tokens:
        return tokens.index(token)
    raise ConfigError(f"{source}: no special token {token!r}; it has {[t for t in tokens if isinstance(t, str)]}")


def decode_ids(ids: np.ndarray | Sequence[int], values: np.ndarray) -> np.ndarray:
    """Token ids (any shape) to values, with ``values`` from :func:`vocab_values`.

    Special tokens and :data:`IGNORE_ID` (no label) decode to NaN.

    Returns:
        float64 array of the shape of ``ids``.

    Raises:
        DatasetError: An id outside ``0 .. V-1`` (other than :data:`IGNORE_ID`).
    """
    table = np.asarray(values, dtype=np.float64)
    arr = np.asarray(ids, dtype=np.int64)
    known = arr != IGNORE_ID
    bad = known & ((arr < 0) | (arr >= len(table)))
    if bad.any():
        raise DatasetError(f"token ids must be in 0..{len(table) - 1} (or {IGNORE_ID} for no label), "
                           f"got {sorted(set(arr[bad].tolist()))[:10]}")
    return np.where(known, table[np.where(known, arr, 0)], np.nan)


# tolerance, in label frames, for a frame time that falls on a label frame boundary: computed as
# (t + offset * R) * r / R this is exact for integral offset * R and rates, but other offsets
# round (0.29 * 100 is 28.999999999999996) and must not be floored to the previous frame
_BOUNDARY_TOL = 1e-6


def _check_rate(value: float, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | np.floating | np.integer) \
            or not math.isfinite(value) or value <= 0:
        raise DatasetError(f"{name}: must be a positive number of frames per second, got {value!r}")
    return float(value)


def _check_offset(value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float | np.floating | np.integer) \
            or not math.isfinite(value) or value < 0:
        raise DatasetError(f"frame_offset_s: must be a finite time >= 0 in seconds, got {value!r}")
    return float(value)


def frame_label_index(n_frames: int, frame_rate_hz: float, label_rate_hz: float, *, frame_offset_s: float) -> np.ndarray:
    """The label frame whose span holds each feature frame's time (see "Alignment" above).

    Feature frame ``t`` sits at ``frame_offset_s + t / frame_rate_hz``; label frame ``k`` covers
    ``[k / label_rate_hz, (k + 1) / label_rate_hz)``. A time on a boundary belongs to the later
    label frame (within a 1e-6 label-frame tolerance for floating-point rounding).

    Returns:
        int64 array of ``n_frames`` non-decreasing label frame indices.

    Raises:
        DatasetError: A rate that is not a positive number, a negative offset or frame count.
    """
    big_r = _check_rate(frame_rate_hz, "frame_rate_hz")
    r = _check_rate(label_rate_hz, "label_rate_hz")
    offset = _check_offset(frame_offset_s)
    if int(n_frames) < 0:
        raise DatasetError(f"n_frames: must be >= 0, got {n_frames!r}")
    # t + offset*R in feature frames, then to label frames: exact for integral offset*R and rates
    t = np.arange(int(n_frames), dtype=np.float64) + offset * big_r
    return np.floor(t * r / big_r + _BOUNDARY_TOL).astype(np.int64)


def align_to_frames(
    values: np.ndarray, label_rate_hz: float, n_frames: int, frame_rate_hz: float, *, frame_offset_s: float
) -> np.ndarray:
    """Sample-and-hold labels (L x K, or L) at ``label_rate_hz`` onto ``n_frames`` feature frames.

    Feature frame ``t`` (time ``frame_offset_s + t / frame_rate_hz``, the centre of its analysis
    window) takes the label frame whose span holds that time (:func:`frame_label_index`); frames
    whose label frame is beyond the labels are NaN.

    Returns:
        float32 array with ``n_frames`` rows and the same trailing shape as ``values``.

    Raises:
        DatasetError: Bad rates or offset (see :func:`frame_label_index`).
    """
    x = np.asarray(values, dtype=np.float32)
    idx = frame_label_index(n_frames, frame_rate_hz, label_rate_hz, frame_offset_s=frame_offset_s)
    out = np.full((int(n_frames), *x.shape[1:]), np.nan, dtype=np.float32)
    inside = idx < x.shape[0]
    out[inside] = x[idx[inside]]
    return out


@dataclass(frozen=True)
class LabelFrameSpans:
    """Where each of ``K`` label frames lies on the feature grid (:func:`label_frame_spans`).

    ``start[k]:stop[k]``: the feature frames whose time lies in label frame ``k``'s span (empty
    when ``start == stop``); ``nearest[k]``: the feature frame whose time is nearest its centre;
    ``label_frame[k]``: the feature frame that holds label frame ``k``'s value after
    :func:`align_to_frames` (``nearest[k]`` when it lies in the span), -1 when none does.
    """

    start: np.ndarray
    stop: np.ndarray
    nearest: np.ndarray
    label_frame: np.ndarray

    def __len__(self) -> int:
        return len(self.start)


def label_frame_spans(n_frames: int, frame_rate_hz: float, label_rate_hz: float, *, frame_offset_s: float) -> LabelFrameSpans:
    """The feature frames of every label frame ``0 .. K-1`` (see "Alignment" above).

    ``K`` is one more than the label frame holding the last feature frame's time: every label
    frame up to the end of the features gets an entry, also one whose span holds no feature
    frame time (its ``label_frame`` is -1). Uses the same :func:`frame_label_index` as
    :func:`align_to_frames`, so the frames of a span hold exactly that label frame's value.

    Raises:
        DatasetError: Bad rates or offset (see :func:`frame_label_index`).
    """
    idx = frame_label_index(n_frames, frame_rate_hz, label_rate_hz, frame_offset_s=frame_offset_s)
    n_label = int(idx[-1]) + 1 if len(idx) and idx[-1] >= 0 else 0
    k = np.arange(n_label, dtype=np.int64)
    start = np.searchsorted(idx, k, side="left").astype(np.int64)
    stop = np.searchsorted(idx, k, side="right").astype(np.int64)
    # nearest frame time to the centre (k + 1/2) / r, ties to the earlier frame: t = ceil(u - 1/2)
    big_r, r = float(frame_rate_hz), float(label_rate_hz)
    u = (k + 0.5) * (big_r / r) - float(frame_offset_s) * big_r
    nearest = np.clip(np.ceil(u - 0.5 - _BOUNDARY_TOL), 0, max(int(n_frames) - 1, 0)).astype(np.int64)
    inside = idx[nearest] == k if n_label else np.zeros(0, dtype=bool)
    label_frame = np.where(inside, nearest, np.where(stop > start, start, -1)).astype(np.int64)
    return LabelFrameSpans(start=start, stop=stop, nearest=nearest, label_frame=label_frame)


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
