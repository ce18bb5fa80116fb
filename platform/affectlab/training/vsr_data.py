"""The data of the lip reading stages: transcribed clips, the speaker split, token ids, mouth ROI batches.

From an ``affectlab preprocess --video landmarks,mouth`` output (``data.features``):

1. **Clips**: the ``mouth_roi`` index (``sample_id, subject, n_frames``) joined with the clip
   labels' ``transcript``. Transcripts are normalised by the model's vocabulary (lower-cased,
   spaces collapsed) and encoded to character ids; a clip without a transcript, or with a
   character outside the vocabulary, is an error naming the clip. With ``data.vsr.max_words``
   (the word curriculum of lip reading, Chung et al. 2017) each train and val clip with more
   words becomes every run of that many consecutive words (:func:`word_segments`): its frames
   cut at the clip labels' ``word_times``, its text those words, its id ``<clip>@w<i>-<j>``;
   the test part stays whole. Clips (or segments) longer than ``data.vsr.max_frames`` are left
   out (``dropped``).
2. **Split** by speaker (:func:`resolve_split`): a named split of the dataset card, subject lists,
   or a seeded draw of ``val_fraction`` / ``test_fraction`` of the speakers.
3. **Rows**: stage 1 (``vsr_lm``) reads transcripts only (``tokens``: character ids, no SOS /
   EOS; the *training* speakers' for training). Stages 2 and 3 read the ``mouth`` column in a
   streaming ``map_batches`` (:class:`MouthRows`): each clip is made grey (colour ROIs; the seed's
   preprocessing has ``convert_gray=True``), centre-cropped (``crop_size``), resized to the
   model's ``input_size`` (area averaging) and kept as uint8 ``video`` (T, S, S) next to its
   ``tokens``. Stage 2 with frame-wise cross-entropy stretches a
   clip with fewer frames than characters to one frame per character (nearest frame; the seed
   interpolates frames "instead of utilizing padding", A.1).
4. **Parts**: per part a lazy Ray Dataset streamed from the Parquet files (Ray Train runner;
   with ``data.vsr.cache`` the resized clips are read once and kept in the object store) or,
   in-process, an :class:`~affectlab.training.runners.InMemoryPart` read here in one pass (rows
   ordered by sample id).

:func:`collate` pads a batch of variable-length rows: ``video`` (B, T_max, S, S), ``mask`` (B,
T_max), ``tokens`` (B, L_max) right-padded with PAD, ``token_lengths`` (B,).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from affectlab.errors import DatasetError
from affectlab.features import io
from affectlab.features.crops import cell_array
from affectlab.models.vsr import VSRConfig, vsr_config
from affectlab.models.vsr_vocab import EOS_ID, PAD_ID, CharVocab
from affectlab.training.config import ExperimentConfig
from affectlab.training.runners import InMemoryPart
from affectlab.training.splits import Split
from affectlab.training.vsr_config import MOUTH_COLUMN, MOUTH_SET

__all__ = ["PARTS", "Clip", "MouthRows", "VsrData", "collate", "encode_transcript", "frame_targets",
           "load_vsr_data", "model_config", "resize_clip", "resolve_split", "stretch_indices", "transcribed_clips",
           "word_segments"]

PARTS = ("train", "val", "test")


@dataclass(frozen=True)
class Clip:
    """One transcribed clip: its normalised ``text`` and character ids ``tokens`` (no SOS / EOS).

    A word segment (``data.vsr.max_words``) names the mouth ROI row it is cut from (``source``)
    and its frames ``span`` (start, end) there; a whole clip has neither.
    """

    sample_id: str
    subject: str
    text: str
    tokens: tuple[int, ...]
    n_frames: int
    source: str | None = None
    span: tuple[int, int] | None = None

    @property
    def row_id(self) -> str:
        """The ``sample_id`` of the mouth ROI row holding this clip's frames."""
        return self.source or self.sample_id


@dataclass
class VsrData:
    """Everything a lip reading stage trains and scores on (see the module docstring)."""

    split: Split
    clips: dict[str, list[Clip]]
    datasets: dict[str, Any]  # part -> Ray Dataset or InMemoryPart (test absent without test speakers)
    split_name: str | None = None
    dropped: list[dict[str, str]] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        """Clip and speaker counts per part, the split's name and the clips left out."""
        return {"clips": {p: len(c) for p, c in self.clips.items()},
                "subjects": {p: sorted({c.subject for c in clips}) for p, clips in self.clips.items()},
                "split_name": self.split_name, "dropped": self.dropped}


def model_config(config: ExperimentConfig) -> VSRConfig:
    """The lip reader sizes of ``model.kwargs`` (input size, channels, characters)."""
    return vsr_config(**config.model.kwargs, _model=config.model.name)


def encode_transcript(vocab: CharVocab, text: str, sample_id: str) -> tuple[str, tuple[int, ...]]:
    """The normalised transcript and its character ids.

    Raises:
        DatasetError: Empty after normalisation, or a character outside the vocabulary (names the clip).
    """
    norm = vocab.normalize(text)
    if not norm:
        raise DatasetError(f"clip {sample_id}: empty transcript {text!r}")
    try:
        return norm, tuple(vocab.encode(norm))
    except DatasetError as exc:
        raise DatasetError(f"clip {sample_id}: {exc}") from None


# -- split ------------------------------------------------------------------------------------------


def _drawn_split(subjects: Sequence[str], val_fraction: float, test_fraction: float, seed: int) -> Split:
    names = sorted(set(subjects))
    order = [names[i] for i in np.random.default_rng(seed).permutation(len(names))]
    n_test = max(1, round(test_fraction * len(names))) if test_fraction > 0 else 0
    n_val = max(1, round(val_fraction * len(names)))
    if len(names) - n_test - n_val < 1:
        raise DatasetError(f"{len(names)} speaker(s) {names}: too few for val_fraction {val_fraction} and "
                           f"test_fraction {test_fraction} (each part needs one); name a split instead")
    test, val = order[:n_test], order[n_test:n_test + n_val]
    return Split(tuple(sorted(order[n_test + n_val:])), tuple(sorted(val)), tuple(sorted(test)))


def resolve_split(config: ExperimentConfig, subjects: Sequence[str]) -> tuple[Split, str | None]:
    """The speaker split of ``data.vsr.split`` over the corpus' ``subjects``, and the split's name.

    Raises:
        DatasetError: A named split the dataset card does not have (the known names listed), a
            subject of the split with no clip, or too few speakers for the fractions.
    """
    s, features = config.data.vsr, config.data.features
    if s.split is None:
        return _drawn_split(subjects, s.val_fraction, s.test_fraction, config.data.split_seed), None
    name = s.split if isinstance(s.split, str) else None
    if name is not None:
        splits = io.load_splits(features)
        if name not in splits:
            known = ", ".join(sorted(splits)) or "none (give subject lists, or split: null for a seeded draw)"
            raise DatasetError(f"data.vsr.split {name!r}: no such split in the dataset card of {features}; "
                               f"its splits: {known}")
        parts = {p: tuple(splits[name].get(p, ())) for p in PARTS}
    else:
        parts = {p: tuple(getattr(s.split, p)) for p in PARTS}
    present = set(subjects)
    missing = [f"{subject} ({part})" for part in PARTS for subject in parts[part] if subject not in present]
    if missing:
        raise DatasetError(f"data.vsr.split names speaker(s) without any clip in {features} ({MOUTH_SET}): "
                           f"{', '.join(missing)}; speakers present: {sorted(present)}")
    return Split(parts["train"], parts["val"], parts["test"]), name


# -- clips ------------------------------------------------------------------------------------------


def word_segments(clip: Clip, words: Sequence[Mapping[str, Any]], fps: float, max_words: int,
                  vocab: CharVocab) -> tuple[list[Clip], dict[str, str]]:
    """Every run of ``max_words`` consecutive words of ``clip`` as its own clip (module docstring;
    the clip itself when it has no more words than that), and the runs left out because their
    timings fall outside the clip's frames (segment id -> reason).

    ``words``: the clip's word timings (``word``, ``start``, ``end`` in seconds); ``fps``: its frame rate.

    Raises:
        DatasetError: The timed words differ from the clip's transcript (names the clip).
    """
    names = [str(w["word"]) for w in words]
    if vocab.normalize(" ".join(names)) != clip.text:
        raise DatasetError(f"clip {clip.sample_id}: the timed words {names} differ from its transcript {clip.text!r}")
    k = min(max_words, len(words))
    if k == len(words):
        return [clip], {}
    out, outside = [], {}
    for i in range(len(words) - k + 1):
        run, sid = words[i:i + k], f"{clip.sample_id}@w{i}-{i + k - 1}"
        start, end = round(float(run[0]["start"]) * fps), min(clip.n_frames, round(float(run[-1]["end"]) * fps))
        if not 0 <= start < end:
            outside[sid] = (f"words {names[i:i + k]} at {run[0]['start']}-{run[-1]['end']} s fall outside the "
                            f"clip's {clip.n_frames} frames at {fps} fps")
            continue
        text, tokens = encode_transcript(vocab, " ".join(names[i:i + k]), sid)
        out.append(Clip(sid, clip.subject, text, tokens, end - start, source=clip.sample_id, span=(start, end)))
    return out, outside


def _word_times(features: str, labels: pa.Table) -> dict[str, Any]:
    """The clip labels' word timings by sample id.

    Raises:
        DatasetError: The clip labels have no ``word_times`` column.
    """
    if "word_times" not in labels.column_names:
        raise DatasetError(f"{features}: the clip labels have no word timings (columns: {labels.column_names}); "
                           "data.vsr.max_words needs them: re-run `affectlab preprocess` on this output with a "
                           "card whose adapter reads them (lrs: the WORD START END lines of each .txt)")
    return dict(zip(labels.column("sample_id").to_pylist(), labels.column("word_times").to_pylist(), strict=True))


def transcribed_clips(config: ExperimentConfig, vocab: CharVocab) -> tuple[Split, str | None, dict[str, list[Clip]],
                                                                           list[dict[str, str]]]:
    """Split, split name, the clips of each part (by sample id) and the clips left out (step 1-2).

    Raises:
        DatasetError: Clips without a transcript or with unknown characters (named), a bad split,
            or an empty train / val part.
    """
    features, max_words = config.data.features, config.data.vsr.max_words
    columns = ("sample_id", "subject", "n_frames", *(("frame_rate_hz",) if max_words else ()))
    index = io.set_index(features, MOUTH_SET, columns=columns)
    ids = [str(x) for x in index.column("sample_id").to_pylist()]
    subjects = [str(x) for x in index.column("subject").to_pylist()]
    frames = [int(x) for x in index.column("n_frames").to_pylist()]
    rates = dict(zip(ids, index.column("frame_rate_hz").to_pylist(), strict=True)) if max_words else {}
    split, name = resolve_split(config, subjects)
    labels = io.load_clip_labels(features)
    if "transcript" not in labels.column_names:
        raise DatasetError(f"{features}: the clip labels have no transcript column (columns: {labels.column_names}); "
                           "preprocess a corpus whose adapter reads transcripts (lrs)")
    texts = dict(zip(labels.column("sample_id").to_pylist(), labels.column("transcript").to_pylist(), strict=True))
    timings = _word_times(features, labels) if max_words else {}
    part_of = {subject: part for part in PARTS for subject in getattr(split, part)}
    clips: dict[str, list[Clip]] = {p: [] for p in PARTS}
    dropped, problems = [], []
    limit = config.data.vsr.max_frames
    for sid, subject, n in sorted(zip(ids, subjects, frames, strict=True)):
        part = part_of.get(subject)
        if part is None:
            continue
        if texts.get(sid) is None:
            problems.append(f"{sid}: no transcript")
            continue
        try:
            text, tokens = encode_transcript(vocab, str(texts[sid]), sid)
            pieces, outside = [Clip(sid, subject, text, tokens, n)], {}
            if max_words and part != "test":
                if not timings.get(sid):
                    raise DatasetError(f"{sid}: no word timings (data.vsr.max_words needs them)")
                if not rates.get(sid):
                    raise DatasetError(f"{sid}: no frame rate in {MOUTH_SET} (data.vsr.max_words needs it)")
                pieces, outside = word_segments(pieces[0], timings[sid], float(rates[sid]), max_words, vocab)
        except DatasetError as exc:
            problems.append(str(exc))
            continue
        dropped += [{"sample_id": segment, "part": part, "reason": reason} for segment, reason in outside.items()]
        for clip in pieces:
            if limit is not None and clip.n_frames > limit:
                dropped.append({"sample_id": clip.sample_id, "part": part,
                                "reason": f"{clip.n_frames} frames > data.vsr.max_frames {limit}"})
            else:
                clips[part].append(clip)
    if problems:
        shown = "; ".join(problems[:5]) + (f"; ... ({len(problems)} in all)" if len(problems) > 5 else "")
        raise DatasetError(f"{features}: {len(problems)} clip(s) cannot be transcribed: {shown}")
    for part in ("train", "val"):
        if not clips[part]:
            raise DatasetError(f"the {part} part of the speaker split has no usable clip (speakers "
                               f"{list(getattr(split, part))}, {len(dropped)} clip(s) left out)")
    return split, name, clips, dropped


# -- frames and targets -----------------------------------------------------------------------------


def stretch_indices(n_frames: int, length: int) -> np.ndarray:
    """Frame indices that stretch ``n_frames`` frames to ``length`` (nearest frame), or all
    frames when there are already ``length`` or more."""
    if n_frames >= length:
        return np.arange(n_frames)
    return np.minimum((np.arange(length) * n_frames) // length, n_frames - 1)


def resize_clip(video: np.ndarray, size: int, crop: int | None = None) -> np.ndarray:
    """(T, H, W[, 3]) uint8 -> centre crop ``crop`` -> (T, size, size[, 3]) uint8 (area averaging)."""
    import torch
    import torch.nn.functional as F

    if crop is not None and crop < min(video.shape[1:3]):
        top, left = (video.shape[1] - crop) // 2, (video.shape[2] - crop) // 2
        video = video[:, top:top + crop, left:left + crop]
    if video.shape[1:3] == (size, size):
        return np.ascontiguousarray(video)
    x = torch.tensor(video, dtype=torch.float32)
    x = x.unsqueeze(1) if x.dim() == 3 else x.permute(0, 3, 1, 2)  # (T, C, H, W)
    y = F.interpolate(x, size=(size, size), mode="area").round().clamp(0, 255).to(torch.uint8)
    y = y.squeeze(1) if video.ndim == 3 else y.permute(0, 2, 3, 1)
    return y.numpy()


def frame_targets(tokens: np.ndarray, token_lengths: np.ndarray, frame_lengths: np.ndarray, steps: int, *,
                  pad: str = "eos") -> np.ndarray:
    """Frame-wise targets of stage 2 (the seed's ``VideoDataset``): (B, steps) int64.

    Frame ``t < L_b`` of clip b gets its ``t``-th character; frames ``L_b <= t < n_b`` get EOS
    (``pad="eos"``: the seed right-pads the label with id 0 up to the frame count, its ``'\\n'``)
    or PAD (``pad="ignore"``: no loss); padded frames ``t >= n_b`` get PAD (ignored). A clip with
    fewer frames than characters must have been stretched first (:func:`stretch_indices`).

    Raises:
        ValueError: A clip has fewer frames than characters, or ``pad`` is unknown.
    """
    if pad not in ("eos", "ignore"):
        raise ValueError(f"pad={pad!r}: must be 'eos' or 'ignore'")
    short = np.flatnonzero(frame_lengths < token_lengths)
    if len(short):
        raise ValueError(f"clip(s) {short.tolist()} have fewer frames than characters "
                         f"({frame_lengths[short].tolist()} < {token_lengths[short].tolist()}); stretch them first")
    out = np.full((len(tokens), steps), PAD_ID, dtype=np.int64)
    t = np.arange(steps)[None, :]
    if pad == "eos":
        out[(t >= token_lengths[:, None]) & (t < frame_lengths[:, None])] = EOS_ID
    width = min(steps, tokens.shape[1])
    chars = t[:, :width] < token_lengths[:, None]
    out[:, :width][chars] = tokens[:, :width][chars]
    return out


def _pad(cells: Sequence[np.ndarray], dtype: Any, value: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(B, max_len, ...) padded with ``value`` and the lengths (B,)."""
    lengths = np.asarray([len(c) for c in cells], dtype=np.int64)
    shape = np.asarray(cells[0]).shape[1:] if len(cells) else ()
    out = np.full((len(cells), int(lengths.max(initial=0)), *shape), value, dtype=dtype)
    for i, c in enumerate(cells):
        out[i, :len(c)] = c
    return out, lengths


def collate(batch: dict[str, Any]) -> dict[str, np.ndarray]:
    """Pad a batch of rows (module docstring): ``tokens`` (B, L) PAD-padded and ``token_lengths``;
    with a ``video`` column also ``video`` (B, T, S, S[, 3]) zero-padded, ``mask`` (B, T) and ``frames`` (B,).

    Raises:
        DatasetError: The clips of the batch have different frame sizes.
    """
    out: dict[str, np.ndarray] = {}
    out["tokens"], out["token_lengths"] = _pad([np.asarray(t, np.int64) for t in batch["tokens"]], np.int64, PAD_ID)
    if "video" in batch:
        videos = [np.asarray(v) for v in batch["video"]]
        sizes = {v.shape[1:] for v in videos}
        if len(sizes) > 1:
            raise DatasetError(f"clips of one batch have different frame sizes: {sorted(sizes)}")
        out["video"], out["frames"] = _pad(videos, np.uint8)
        out["mask"] = np.arange(out["video"].shape[1])[None, :] < out["frames"][:, None]
    return out


# -- rows and parts ---------------------------------------------------------------------------------


class MouthRows:
    """``map_batches``: mouth ROI rows -> ``sample_id``, ``video`` (T, S, S) uint8 grey, ``tokens``, ``n_frames``.

    Args:
        clips: The part's clips (their tokens by sample id).
        size: The model's input size.
        crop: Centre crop before resizing (None: none).
        stretch: Stretch clips shorter than their transcript to one frame per character.
    """

    def __init__(self, clips: Sequence[Clip], size: int, crop: int | None, stretch: bool) -> None:
        self.clips_of: dict[str, list[Clip]] = {}
        for clip in clips:
            self.clips_of.setdefault(clip.row_id, []).append(clip)
        self.size, self.crop, self.stretch = size, crop, stretch

    def rows(self, batch: pa.Table) -> tuple[list[str], list[np.ndarray], list[np.ndarray]]:
        """Sample ids, resized videos and token ids of the clips (and word segments) of the batch's rows."""
        ids, videos, tokens = [], [], []
        for i, row_id in enumerate(str(s) for s in batch.column("sample_id").to_pylist()):
            whole = cell_array(batch, MOUTH_COLUMN, i, np.uint8)
            if whole.ndim == 4:  # colour ROIs: grey, as the seed's preprocessing (convert_gray=True)
                whole = np.round(whole.astype(np.float32) @ np.float32([0.299, 0.587, 0.114])).astype(np.uint8)
            for clip in self.clips_of.get(row_id, ()):
                video = whole if clip.span is None else whole[clip.span[0]:clip.span[1]]
                if self.stretch:
                    video = video[stretch_indices(len(video), len(clip.tokens))]
                ids.append(clip.sample_id)
                videos.append(resize_clip(video, self.size, self.crop))
                tokens.append(np.asarray(clip.tokens, np.int64))
        return ids, videos, tokens

    def __call__(self, batch: pa.Table) -> pa.Table:
        from ray.data.extensions import ArrowVariableShapedTensorArray, ArrowVariableShapedTensorType

        ids, videos, tokens = self.rows(batch)
        if ids:
            video, token = (ArrowVariableShapedTensorArray.from_numpy(videos),
                            ArrowVariableShapedTensorArray.from_numpy(tokens))
        else:  # an empty block keeps the schema (Ray cannot build an empty ragged array from numpy)
            kinds = (ArrowVariableShapedTensorType(pa.uint8(), 3), ArrowVariableShapedTensorType(pa.int64(), 1))
            video, token = (t.wrap_array(pa.array([], t.storage_type)) for t in kinds)
        return pa.table({"sample_id": pa.array(ids, pa.string()),
                         "n_frames": pa.array([len(v) for v in videos], pa.int64()), "video": video, "tokens": token})


def _token_part(clips: Sequence[Clip], in_process: bool) -> Any:
    """A transcripts-only part (stage 1): ``sample_id`` and ``tokens`` per clip."""
    arrays = {"sample_id": np.asarray([c.sample_id for c in clips]),
              "tokens": _objects([np.asarray(c.tokens, np.int64) for c in clips])}
    if in_process:
        return InMemoryPart(arrays)
    import ray.data

    return ray.data.from_items([{"sample_id": c.sample_id, "tokens": np.asarray(c.tokens, np.int64)} for c in clips])


def _objects(cells: Sequence[np.ndarray]) -> np.ndarray:
    out = np.empty(len(cells), dtype=object)
    for i, c in enumerate(cells):
        out[i] = c
    return out


def _video_parts_in_process(config: ExperimentConfig, clips: dict[str, list[Clip]], mapper: MouthRows,
                            ) -> dict[str, InMemoryPart]:
    """Every part's clips read in this process in one pass over the set (rows ordered by sample id)."""
    part_of = {c.sample_id: part for part, part_clips in clips.items() for c in part_clips}
    sources = sorted({c.row_id for part_clips in clips.values() for c in part_clips})
    rows: dict[str, dict[str, tuple[np.ndarray, np.ndarray]]] = {part: {} for part in clips}
    for table in io.iter_set_batches(config.data.features, MOUTH_SET, columns=["sample_id", MOUTH_COLUMN],
                                     sample_ids=sources, batch_rows=4):
        for sid, video, tokens in zip(*mapper.rows(table), strict=True):
            rows[part_of[sid]][sid] = (video, tokens)
    out = {}
    for part, found in rows.items():
        order = sorted(found)  # independent of how the files were committed
        out[part] = InMemoryPart({"sample_id": np.asarray(order),
                                  "n_frames": np.asarray([len(found[s][0]) for s in order]),
                                  "video": _objects([found[s][0] for s in order]),
                                  "tokens": _objects([found[s][1] for s in order])})
    return out


def _video_parts_ray(config: ExperimentConfig, clips: dict[str, list[Clip]], mapper: MouthRows) -> dict[str, Any]:
    """Every part as a lazy Ray Dataset streamed from the Parquet files; with ``data.vsr.cache`` each
    part's resized clips are read once and materialised (the Ray Train runner then iterates the
    cached blocks every epoch instead of re-running the read)."""
    ids = {part: sorted({c.row_id for c in part_clips}) for part, part_clips in clips.items()}

    def read(sample_ids: list[str]) -> Any:
        ds = io.read_dataset(config.data.features, MOUTH_SET, columns=["sample_id", MOUTH_COLUMN],
                             sample_ids=sample_ids)
        return ds.map_batches(mapper, batch_format="pyarrow", batch_size=4)

    if not config.data.vsr.cache:
        return {part: read(part_ids) for part, part_ids in ids.items()}
    return {part: read(part_ids).materialize() for part, part_ids in ids.items()}


def load_vsr_data(config: ExperimentConfig, *, in_process: bool = False) -> VsrData:
    """Build :class:`VsrData` for a lip reading stage (see the module docstring).

    ``in_process``: read the parts into this process (in-process runner) instead of building
    lazy Ray Datasets.

    Raises:
        DatasetError / StorageError: Missing sets or transcripts, unknown characters, a split that
            does not fit the corpus, an empty part.
    """
    cfg = model_config(config)
    split, name, clips, dropped = transcribed_clips(config, cfg.vocab)
    parts = [p for p in PARTS if clips[p]]
    s = config.data.vsr
    if config.data.task == "vsr_lm":
        datasets = {p: _token_part(clips[p], in_process) for p in parts}
    else:
        if MOUTH_COLUMN not in io.set_columns(config.data.features, MOUTH_SET):
            raise DatasetError(f"{config.data.features}: the {MOUTH_SET} set has no {MOUTH_COLUMN!r} column")
        stretch = config.data.task == "vsr_visual" and s.stage2_loss == "ce"
        mapper = MouthRows([c for p in parts for c in clips[p]], cfg.input_size, s.crop_size, stretch)
        used = {p: clips[p] for p in parts}
        datasets = _video_parts_in_process(config, used, mapper) if in_process else \
            _video_parts_ray(config, used, mapper)
    return VsrData(split, clips, datasets, name, dropped)
