"""Read preprocessing output into per-recording arrays: the only module that knows its layout.

Reads with :mod:`affectlab.features.io` (the layout is documented there): the feature set
``features/<set>/`` (``features``: T x D at 100 Hz; ``f0_id``: quantized F0 for ``f0_to_au``),
the label set ``labels/<set>/`` (``onset``/``apex``/``offset``/``occurrence``/``au_id``: T x K,
sample-and-hold aligned to the feature frames; -1 = no label), the vocabularies and the
per-subject feature statistics (``stats/<set>/``). Rows are joined on ``sample_id``.

Rates (``data.rate``): ``labels`` (default) trains at the annotation rate (``label_rate_hz``:
25 Hz for video AUs, 30 or 29.97 fps for Aff-Wild2 / RAVDESS, any rate): exactly one step per
label frame, and ``frame_rate_hz`` is the label rate. Step ``k`` is label frame ``k``, the span
``[k/r, (k+1)/r)``; with feature frame ``t`` at the centre of its analysis window,
``frame_offset_s + t/R`` (stored with the labels; 0 for label sets written before it), the rule
is :func:`affectlab.data.labels.label_frame_spans` (written out in that module's "Alignment"):

* features: the mean (NaN ignored) over the feature frames whose time lies in the span;
* F0 tokens (``f0_to_au``): held, not averaged: the token of the feature frame whose time is
  nearest the label frame's centre ``(k + 1/2)/r`` (ties to the earlier frame);
* labels: the stored value at that same nearest frame. Preprocessing held label frame ``k`` on
  exactly the feature frames of its span, and the nearest frame is one of them whenever the
  span holds any, so this is label frame ``k``'s own value. A span that holds no feature frame
  time (only at the very start, or for labels faster than the features) lost its value in
  preprocessing: its labels are -1 (not scored) and its input is the nearest frame's.

The steps run from label frame 0 to the one holding the last feature frame's time (label frames
past the end of the annotation are -1, as stored). ``features`` keeps the feature rate (100 Hz)
and the stored frames as they are. Label columns are exposed per AU as
``<AU>_<kind>`` (e.g. ``AU17_occurrence``) and ``<AU>_id`` (intensity tokens).

AU quantization step (``data.au_step``, ``f0_to_au`` only): by default the tokens are the ones
preprocessing wrote (``--au-step``). With ``data.au_step`` set, the stored ``intensity`` column
(the unquantized, frame-aligned intensities) is quantized again with that step and the AU
vocabulary is rebuilt for it (:func:`affectlab.data.labels.au_vocab`), so a sweep can vary the
step without re-running preprocessing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from affectlab.data.labels import LabelFrameSpans, label_frame_spans
from affectlab.errors import DatasetError, StorageError

__all__ = ["Corpus", "load_corpus", "target_column"]

KINDS = ("onset", "apex", "offset", "occurrence")


@dataclass(frozen=True)
class Corpus:
    """Per-recording arrays.

    ``features[i]``: (T_i, D) float32, or (T_i,) int64 F0 tokens when ``is_token_input``;
    ``labels[name][i]``: (T_i,) int64 with -1 where there is no label; ``stats``: per-subject
    feature statistics (:class:`affectlab.features.normalize.SubjectStats`) or None.
    """

    sample_ids: list[str]
    subjects: list[str]
    features: list[np.ndarray]
    labels: dict[str, list[np.ndarray]]
    feature_names: list[str]
    frame_rate_hz: float
    vocab: dict[str, Any] | None = None
    is_token_input: bool = False
    stats: Any = None
    meta: dict[str, Any] = field(default_factory=dict)

    def restrict(self, subjects: Sequence[str]) -> Corpus:
        """Only the recordings of ``subjects``."""
        keep = [i for i, s in enumerate(self.subjects) if s in set(subjects)]
        return replace(
            self,
            sample_ids=[self.sample_ids[i] for i in keep],
            subjects=[self.subjects[i] for i in keep],
            features=[self.features[i] for i in keep],
            labels={k: [v[i] for i in keep] for k, v in self.labels.items()},
        )

    def num_classes(self, column: str) -> int:
        """2 for binary AU classes; the AU vocabulary size for token columns."""
        if column.endswith("_id") and self.vocab is not None:
            return len(self.vocab["id_values"])
        return 2

    def model_kwargs(self, task: str) -> dict[str, Any]:
        """Builder keywords that come from the data."""
        if task == "f0_to_au":
            v = self.vocab or {}
            return {"au_vocab_size": len(v["id_values"]), "f0_vocab_size": int(v["f0_vocab_size"]),
                    "sos_id": int(v["sos_id"]), "eos_id": int(v["eos_id"])}
        return {"input_dim": int(self.features[0].shape[1])}


def target_column(corpus: Corpus, task: str, au: str, kind: str) -> str:
    """The label column of a target: ``AU17_occurrence``, or ``AU17_id`` for ``f0_to_au``.

    Raises:
        DatasetError: The column is not in the labels; lists the ones that are.
    """
    column = f"{au}_id" if task == "f0_to_au" else f"{au}_{kind}"
    if column not in corpus.labels:
        raise DatasetError(f"label column {column!r} not found; available: {', '.join(sorted(corpus.labels))}")
    return column


def _held(x: np.ndarray, spans: LabelFrameSpans) -> np.ndarray:
    """Per label frame, the value of the feature frame nearest its centre (F0 tokens)."""
    return x[spans.nearest]


def _labels_at(y: np.ndarray, spans: LabelFrameSpans) -> np.ndarray:
    """Per label frame, its own stored label (the frame that holds it); -1 where none does."""
    has = spans.label_frame >= 0
    return np.where(has, y[np.where(has, spans.label_frame, 0)], -1).astype(np.int64)


def _pooled(x: np.ndarray, spans: LabelFrameSpans) -> np.ndarray:
    """Per label frame, the mean over the feature frames of its span (NaN ignored; NaN if all are).

    A span without feature frames takes the features of the frame nearest its centre.
    """
    x64 = np.asarray(x, dtype=np.float64)
    finite = ~np.isnan(x64)
    zero = np.zeros((1, *x64.shape[1:]))
    sums = np.concatenate([zero, np.cumsum(np.where(finite, x64, 0.0), axis=0)])
    counts = np.concatenate([zero, np.cumsum(finite, axis=0, dtype=np.float64)])
    total = sums[spans.stop] - sums[spans.start]
    n = counts[spans.stop] - counts[spans.start]
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.where(n > 0, total / np.maximum(n, 1.0), np.nan)
    empty = spans.stop == spans.start
    mean[empty] = x64[spans.nearest[empty]]
    return mean.astype(np.float32)


def _label_columns(labels: Any, io: Any) -> dict[str, list[np.ndarray]]:
    """``<AU>_<kind>`` and ``<AU>_id`` columns, one (T,) array per recording."""
    names = io.label_names(labels)
    out: dict[str, list[np.ndarray]] = {}
    for kind, suffix in [*((k, k) for k in KINDS), ("au_id", "id")]:
        if kind not in labels.column_names:
            continue
        arrays = io.column_arrays(labels, kind, np.int64)
        for k, au in enumerate(names):
            out[f"{au}_{suffix}"] = [a[:, k] if a.ndim == 2 and a.size else np.zeros(0, np.int64) for a in arrays]
    return out


def _requantized_ids(labels: Any, io: Any, step: float) -> dict[str, list[np.ndarray]]:
    """``<AU>_id`` columns quantized from the stored intensities with ``step``."""
    from affectlab.data.labels import quantize_au

    if "intensity" not in labels.column_names:
        raise DatasetError("data.au_step needs the label set's intensity column; re-run `affectlab preprocess`")
    names = io.label_names(labels)
    arrays = io.column_arrays(labels, "intensity", np.float32)
    return {
        f"{au}_id": [quantize_au(a[:, k], step)[1].astype(np.int64) if a.ndim == 2 and a.size else np.zeros(0, np.int64)
                     for a in arrays]
        for k, au in enumerate(names)
    }


def _vocab(root: str, feature_set: str, label_set: str, io: Any, au_step: float | None = None) -> dict[str, Any]:
    from affectlab.data.labels import au_vocab, special_id, vocab_values

    au = au_vocab(au_step) if au_step is not None else io.load_vocab(root, label_set, kind="labels")
    f0 = io.load_vocab(root, feature_set, kind="features")
    au_source, f0_source = f"{label_set} vocabulary of {root}", f"{feature_set} vocabulary of {root}"
    values = vocab_values(au["ID_to_AU"], source=au_source).tolist()
    f0_values = vocab_values(f0["ID_to_F0"], source=f0_source).tolist()
    return {"id_values": values, "sos_id": special_id(au["ID_to_AU"], "SOS", source=au_source),
            "eos_id": special_id(au["ID_to_AU"], "EOS", source=au_source),
            "f0_vocab_size": len(f0_values), "f0_values": f0_values}


def _frame_offsets(labels: Any) -> list[float]:
    """Per label row, the time of feature frame 0 it was aligned with (0 before it was stored)."""
    if "frame_offset_s" not in labels.column_names:
        return [0.0] * labels.num_rows
    return [0.0 if v is None else float(v) for v in labels.column("frame_offset_s").to_pylist()]


def load_corpus(data: Any) -> Corpus:
    """Read and join the features and labels named by ``data`` (a ``DataConfig``).

    Raises:
        DatasetError: No features or labels, a missing F0 column, or no recording with both.
    """
    from affectlab.features import io
    from affectlab.features.normalize import load_subject_stats

    label_set = data.label_set or "au"
    try:
        feats = io.load_features(data.features, data.feature_set)
        labels = io.load_labels(data.features, label_set)
    except StorageError as exc:
        raise DatasetError(f"{exc}; run `affectlab preprocess` first (data.features={data.features!r})") from exc
    tokens = data.task == "f0_to_au"
    if tokens and "f0_id" not in feats.column_names:
        raise DatasetError(f"feature set {data.feature_set!r} has no f0_id column; use data.feature_set=egemaps")
    xs = io.column_arrays(feats, "f0_id" if tokens else "features", np.int64 if tokens else np.float32)
    ys = _label_columns(labels, io)
    au_step = getattr(data, "au_step", None) if tokens else None
    if au_step is not None:
        ys.update(_requantized_ids(labels, io, au_step))
    l_index = {sid: i for i, sid in enumerate(labels.column("sample_id").to_pylist())}
    f_rate = float(feats.column("frame_rate_hz")[0].as_py())
    l_rate = float(labels.column("label_rate_hz")[0].as_py()) if "label_rate_hz" in labels.column_names else f_rate
    offsets = _frame_offsets(labels)
    at_labels = data.rate == "labels" and "label_rate_hz" in labels.column_names
    keep, x_out, y_out = [], [], {k: [] for k in ys}
    for i, sid in enumerate(feats.column("sample_id").to_pylist()):
        j = l_index.get(sid)
        if j is None or not len(xs[i]):
            continue
        n_frames = min(len(xs[i]), *(len(v[j]) for v in ys.values()))
        if at_labels:
            spans = label_frame_spans(n_frames, f_rate, l_rate, frame_offset_s=offsets[j])
            if len(spans) < 1:
                continue
            x = xs[i][:n_frames]
            x_out.append(_held(x, spans) if tokens else np.nan_to_num(_pooled(x, spans)))
            for name in ys:
                y_out[name].append(_labels_at(ys[name][j][:n_frames], spans))
        else:
            if n_frames < 1:
                continue
            x_out.append(xs[i][:n_frames] if tokens else np.nan_to_num(xs[i][:n_frames]).astype(np.float32))
            for name in ys:
                y_out[name].append(ys[name][j][:n_frames])
        keep.append(i)
    if not keep:
        raise DatasetError(f"no recording of {data.features!r} has both features ({data.feature_set}) and labels ({label_set})")
    sample_ids, subjects = feats.column("sample_id").to_pylist(), feats.column("subject").to_pylist()
    try:
        stats = None if tokens else load_subject_stats(data.features, data.feature_set)
    except (StorageError, FileNotFoundError):
        stats = None
    return Corpus(
        sample_ids=[sample_ids[i] for i in keep], subjects=[str(subjects[i]) for i in keep], features=x_out,
        labels=y_out, feature_names=["f0_id"] if tokens else io.feature_names(feats), frame_rate_hz=l_rate if at_labels else f_rate,
        vocab=_vocab(data.features, data.feature_set, label_set, io, au_step) if tokens else None, is_token_input=tokens, stats=stats,
    )
