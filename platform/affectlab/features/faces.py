"""Face detection and 68-point landmarks behind one interface.

Two back ends produce the iBUG 68-point layout (jaw 0-16, brows 17-26, nose 27-35, eyes 36-47,
mouth 48-67) in pixel coordinates of the input frame:

* ``face_alignment`` (:mod:`affectlab.features.fan`): S3FD (or RetinaFace) detection and the
  2D-FAN network, batched, on a GPU when one is visible. Its weights are looked up on disk and
  never downloaded.
* ``dlib``: the HOG frontal-face detector and the 68-point shape predictor whose weights ship
  in the ``face_recognition_models`` package (fully offline, CPU).

Both keep one face per frame, chosen by :func:`largest_face`.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from affectlab.errors import ConfigError, unknown_name_error
from affectlab.features.weights import stage_model_dir

__all__ = [
    "LANDMARK_BACKENDS",
    "N_LANDMARKS",
    "Detections",
    "DlibBackend",
    "LandmarkBackend",
    "backend_class",
    "build_backend",
    "check_options",
    "largest_face",
]

N_LANDMARKS = 68
DLIB_PREDICTOR_FILE = "shape_predictor_68_face_landmarks.dat"


def largest_face(boxes: Sequence[Sequence[float]] | np.ndarray | None) -> int | None:
    """Index of the largest box by area (the first one on ties), or ``None`` when there is none.

    Args:
        boxes: N boxes as ``(x1, y1, x2, y2[, score...])``; extra columns are ignored.
    """
    if boxes is None or len(boxes) == 0:
        return None
    arr = np.asarray(boxes, dtype=np.float64).reshape(len(boxes), -1)
    areas = np.clip(arr[:, 2] - arr[:, 0], 0, None) * np.clip(arr[:, 3] - arr[:, 1], 0, None)
    return int(np.argmax(areas))


@dataclass
class Detections:
    """One face per frame for a run of B frames.

    Attributes:
        landmarks: ``(B, 68, 2)`` float32 (x, y) pixels; NaN where no face was found.
        boxes: ``(B, 4)`` float32 ``x1, y1, x2, y2``; NaN where no face was found.
        detected: ``(B,)`` bool.
    """

    landmarks: np.ndarray
    boxes: np.ndarray
    detected: np.ndarray

    @classmethod
    def empty(cls, n: int) -> Detections:
        """``n`` frames with no face."""
        return cls(
            np.full((n, N_LANDMARKS, 2), np.nan, np.float32),
            np.full((n, 4), np.nan, np.float32),
            np.zeros(n, dtype=bool),
        )

    def set(self, i: int, box: Sequence[float], points: np.ndarray) -> None:
        """Record frame ``i``'s face."""
        self.boxes[i] = np.asarray(box, dtype=np.float32)[:4]
        self.landmarks[i] = np.asarray(points, dtype=np.float32).reshape(N_LANDMARKS, 2)
        self.detected[i] = True

    @classmethod
    def concat(cls, parts: Sequence[Detections]) -> Detections:
        """Join consecutive runs of frames."""
        if not parts:
            return cls.empty(0)
        return cls(
            np.concatenate([p.landmarks for p in parts]),
            np.concatenate([p.boxes for p in parts]),
            np.concatenate([p.detected for p in parts]),
        )


class LandmarkBackend(Protocol):
    """A face detector plus 68-point landmark model."""

    name: str

    @classmethod
    def output_params(cls, **options: Any) -> dict[str, Any]:
        """Parameters that determine the output, from constructor options (no model loading)."""
        ...

    def params(self) -> dict[str, Any]:
        """Parameters that determine the output (recorded in provenance)."""
        ...

    def detect(self, frames: np.ndarray) -> Detections:
        """Find the largest face and its landmarks in each RGB frame of ``(B, H, W, 3)`` uint8."""
        ...


def dlib_predictor_path(model_dir: str | None = None) -> str:
    """Path of dlib's 68-point predictor: in ``model_dir`` if given, else in ``face_recognition_models``.

    The package is located without importing it (its ``__init__`` needs ``pkg_resources``,
    which recent setuptools no longer ships).

    Raises:
        ConfigError: The file is in neither place.
    """
    candidates = []
    if model_dir:
        candidates.append(os.path.join(model_dir, DLIB_PREDICTOR_FILE))
    spec = importlib.util.find_spec("face_recognition_models")
    for location in (spec.submodule_search_locations or []) if spec else []:
        candidates.append(os.path.join(location, "models", DLIB_PREDICTOR_FILE))
    for path in candidates:
        if os.path.isfile(path):
            return path
    looked = ", ".join(candidates) or "(face_recognition_models is not installed)"
    raise ConfigError(
        f"landmark back end 'dlib': weights file {DLIB_PREDICTOR_FILE} not found; looked in {looked}. "
        "Install it with `pip install face_recognition_models` or copy the file into --model-dir."
    )


class DlibBackend:
    """dlib HOG face detector + 68-point shape predictor (CPU, offline).

    Args:
        upsample: Times the detector upsamples each frame (1 finds faces down to ~40 px, at
            about 4x the cost of 0).
        model_dir: Optional local directory holding ``shape_predictor_68_face_landmarks.dat``
            (``s3://`` directories are staged to a local cache first).
    """

    name = "dlib"

    def __init__(self, *, upsample: int = 1, model_dir: str | None = None) -> None:
        import dlib

        if upsample < 0:
            raise ConfigError(f"dlib upsample must be >= 0, got {upsample}")
        self.upsample = int(upsample)
        local_dir = stage_model_dir(model_dir, [DLIB_PREDICTOR_FILE])
        self._detector = dlib.get_frontal_face_detector()
        self._predictor = dlib.shape_predictor(dlib_predictor_path(local_dir))

    @staticmethod
    def check_weights(model_dir: str | None = None, **_options: Any) -> None:
        """Raise :class:`ConfigError` now when the predictor file cannot be found."""
        local_dir = stage_model_dir(model_dir, [DLIB_PREDICTOR_FILE])
        dlib_predictor_path(local_dir)

    @classmethod
    def output_params(cls, upsample: int = 1, **_runtime: Any) -> dict[str, Any]:
        """Settings that determine the output (runtime options such as ``model_dir`` excluded)."""
        return {"backend": cls.name, "upsample": int(upsample), "predictor": DLIB_PREDICTOR_FILE}

    def params(self) -> dict[str, Any]:
        """See :meth:`output_params`."""
        return self.output_params(upsample=self.upsample)

    def detect(self, frames: np.ndarray) -> Detections:
        """See :meth:`LandmarkBackend.detect`."""
        out = Detections.empty(len(frames))
        for i, frame in enumerate(frames):
            frame = np.ascontiguousarray(frame)
            rects = self._detector(frame, self.upsample)
            boxes = [(r.left(), r.top(), r.right(), r.bottom()) for r in rects]
            best = largest_face(boxes)
            if best is None:
                continue
            shape = self._predictor(frame, rects[best])
            points = np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float32)
            out.set(i, boxes[best], points)
        return out


def _dlib_class() -> type:
    return DlibBackend


def _face_alignment_class() -> type:
    from affectlab.features.fan import FaceAlignmentBackend

    return FaceAlignmentBackend


# short name -> function returning the back-end class (imports heavy packages lazily)
LANDMARK_BACKENDS: dict[str, Callable[[], type]] = {
    "dlib": _dlib_class,
    "face_alignment": _face_alignment_class,
}


def backend_class(name: str) -> type:
    """The back-end class registered as ``name``.

    Raises:
        RegistryError: Unknown name (the message lists the known ones).
    """
    if name not in LANDMARK_BACKENDS:
        raise unknown_name_error("landmark back end", name, list(LANDMARK_BACKENDS))
    return LANDMARK_BACKENDS[name]()


def check_options(name: str, options: dict[str, Any]) -> type:
    """Return the back end's class after checking ``options`` against its constructor.

    Raises:
        RegistryError: Unknown back end.
        ConfigError: An option the back end does not take (the message lists the valid ones).
    """
    import inspect

    cls = backend_class(name)
    valid = [p for p in inspect.signature(cls.__init__).parameters if p != "self"]
    unknown = sorted(set(options) - set(valid))
    if unknown:
        raise ConfigError(f"landmark back end {name!r}: unknown option(s) {unknown}; valid: {', '.join(valid)}")
    return cls


def build_backend(name: str, **kwargs: Any) -> LandmarkBackend:
    """Construct the back end ``name`` with its keyword options."""
    return check_options(name, kwargs)(**kwargs)
