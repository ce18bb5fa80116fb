"""The crop stages: ``mouth_roi`` (T x 96 x 96 lip-reading ROI) and ``face`` (aligned face crops).

Both read a clip's landmarks from the ``landmarks`` set (the manifest row carries
``landmarks_part``, the Parquet file holding them), smooth them over time, similarity-align
every frame to the mean face (:mod:`affectlab.features.roi`) and warp each decoded frame
straight to its crop. Frames are decoded again at the landmarks' frame rate, batch by batch,
so a clip is never held in memory whole.

Columns: ``sample_id, subject, n_frames, frame_rate_hz, duration_s`` plus
``mouth`` (``mouth_roi``: list<list<list<uint8>>>, T x S x S gray, or T x S x S x 3 colour)
or ``face_<S>`` per requested size (``face``). Read them back with :func:`column_cells`.
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from affectlab import storage
from affectlab.errors import ConfigError, MediaError
from affectlab.features import roi
from affectlab.features.video import VideoReader

__all__ = ["FaceCropExtractor", "MouthRoiExtractor", "cell_array", "column_cells", "mean_face_id"]


def mean_face_id(mean_face: Any) -> str:
    """Short hash of a mean face (part of the crop sets' identity)."""
    arr = np.round(np.asarray(mean_face, dtype=np.float64), 3)
    return hashlib.sha256(arr.tobytes()).hexdigest()[:12]


def _flatten(values: pa.Array, dtype: Any) -> np.ndarray:
    shape = [len(values)]
    while pa.types.is_list(values.type) or pa.types.is_large_list(values.type):
        inner = values.flatten()
        shape.append(len(inner) // len(values) if len(values) else 0)
        values = inner
    return values.to_numpy(zero_copy_only=False).astype(dtype, copy=False).reshape(shape)


def cell_array(table: pa.Table, column: str, index: int, dtype: Any = np.float32) -> np.ndarray:
    """Row ``index`` of a nested-list column as a regular numpy array (any depth)."""
    cell = table.column(column)[index]
    if not cell.is_valid:
        return np.empty((0,), dtype)
    return _flatten(cell.values, dtype)


def column_cells(table: pa.Table, column: str, dtype: Any = np.uint8) -> list[np.ndarray]:
    """Every row of a nested-list column as numpy arrays, e.g. ``(T, 96, 96)`` mouth crops."""
    return [cell_array(table, column, i, dtype) for i in range(table.num_rows)]


class _CropExtractor:
    """Shared machinery: landmark look-up, smoothing, alignment, streaming warps."""

    kind = "features"
    version = "1"
    requires = ("video_path", "landmarks_part")
    path_column = "video_path"
    num_cpus = 1.0
    name = ""

    def __init__(self, *, mean_face: Any, fps: float | None = None, smooth_window: int = 12,
                 grayscale: bool = True, landmarks_version: str = "", **specific: Any) -> None:
        self._ident = self.describe(mean_face=mean_face, fps=fps, smooth_window=smooth_window,
                                    grayscale=grayscale, landmarks_version=landmarks_version, **specific)
        self.mean_face = np.asarray(mean_face, dtype=np.float64)
        self.fps, self.smooth_window, self.grayscale = fps, smooth_window, grayscale
        self._part: tuple[str, pa.Table] | None = None

    @classmethod
    def _specific(cls, **specific: Any) -> dict[str, Any]:
        raise NotImplementedError

    @classmethod
    def describe(cls, *, mean_face: Any, fps: float | None = None, smooth_window: int = 12,
                 grayscale: bool = True, landmarks_version: str = "", **specific: Any) -> dict[str, Any]:
        """Identity (name, version, params) without decoding anything."""
        arr = np.asarray(mean_face, dtype=np.float64)
        if arr.shape != (68, 2) or not np.isfinite(arr).all():
            raise ConfigError(f"{cls.name}: mean_face must be 68 x 2 finite points, got shape {arr.shape}")
        if smooth_window < 0:
            raise ConfigError(f"{cls.name}: smooth_window must be >= 0, got {smooth_window}")
        params = {"fps": None if fps is None else float(fps), "smooth_window": int(smooth_window),
                  "grayscale": bool(grayscale), "mean_face": mean_face_id(arr),
                  "landmarks_version": landmarks_version, **cls._specific(**specific)}
        return {"name": cls.name, "version": cls.version, "params": params}

    def params(self) -> dict[str, Any]:
        """See :meth:`describe`."""
        return self._ident["params"]

    def _landmarks(self, row: dict[str, Any]) -> np.ndarray:
        part = row["landmarks_part"]
        if self._part is None or self._part[0] != part:
            self._part = (part, storage.read_parquet(part, columns=["sample_id", "landmarks"]))
        table = self._part[1]
        hits = pc.index(table.column("sample_id"), row["sample_id"]).as_py()
        if hits < 0:
            raise MediaError(f"{row['sample_id']}: no landmarks in {part}")
        return cell_array(table, "landmarks", hits, np.float64).reshape(-1, 68, 2)

    def _matrices(self, smoothed: np.ndarray, aligned: np.ndarray) -> dict[str, tuple[np.ndarray, int]]:
        """Output column -> (per-frame warps (T, 2, 3), crop size)."""
        raise NotImplementedError

    def process(self, row: dict[str, Any]) -> dict[str, Any]:
        """Crop one clip.

        Raises:
            MediaError: Undecodable video, or its frame count differs from the landmarks'.
        """
        uri = row["video_path"]
        points = self._landmarks(row)
        smoothed = roi.smooth_landmarks(points, self.smooth_window)
        warps = self._matrices(smoothed, roi.alignment_matrices(smoothed, self.mean_face))
        crops: dict[str, list[np.ndarray]] = {col: [] for col in warps}
        n = 0
        with VideoReader(uri, fps=self.fps) as reader:
            for batch in reader.batches(32):
                start, n = n, n + len(batch)
                if n > len(points):
                    continue  # count the surplus for the message below
                for col, (mats, size) in warps.items():
                    crops[col].append(roi.warp_crops(batch, mats[start:n], size, grayscale=self.grayscale))
            fps = reader.fps
        if n != len(points):
            raise MediaError(f"{uri}: decoded {n} frames but the landmarks have {len(points)} "
                             "(was the landmarks set made at another fps?)")
        out = {"sample_id": row["sample_id"], "subject": row["subject"], "n_frames": n,
               "frame_rate_hz": fps, "duration_s": n / fps}
        return {**out, **{col: np.concatenate(parts) for col, parts in crops.items()}}


class MouthRoiExtractor(_CropExtractor):
    """``mouth_roi``: ``size x size`` crops centred on the aligned mouth (landmarks 48-67).

    Args:
        mean_face: 68 x 2 reference landmarks (:func:`affectlab.features.landmarks.dataset_mean_face`).
        fps: The landmarks set's fps option (``None``: native).
        smooth_window: Frames in the landmark smoothing window.
        grayscale: Gray ``(T, S, S)`` crops, else RGB ``(T, S, S, 3)``.
        landmarks_version: Version of the landmarks set used (recorded in the identity).
        size: Crop side (96 for lip reading).
    """

    name = "mouth_roi"

    @classmethod
    def _specific(cls, size: int = 96) -> dict[str, Any]:
        if size < 8:
            raise ConfigError(f"mouth_roi: size must be >= 8, got {size}")
        return {"size": int(size)}

    def _matrices(self, smoothed: np.ndarray, aligned: np.ndarray) -> dict[str, tuple[np.ndarray, int]]:
        size = self._ident["params"]["size"]
        return {"mouth": (roi.mouth_matrices(smoothed, aligned, size), size)}


class FaceCropExtractor(_CropExtractor):
    """``face``: aligned face crops, one column ``face_<S>`` per size (112 for emotion CNNs, 64/28 for GANs).

    Args:
        sizes: Crop sides in pixels.
        margin: Crop side relative to the mean face's landmark box.
        (others as :class:`MouthRoiExtractor`)
    """

    name = "face"

    @classmethod
    def _specific(cls, sizes: tuple[int, ...] | list[int] = (112,), margin: float = 1.25) -> dict[str, Any]:
        sizes = sorted({int(s) for s in sizes})
        if not sizes or sizes[0] < 8:
            raise ConfigError(f"face: sizes must be >= 8 pixels, got {sizes}")
        if margin <= 0:
            raise ConfigError(f"face: margin must be positive, got {margin}")
        return {"sizes": sizes, "margin": float(margin)}

    def _matrices(self, smoothed: np.ndarray, aligned: np.ndarray) -> dict[str, tuple[np.ndarray, int]]:
        p = self._ident["params"]
        return {f"face_{s}": (roi.face_matrices(aligned, self.mean_face, s, margin=p["margin"]), s) for s in p["sizes"]}
