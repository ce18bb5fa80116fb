"""The ``landmarks`` stage: one row per clip with 68-point landmarks for every frame.

Frames are decoded in batches (:class:`~affectlab.features.video.VideoReader`), each batch goes
through the chosen back end (:mod:`affectlab.features.faces`), frames without a face are filled
by interpolation and flagged, and a clip where no frame has a face is an error ("no face
detected in any frame"), recorded in ``<out>/errors/`` by the stage runner.

Output columns (besides ``sample_id, subject, n_frames, frame_rate_hz, duration_s``):

=====================  =====================  ==============================================
column                 type                   meaning
=====================  =====================  ==============================================
landmarks              list<list<list<f32>>>  T x 68 x 2 (x, y) pixels, gaps interpolated
detected               list<bool>             T; False where the frame's points are filled in
boxes                  list<list<f32>>        T x 4 (x1, y1, x2, y2); NaN where not detected
detected_fraction      float64                share of frames with a detection
shape                  list<list<f32>>        68 x 2 Procrustes mean of the clip's detected
                                              frames (centred, unit RMS): input to the mean face
width, height          int64                  frame size in pixels
video_path             string                 the decoded file
=====================  =====================  ==============================================

The data set's mean face (:func:`dataset_mean_face`) is stored next to the set under
``<out>/stats/landmarks/version=<v>/mean_face.npy`` (see :func:`save_mean_face`).
"""

from __future__ import annotations

import io as _io
import json
from typing import Any

import numpy as np

from affectlab import storage
from affectlab.errors import ConfigError, MediaError
from affectlab.features import io, roi
from affectlab.features.faces import Detections, build_backend, check_options
from affectlab.features.video import VideoReader

__all__ = ["LandmarkExtractor", "dataset_mean_face", "load_mean_face", "mean_face_uri", "save_mean_face"]

MAX_SHAPE_FRAMES = 100  # frames (evenly spaced) used for a clip's mean shape


class LandmarkExtractor:
    """Extractor: video -> per-frame 68-point landmarks (see the module docstring).

    Args:
        backend: ``'dlib'`` or ``'face_alignment'``.
        fps: Resample frames to this rate; ``None`` keeps the native rate.
        model_dir: Weight directory for the back end (local or ``s3://``).
        backend_options: Extra constructor options of the back end (e.g. ``{"upsample": 0}``,
            ``{"device": "cuda", "detector": "retinaface"}``).
        frames_per_batch: Frames decoded and passed to the back end at once.
    """

    kind = "features"
    name = "landmarks"
    version = "1"
    requires = ("video_path",)
    path_column = "video_path"
    num_cpus = 1.0

    def __init__(
        self,
        *,
        backend: str = "dlib",
        fps: float | None = None,
        model_dir: str | None = None,
        backend_options: dict[str, Any] | None = None,
        frames_per_batch: int = 16,
    ) -> None:
        self._ident = self.describe(backend=backend, fps=fps, model_dir=model_dir, backend_options=backend_options)
        self.fps = fps
        self.frames_per_batch = max(1, int(frames_per_batch))
        self._backend = build_backend(backend, model_dir=model_dir, **(backend_options or {}))

    @classmethod
    def describe(
        cls,
        *,
        backend: str = "dlib",
        fps: float | None = None,
        model_dir: str | None = None,
        backend_options: dict[str, Any] | None = None,
        frames_per_batch: int = 16,
    ) -> dict[str, Any]:
        """Identity (name, version, params) without loading any model."""
        options = dict(backend_options or {})
        if "model_dir" in options:
            raise ConfigError("landmarks: pass model_dir as its own argument, not in backend_options")
        if fps is not None and fps <= 0:
            raise ConfigError(f"landmarks: fps must be positive, got {fps}")
        bcls = check_options(backend, {**options, "model_dir": model_dir})
        params = {"fps": None if fps is None else float(fps), "landmarks": bcls.output_params(**options)}
        return {"name": cls.name, "version": cls.version, "params": params}

    def params(self) -> dict[str, Any]:
        """See :meth:`describe`."""
        return self._ident["params"]

    def metadata(self) -> dict[str, Any]:
        """Schema metadata: the landmark layout."""
        return {"landmark_layout": "ibug68", "columns": {"landmarks": ["x", "y"], "boxes": ["x1", "y1", "x2", "y2"]}}

    def process(self, row: dict[str, Any]) -> dict[str, Any]:
        """Detect, fill gaps and summarise one clip.

        Raises:
            MediaError: Undecodable video, or no face in any frame.
        """
        uri = row["video_path"]
        with VideoReader(uri, fps=self.fps) as reader:
            det = Detections.concat([self._backend.detect(b) for b in reader.batches(self.frames_per_batch)])
            fps, width, height = reader.fps, reader.width, reader.height
        filled = roi.interpolate_missing(det.landmarks, det.detected, source=uri)
        found = det.landmarks[det.detected]
        step = max(1, len(found) // MAX_SHAPE_FRAMES)
        n = len(det.detected)
        return {
            "sample_id": row["sample_id"],
            "subject": row["subject"],
            "n_frames": n,
            "frame_rate_hz": fps,
            "duration_s": n / fps,
            "landmarks": filled,
            "detected": det.detected,
            "boxes": det.boxes,
            "detected_fraction": float(det.detected.mean()),
            "shape": roi.procrustes_mean(found[::step]).astype(np.float32),
            "width": width,
            "height": height,
            "video_path": uri,
        }


def mean_face_uri(out: str, version: str) -> str:
    """``<out>/stats/landmarks/version=<v>/mean_face.npy``."""
    return storage.join(io.sidecar_dir(out, "stats", LandmarkExtractor.name, version), "mean_face.npy")


def dataset_mean_face(out: str, version: str) -> np.ndarray:
    """Mean face (68 x 2, reference frame) of every clip in the landmarks set ``version``.

    Raises:
        MediaError: The set holds no clip (every video failed).
    """
    uri = io.set_dir(out, "features", LandmarkExtractor.name, version)
    if not storage.list_files(uri, suffix=".parquet"):
        raise MediaError(f"no clip with landmarks under {uri}: cannot compute a mean face")
    shapes = io.column_arrays(storage.read_parquet(uri, columns=["shape"]), "shape")
    return roi.canonical_mean_face(np.stack(shapes).reshape(-1, 68, 2))


def load_mean_face(uri: str) -> np.ndarray:
    """Read a mean face: ``.npy`` (68 x 2) or ``.json`` (68 [x, y] pairs, or ``{"points": ...}``).

    Raises:
        ConfigError: Missing file or wrong shape.
    """
    try:
        data = storage.read_bytes(uri)
    except FileNotFoundError as exc:
        raise ConfigError(f"mean face file {uri} not found") from exc
    if uri.endswith(".json"):
        doc = json.loads(data)
        arr = np.asarray(doc["points"] if isinstance(doc, dict) and "points" in doc else doc, dtype=np.float32)
    else:
        arr = np.load(_io.BytesIO(data), allow_pickle=False).astype(np.float32)
    if arr.shape != (68, 2) or not np.isfinite(arr).all():
        raise ConfigError(f"mean face {uri}: expected 68 x 2 finite (x, y) points, got shape {arr.shape}")
    return arr


def save_mean_face(out: str, version: str, mean_face: np.ndarray, *, source: str) -> str:
    """Write ``mean_face.npy`` and ``mean_face.json`` (points + where they came from); return the npy URI."""
    uri = mean_face_uri(out, version)
    buf = _io.BytesIO()
    np.save(buf, np.asarray(mean_face, dtype=np.float32))
    storage.write_bytes(uri, buf.getvalue())
    doc = {"source": source, "layout": "ibug68", "points": np.round(mean_face, 4).tolist()}
    storage.write_text(uri[: -len(".npy")] + ".json", json.dumps(doc, indent=1))
    return uri
