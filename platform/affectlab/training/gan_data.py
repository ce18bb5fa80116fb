"""The data of ``data.task: gan_au | gan_va | gan_au_va``: per-frame face crops with AU / VA labels.

From a preprocessing output (``data.features``, run with ``--video landmarks,face --face-size S
--color``):

1. **Crops**: the ``face`` set's ``face_<S>`` column (``S = data.gan.image_size``), one row per
   video, ``T x S x S x 3`` uint8 (grey ``T x S x S`` crops are accepted and repeated over three
   channels; :attr:`GanData.colour` says which). Every ``data.gan.frame_step``-th frame is kept.
2. **Per-frame labels**: ``affectlab preprocess`` does not store video frame labels (its ``au``
   label set is aligned to audio frames), so they are read from the corpus itself: the dataset
   card (``data.gan.card``, else the ``card`` of the preprocess run in ``<features>/_SUCCESS.json``)
   is loaded, its manifest built and each row's frame labels read with
   :func:`affectlab.data.frame_labels.read_frame_labels`. Crop frame ``t`` takes label frame ``t``
   (the crops are decoded at the video's frame rate, the ``faces`` labels are per video frame);
   frames past the label file are unlabelled. AU occurrence = intensity ``>
   data.gan.au_threshold`` (-1 = no label); valence / arousal as they are (NaN = no label). A
   label column the corpus lacks is an error naming it and the columns it has.
3. **Split** (:func:`affectlab.training.balanced_split.balanced_identity_split`): identity
   (subject) disjoint, ``data.gan.test_fraction`` of the frames held out, the most label-alike of
   ``data.gan.n_draws`` draws (seeded by ``data.split_seed``), with ``drop_frames_without_au``.
   The held-out part is the seed's *test* part, which the seed scores at every checkpoint; here it
   is the ``val`` part the loop evaluates every ``training.eval_every`` iterations.
4. **Arrays** in memory (``image`` uint8, ``au`` int8 (N, n) 0/1/-1, ``va`` float32 (N, 2)),
   batched by :meth:`GanData.train_batches` (reshuffled each pass, seeded) and
   :meth:`GanData.eval_batches`; :meth:`GanData.ray_datasets` gives Ray Datasets for Ray Train.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from affectlab import storage
from affectlab.errors import ConfigError, DatasetError
from affectlab.features import io
from affectlab.features.crops import cell_array
from affectlab.training.balanced_split import BalancedSplit, balanced_identity_split
from affectlab.training.config import ExperimentConfig
from affectlab.training.tasks.gan import GAN_TASKS

__all__ = ["GanData", "frame_labels_by_sample", "load_gan_data"]

VA_COLUMNS = ("valence", "arousal")


@dataclass
class GanData:
    """Frames, labels and the split of a GAN training (see the module docstring)."""

    head: str
    aus: tuple[str, ...]
    parts: dict[str, dict[str, np.ndarray]]  # part -> {"image", "au"?, "va"?, "subject", "sample_id", "frame"}
    split: BalancedSplit
    colour: bool
    model_kwargs: dict[str, Any]
    extra: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return sum(len(p["image"]) for p in self.parts.values())

    def columns(self) -> tuple[str, ...]:
        """The batch columns of this head: ``image`` and ``au`` and/or ``va``."""
        return ("image",) + (("au",) if "au" in self.head else ()) + (("va",) if "va" in self.head else ())

    def train_batches(self, batch_size: int, seed: int) -> Iterator[dict[str, np.ndarray]]:
        """One shuffled pass over the training frames in batches of ``batch_size`` (the last, partial
        batch is dropped when the part holds at least one full batch, so every step sees ``batch_size``)."""
        part = self.parts["train"]
        n = len(part["image"])
        order = np.random.default_rng(seed).permutation(n)
        stop = n - n % batch_size if n >= batch_size else n
        for start in range(0, stop, batch_size):
            idx = order[start:start + batch_size]
            yield {k: part[k][idx] for k in self.columns()}

    def eval_batches(self, part: str = "val", batch_size: int = 256) -> Iterator[dict[str, np.ndarray]]:
        """The frames of ``part`` in order, in batches of ``batch_size``."""
        arrays = self.parts[part]
        for start in range(0, len(arrays["image"]), batch_size):
            yield {k: arrays[k][start:start + batch_size] for k in self.columns()}

    def ray_datasets(self) -> dict[str, Any]:
        """``{"train", "val"}`` as Ray Datasets of the same columns (for the ``ray_train`` runner)."""
        import ray.data

        return {part: ray.data.from_items([{k: self.parts[part][k][i] for k in self.columns()}
                                           for i in range(len(self.parts[part]["image"]))])
                for part in ("train", "val")}

    def summary(self) -> dict[str, Any]:
        """Counts for ``result.json``: frames and subjects per part, the split's distance, dropped frames."""
        return {
            "head": self.head, "aus": list(self.aus), "colour": self.colour,
            "frames": {p: int(len(a["image"])) for p, a in self.parts.items()},
            "subjects": {p: sorted({str(s) for s in a["subject"]}) for p, a in self.parts.items()},
            "split_distance": float(self.split.distance), "split_worst_distance": float(self.split.worst_distance),
            "test_fraction": float(self.split.test_fraction), "frames_dropped_without_au": int(self.split.n_dropped),
        }


def _card_path(config: ExperimentConfig) -> str:
    if config.data.gan.card:
        return config.data.gan.card
    uri = storage.join(config.data.features, "_SUCCESS.json")
    if not storage.exists(uri):
        raise DatasetError(f"data.features={config.data.features!r}: no _SUCCESS.json (not a finished preprocess "
                           f"run); set data.gan.card to the dataset card that holds the frame labels")
    card = json.loads(storage.read_text(uri)).get("card")
    if not card:
        raise DatasetError(f"{uri} names no dataset card; set data.gan.card")
    return str(card)


def frame_labels_by_sample(card: str) -> dict[str, Any]:
    """``sample_id -> DataFrame`` of per-frame labels for every manifest row of ``card`` that has them."""
    from affectlab.data.cards import build_manifest, load_card
    from affectlab.data.frame_labels import read_frame_labels

    manifest = build_manifest(load_card(card))
    rows = manifest.to_pylist()
    return {row["sample_id"]: read_frame_labels(row) for row in rows
            if row.get("labels_path") or row.get("va_labels_path")}


def _label_arrays(labels: Any, n_frames: int, aus: tuple[str, ...], threshold: float, sample_id: str,
                  need_au: bool, need_va: bool) -> tuple[np.ndarray | None, np.ndarray | None, np.ndarray | None]:
    """Per-frame AU occurrence (int8, -1 = no label), V/A (NaN = no label) and the largest AU value per column."""
    from affectlab.data.frame_labels import normalise_au_name

    frame = labels.rename(columns=normalise_au_name).reindex(range(n_frames))
    au = va = au_max = None
    if need_au:
        missing = [a for a in aus if a not in frame.columns]
        if missing:
            raise DatasetError(f"sample_id {sample_id!r}: data.gan.aus {missing} not among its label columns "
                               f"{sorted(frame.columns)}")
        values = frame[list(aus)].to_numpy(np.float64)
        au = np.where(np.isnan(values), -1, values > threshold).astype(np.int8)
        au_max = np.max(np.where(np.isnan(values), -np.inf, values), axis=0, initial=-np.inf)
    if need_va:
        missing = [c for c in VA_COLUMNS if c not in frame.columns]
        if missing:
            raise DatasetError(f"sample_id {sample_id!r}: the gan VA heads need columns {list(VA_COLUMNS)}; it has "
                               f"{sorted(frame.columns)}")
        va = frame[list(VA_COLUMNS)].to_numpy(np.float32)
    return au, va, au_max


def _check_threshold(aus: tuple[str, ...], threshold: float, au_max: np.ndarray) -> None:
    """Labels that are non-zero somewhere but never above ``data.gan.au_threshold`` in any AU are a
    scale mismatch (binary 0/1 labels with a 0-5 intensity threshold): an error naming each AU's
    largest value, not a training with no positive frame. One faint AU among others is legitimate."""
    if not (au_max > 0).any() or (au_max > threshold).any():
        return
    shown = ", ".join(f"{a} (largest value {m:g})" for a, m in zip(aus, au_max, strict=True) if m > 0)
    raise DatasetError(f"data.gan.au_threshold={threshold:g}: no AU exceeds it in any frame: {shown}; so no frame "
                       f"would count as showing an AU. Binary 0/1 labels need a threshold below 1 (0: any trace), "
                       f"0-5 intensities one below 5 (2: the DISFA convention)")


def load_gan_data(config: ExperimentConfig) -> GanData:
    """Read crops and labels, split them (module docstring).

    Raises:
        ConfigError: ``data.gan.drop_frames_without_au`` on a task without AU labels.
        DatasetError: No crop column of the configured size (the sizes present listed), a video
            without frame labels, missing label columns, or too few subjects for a split.
    """
    if config.data.task not in GAN_TASKS:
        raise DatasetError(f"data.task={config.data.task!r} is not a GAN task ({', '.join(GAN_TASKS)})")
    s = config.data.gan
    head = GAN_TASKS[config.data.task]
    need_au, need_va = head in ("au", "au_va"), head in ("va", "au_va")
    if s.drop_frames_without_au and not need_au:
        raise ConfigError(f"data.gan.drop_frames_without_au=true needs AU labels; data.task={config.data.task!r} has "
                          f"none (use gan_au or gan_au_va, or set it to false)")
    column = f"face_{s.image_size}"
    columns = io.set_columns(config.data.features, "face")
    if column not in columns:
        sizes = [c for c in columns if c.startswith("face_")]
        raise DatasetError(f"data.gan.image_size={s.image_size}: the face set has no {column!r} column (it has "
                           f"{sizes}); re-run `affectlab preprocess ... --video landmarks,face --face-size "
                           f"{s.image_size} --color`")
    table = io.load_features(config.data.features, "face", columns=["sample_id", "subject", column])
    labels = frame_labels_by_sample(_card_path(config))
    images, aus, vas, subjects, samples, frames = [], [], [], [], [], []
    au_max = np.full(len(s.aus), -np.inf)
    unlabelled = []
    for i, (sid, subject) in enumerate(zip(table.column("sample_id").to_pylist(), table.column("subject").to_pylist(),
                                           strict=True)):
        if config.data.subjects is not None and subject not in config.data.subjects:
            continue
        crops = cell_array(table, column, i, np.uint8)
        if crops.size == 0:
            continue
        if sid not in labels:
            unlabelled.append(sid)
            continue
        keep = np.arange(0, len(crops), s.frame_step)
        au, va, sample_max = _label_arrays(labels[sid], len(crops), s.aus, s.au_threshold, sid, need_au, need_va)
        if sample_max is not None:
            au_max = np.maximum(au_max, sample_max)
        images.append(crops[keep])
        if au is not None:
            aus.append(au[keep])
        if va is not None:
            vas.append(va[keep])
        subjects += [subject] * len(keep)
        samples += [sid] * len(keep)
        frames.append(keep)
    if unlabelled:
        raise DatasetError(f"{len(unlabelled)} video(s) of the face set have no frame labels in the card's manifest, "
                           f"e.g. {unlabelled[:3]}")
    if not images:
        raise DatasetError(f"data.features={config.data.features!r}: no face crops to train on")
    if need_au:
        _check_threshold(tuple(s.aus), s.au_threshold, au_max)
    arrays: dict[str, np.ndarray] = {"image": np.concatenate(images), "subject": np.asarray(subjects, dtype=object),
                                     "sample_id": np.asarray(samples, dtype=object), "frame": np.concatenate(frames)}
    if need_au:
        arrays["au"] = np.concatenate(aus)
    if need_va:
        arrays["va"] = np.concatenate(vas)
    au_float = np.where(arrays["au"] < 0, np.nan, arrays["au"]).astype(np.float64) if need_au else None
    split = balanced_identity_split(arrays["subject"], au=au_float, va=arrays.get("va"), test_fraction=s.test_fraction,
                                    n_draws=s.n_draws, seed=config.data.split_seed,
                                    drop_frames_without_au=s.drop_frames_without_au)
    parts = {"train": {k: v[split.train_mask] for k, v in arrays.items()},
             "val": {k: v[split.test_mask] for k, v in arrays.items()}}
    colour = arrays["image"].ndim == 4
    return GanData(head=head, aus=tuple(s.aus) if need_au else (), parts=parts, split=split, colour=colour,
                   model_kwargs={"head": head, "n_aus": len(s.aus), "image_size": s.image_size},
                   extra={"aus": tuple(s.aus)})
