"""The ``face_alignment`` landmark back end: S3FD/RetinaFace detection + 2D-FAN, batched.

Weights are never downloaded. Each file is looked up, in order, in the configured model
directory (local, shared or ``s3://``, staged to a local cache) and in the torch hub cache
(``$TORCH_HOME/hub/checkpoints``, where ``face_alignment`` itself would put them). When one
is missing the error names the expected files and how to stage them. Both networks are then
loaded from those explicit paths (the detector through ``path_to_detector``, the FAN through
:meth:`_OfflineFaceAlignment._load_native`), so no code path can reach the network.

Detection runs on batches of frames; the largest face per frame (:func:`largest_face`) is
cropped as ``face_alignment`` does and all crops of a batch go through the FAN together.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from affectlab.errors import ConfigError, unknown_name_error
from affectlab.features.faces import Detections, largest_face
from affectlab.features.weights import find_weights, stage_model_dir

__all__ = ["DETECTOR_FILES", "FAN_FILE", "FaceAlignmentBackend", "expected_files", "locate_weights", "pick_device"]

FAN_FILE = "2DFAN4-11f355bf06.pth.tar"  # face_alignment 1.5 '2DFAN-4' state dict
DETECTOR_FILES = {
    "sfd": "s3fd-619a316812.pth",
    "retinaface": "retinaface_mobilenet0.25.pth",
}
_STAGING_HINT = (
    "No download is attempted. Stage the files once (on a machine with internet access, e.g. run "
    "face_alignment.FaceAlignment(LandmarksType.TWO_D) once and copy $TORCH_HOME/hub/checkpoints/*, "
    "or fetch them from https://www.adrianbulat.com/downloads/python-fan/) into a directory and pass "
    "it as --model-dir (a local/shared path or s3:// prefix), or put them in {hub}."
)


def expected_files(detector: str = "sfd") -> list[str]:
    """Weight file names the back end needs for ``detector``."""
    if detector not in DETECTOR_FILES:
        raise unknown_name_error("face_alignment detector", detector, list(DETECTOR_FILES))
    return [DETECTOR_FILES[detector], FAN_FILE]


def _hub_checkpoints() -> str:
    import torch

    return os.path.join(torch.hub.get_dir(), "checkpoints")


def locate_weights(model_dir: str | None = None, detector: str = "sfd") -> dict[str, str]:
    """Find every weight file for ``detector`` + FAN; return name -> local path.

    Raises:
        ConfigError: Some file is in neither the model directory nor the torch hub cache.
    """
    files = expected_files(detector)
    local_dir = stage_model_dir(model_dir, files)
    hub = _hub_checkpoints()
    found, missing = find_weights(files, [local_dir, hub])
    if missing:
        where = ", ".join(d for d in (model_dir, hub) if d)
        raise ConfigError(
            f"landmark back end 'face_alignment' (detector {detector!r}): weights {', '.join(missing)} "
            f"not found in {where}. " + _STAGING_HINT.format(hub=hub)
        )
    return found


def pick_device(device: str = "auto") -> str:
    """``'cuda'`` when ``device='auto'`` and torch sees a GPU, else ``'cpu'``; explicit values pass."""
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def _offline_face_alignment(fan_path: str) -> type:
    """A ``FaceAlignment`` subclass that loads the FAN state dict from ``fan_path``."""
    import face_alignment
    import torch
    from face_alignment.models import FAN

    if not hasattr(face_alignment.FaceAlignment, "_load_native"):
        raise ConfigError(
            f"face_alignment {getattr(face_alignment, '__version__', '?')} is not supported; "
            "install face-alignment>=1.5"
        )

    class _OfflineFaceAlignment(face_alignment.FaceAlignment):
        def _load_native(self, network_name: str, network_size: int, device: str, dtype: Any) -> Any:
            net = FAN(network_size)
            net.load_state_dict(torch.load(fan_path, map_location=device, weights_only=True))
            return net.to(device, dtype=dtype).eval()

    return _OfflineFaceAlignment


class FaceAlignmentBackend:
    """2D-FAN landmarks with S3FD (default) or RetinaFace detection.

    Args:
        model_dir: Directory (local or ``s3://``) holding the weight files; else the torch hub cache.
        device: ``'auto'`` (CUDA when available, else CPU), ``'cpu'``, ``'cuda'``, ``'cuda:1'``...
        detector: ``'sfd'`` or ``'retinaface'``.
        batch_size: Frames per detector / FAN forward pass.
        compile: ``torch.compile`` the FAN (slow first call: minutes on CPU).
        flip_input: Also run the FAN on mirrored crops and average (2x cost).
        detector_threshold: Minimum detection score.

    Raises:
        ConfigError: Weights missing, or an unknown detector.
    """

    name = "face_alignment"

    def __init__(
        self,
        *,
        model_dir: str | None = None,
        device: str = "auto",
        detector: str = "sfd",
        batch_size: int = 8,
        compile: bool = False,
        flip_input: bool = False,
        detector_threshold: float = 0.5,
    ) -> None:
        paths = locate_weights(model_dir, detector)  # before the heavy import: fail fast

        import face_alignment

        self.device = pick_device(device)
        self.detector, self.batch_size = detector, max(1, int(batch_size))
        self.compile, self.flip_input, self.detector_threshold = compile, flip_input, detector_threshold
        threshold_key = "filter_threshold" if detector == "sfd" else "confidence_threshold"
        self._fa = _offline_face_alignment(paths[FAN_FILE])(
            face_alignment.LandmarksType.TWO_D,
            device=self.device,
            flip_input=flip_input,
            face_detector=detector,
            face_detector_kwargs={
                "path_to_detector": paths[DETECTOR_FILES[detector]],
                threshold_key: detector_threshold,
            },
            compile=compile,
            max_batch_size=self.batch_size,
        )

    @staticmethod
    def check_weights(model_dir: str | None = None, detector: str = "sfd", **_options: Any) -> None:
        """Raise :class:`ConfigError` now when a weight file cannot be found."""
        locate_weights(model_dir, detector)

    @classmethod
    def output_params(
        cls, detector: str = "sfd", flip_input: bool = False, detector_threshold: float = 0.5, **_runtime: Any
    ) -> dict[str, Any]:
        """Settings that determine the output (device, batch size, compile, model_dir excluded)."""
        return {
            "backend": cls.name,
            "detector": detector,
            "network": FAN_FILE,
            "flip_input": bool(flip_input),
            "detector_threshold": float(detector_threshold),
        }

    def params(self) -> dict[str, Any]:
        """See :meth:`output_params`."""
        return self.output_params(self.detector, self.flip_input, self.detector_threshold)

    def _detect_boxes(self, frames: np.ndarray) -> list[Any]:
        """Candidate boxes (x1, y1, x2, y2, score) per frame, batched when the detector can."""
        import torch

        det = self._fa.face_detector
        batch = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2).float()
        try:
            return list(det.detect_from_batch(batch.to(self.device)))
        except NotImplementedError:
            return [det.detect_from_image(frame.copy()) for frame in frames]

    def detect(self, frames: np.ndarray) -> Detections:
        """See :meth:`affectlab.features.faces.LandmarkBackend.detect`."""
        out = Detections.empty(len(frames))
        for start in range(0, len(frames), self.batch_size):
            chunk = frames[start : start + self.batch_size]
            boxes = self._detect_boxes(chunk)
            picked = [(i, b[k]) for i, b in enumerate(boxes) if (k := largest_face(b)) is not None]
            if picked:
                points = self._landmarks([chunk[i] for i, _ in picked], [b for _, b in picked])
                for (i, box), pts in zip(picked, points, strict=True):
                    out.set(start + i, box, pts)
        return out

    def _landmarks(self, images: list[np.ndarray], boxes: list[Any]) -> list[np.ndarray]:
        """Run the FAN on one face per image, all crops in one batch (as FaceAlignment crops them)."""
        import torch
        from face_alignment.utils import CENTER_Y_OFFSET, crop, flip, get_preds_fromhm

        ref = self._fa.face_detector.reference_scale
        centers, scales, crops = [], [], []
        for image, d in zip(images, boxes, strict=True):
            center = np.array([(d[0] + d[2]) / 2.0, (d[1] + d[3]) / 2.0 - (d[3] - d[1]) * CENTER_Y_OFFSET])
            scale = (d[2] - d[0] + d[3] - d[1]) / ref
            centers.append(center)
            scales.append(scale)
            crops.append(crop(image, center, scale).transpose(2, 0, 1).astype(np.float32) / 255.0)
        net = self._fa.face_alignment_net
        with torch.no_grad():
            inp = torch.from_numpy(np.stack(crops)).to(self.device, dtype=self._fa.dtype)
            heat = net(inp)[-1]
            if self.flip_input:
                heat = heat + flip(net(flip(inp))[-1], is_label=True)
            heat = heat.float().cpu().numpy()
        pairs = zip(centers, scales, strict=True)
        return [get_preds_fromhm(heat[i : i + 1], c, s)[1][0] for i, (c, s) in enumerate(pairs)]
