"""The ``au`` label stage: frame-level AU intensities aligned to the 100 Hz feature frames.

Per recording (a manifest row with ``audio_path`` and ``labels_path``):

1. The label file is read with :func:`affectlab.data.frame_labels.read_frame_labels` (frames
   missing from the file are NaN) and the AU columns (``AU01``...) are kept.
2. Length check: label duration ``L / labels_rate_hz`` against the audio duration from the
   audio header. More than ``max(tolerance_s, tolerance_frac * audio duration)`` apart (default
   0.5 s or 5 %, whichever is larger) is an error: the labels probably belong to another clip.
3. Phases (onset / apex / offset / occurrence) are derived from the quantized intensities at the
   label rate (:func:`affectlab.data.labels.au_phases`, rules and reading documented there).
4. Everything is aligned to the feature grid by sample-and-hold
   (:func:`affectlab.data.labels.align_to_frames`): ``T`` = the number of openSMILE LLD frames
   of this audio (:func:`affectlab.features.audio.n_feature_frames`), frame ``t`` at the centre
   of its analysis window, ``t * 10 ms + 30 ms``
   (:data:`affectlab.features.audio.FRAME_OFFSET_S`), takes the label frame whose span holds
   that time; frames past the last label are invalid (NaN / -1). The offset is stored with
   every row (``frame_offset_s``) so training recovers each label frame exactly
   (:func:`affectlab.data.labels.label_frame_spans`).

Output columns are listed in :mod:`affectlab.features.io`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from affectlab.data.frame_labels import read_frame_labels
from affectlab.data.labels import PHASES, align_to_frames, au_phases, au_vocab, quantize_au
from affectlab.errors import ConfigError, DatasetError
from affectlab.features.audio import FRAME_OFFSET_S, FRAME_RATE_HZ, n_feature_frames, read_audio_info, resampled_length

__all__ = ["AuLabelExtractor", "au_columns"]


def au_columns(columns: list[str]) -> list[str]:
    """The action-unit columns (``AU01``-style names) among label columns, sorted."""
    return sorted(c for c in columns if c.startswith("AU") and c[2:].isdigit())


class AuLabelExtractor:
    """Extractor for the ``au`` label set (see module docstring).

    Args:
        aus: AU column names to keep (every row must have them).
        au_step: Intensity quantization step (must divide 5).
        tolerance_s: Allowed label/audio duration mismatch in seconds ...
        tolerance_frac: ... or as a fraction of the audio duration, whichever is larger.
    """

    kind = "labels"
    name = "au"
    version = "1"
    requires = ("audio_path", "labels_path")
    path_column = "labels_path"
    num_cpus = 1.0

    def __init__(self, *, aus: list[str], au_step: float = 0.1, tolerance_s: float = 0.5, tolerance_frac: float = 0.05) -> None:
        self._params = self.describe(aus=aus, au_step=au_step, tolerance_s=tolerance_s, tolerance_frac=tolerance_frac)["params"]
        self.aus = list(aus)
        self.step = float(au_step)
        self.tolerance_s = float(tolerance_s)
        self.tolerance_frac = float(tolerance_frac)

    @classmethod
    def describe(cls, *, aus: list[str], au_step: float = 0.1, tolerance_s: float = 0.5, tolerance_frac: float = 0.05) -> dict[str, Any]:
        """Name, version and parameters (validated)."""
        au_vocab(au_step)
        if not aus:
            raise ConfigError("aus: no AU columns to label (expected names like AU01, AU12)")
        if tolerance_s < 0 or tolerance_frac < 0:
            raise ConfigError(f"tolerance: must be >= 0, got {tolerance_s} s / {tolerance_frac}")
        params = {"aus": list(aus), "au_step": float(au_step), "frame_rate_hz": FRAME_RATE_HZ,
                  "alignment": "sample-and-hold", "frame_offset_s": FRAME_OFFSET_S, "phases_on": "quantized intensity at label rate",
                  "tolerance_s": float(tolerance_s), "tolerance_frac": float(tolerance_frac)}
        return {"name": cls.name, "version": cls.version, "params": params}

    def params(self) -> dict[str, Any]:
        """Parameters that determine the output."""
        return dict(self._params)

    def metadata(self) -> dict[str, Any]:
        """Schema metadata: the K AU names of every T x K column."""
        return {"columns": {c: self.aus for c in ("intensity", "au_id", *PHASES)}}

    def _dense(self, row: dict[str, Any]) -> np.ndarray:
        labels = read_frame_labels(row)
        missing = [a for a in self.aus if a not in labels.columns]
        if missing:
            raise DatasetError(f"{row['labels_path']}: missing AU column(s) {missing}; has {list(labels.columns)}")
        n = int(labels.index.max()) + 1 if len(labels) else 0
        dense = np.full((n, len(self.aus)), np.nan, dtype=np.float32)
        dense[labels.index.to_numpy()] = labels[self.aus].to_numpy(dtype=np.float32)
        return dense

    def process(self, row: dict[str, Any]) -> dict[str, Any]:
        """Align, quantize and classify one recording's AU labels."""
        rate = row.get("labels_rate_hz")
        if not rate or rate <= 0:
            raise DatasetError(f"sample_id {row['sample_id']!r}: labels_rate_hz missing in the manifest (card frame_labels.rate_hz)")
        info = read_audio_info(row["audio_path"])
        n_frames = n_feature_frames(resampled_length(info["frames"], info["sample_rate"]))
        dense = self._dense(row)
        label_s, audio_s = len(dense) / rate, info["duration_s"]
        tolerance = max(self.tolerance_s, self.tolerance_frac * audio_s)
        if abs(label_s - audio_s) > tolerance:
            raise DatasetError(
                f"{row['labels_path']}: labels cover {label_s:.2f} s ({len(dense)} frames at {rate:g} Hz) but the "
                f"audio lasts {audio_s:.2f} s; allowed mismatch {tolerance:.2f} s"
            )
        quantized, _ = quantize_au(dense, self.step)
        phases = au_phases(quantized)
        intensity = align_to_frames(dense, rate, n_frames, FRAME_RATE_HZ, frame_offset_s=FRAME_OFFSET_S)
        out: dict[str, Any] = {
            "sample_id": row["sample_id"],
            "subject": row["subject"],
            "n_frames": n_frames,
            "frame_rate_hz": FRAME_RATE_HZ,
            "frame_offset_s": FRAME_OFFSET_S,
            "label_rate_hz": float(rate),
            "duration_s": float(audio_s),
            "intensity": intensity,
            "au_id": quantize_au(intensity, self.step)[1],
        }
        for name in PHASES:
            held = align_to_frames(np.where(phases[name] < 0, np.nan, phases[name]), rate, n_frames, FRAME_RATE_HZ,
                                   frame_offset_s=FRAME_OFFSET_S)
            out[name] = np.where(np.isnan(held), -1, held).astype(np.int8)
        return out
