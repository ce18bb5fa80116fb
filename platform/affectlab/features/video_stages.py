"""The video part of ``affectlab preprocess``: landmarks -> mean face -> mouth / face crops.

Three steps, each resumable like the audio stages (same runner, same output conventions):

1. ``landmarks`` stage (:class:`~affectlab.features.landmarks.LandmarkExtractor`): one row per
   clip; clips without any face, undecodable files etc. land in ``<out>/errors/``.
2. Mean face: the user's file (``mean_face=``) or the Procrustes mean over every clip of the
   landmarks set, written to ``<out>/stats/landmarks/version=<v>/mean_face.{npy,json}``.
3. ``mouth_roi`` and/or ``face`` stages (:mod:`affectlab.features.crops`) over the clips that
   have landmarks; their identity includes the landmarks version and the mean face's hash.

Missing weights for the chosen landmark back end are a configuration problem shared by every
clip, so :func:`prepare_video` reports them before any Ray work starts instead of writing one
identical error row per clip.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyarrow as pa

from affectlab import storage
from affectlab.errors import ConfigError
from affectlab.features.crops import FaceCropExtractor, MouthRoiExtractor
from affectlab.features.faces import backend_class
from affectlab.features.landmarks import (
    LandmarkExtractor,
    dataset_mean_face,
    load_mean_face,
    save_mean_face,
)
from affectlab.features.pipeline import StageResult, describe_extractor, run_stage

__all__ = [
    "VIDEO_CHOICES",
    "GpuLandmarkExtractor",
    "VideoPlan",
    "parse_video_sets",
    "prepare_video",
    "run_video_stages",
    "with_landmark_parts",
]

VIDEO_CHOICES = ("landmarks", "mouth", "face")


class GpuLandmarkExtractor(LandmarkExtractor):
    """The landmarks extractor with one GPU per actor (used for face_alignment when GPUs exist)."""

    num_gpus = 1.0


@dataclass(frozen=True)
class VideoPlan:
    """Validated video options (see :func:`prepare_video`)."""

    sets: tuple[str, ...]
    landmark_kwargs: dict[str, Any]
    mouth_kwargs: dict[str, Any] | None
    face_kwargs: dict[str, Any] | None
    mean_face: str | None = None


def parse_video_sets(video: str | Sequence[str]) -> list[str]:
    """``"landmarks,mouth,face"`` -> ``["landmarks", "mouth", "face"]`` (landmarks always first).

    Raises:
        ConfigError: Unknown names (the message lists the choices).
    """
    items = [v.strip() for v in (video.split(",") if isinstance(video, str) else video) if v.strip()]
    unknown = [v for v in items if v not in VIDEO_CHOICES]
    if unknown:
        raise ConfigError(f"--video: unknown set(s) {unknown}; choose from {', '.join(VIDEO_CHOICES)}")
    return [v for v in VIDEO_CHOICES if v in items or (v == "landmarks" and items)]


def prepare_video(
    video: str | Sequence[str],
    *,
    landmarks: str = "dlib",
    fps: float | None = None,
    face_sizes: Sequence[int] = (112,),
    mouth_size: int = 96,
    grayscale: bool = True,
    smooth_window: int = 12,
    model_dir: str | None = None,
    mean_face: str | None = None,
    backend_options: dict[str, Any] | None = None,
) -> VideoPlan | None:
    """Validate every video option and locate the back end's weights, before any Ray work.

    Returns:
        ``None`` when no video set was requested, else the plan for :func:`run_video_stages`.

    Raises:
        ConfigError / RegistryError: Bad option, unknown back end, missing weights or mean face.
    """
    sets = parse_video_sets(video)
    if not sets:
        return None
    options = dict(backend_options or {})
    lm_kwargs = {"backend": landmarks, "fps": fps, "model_dir": model_dir, "backend_options": options}
    describe_extractor(LandmarkExtractor, lm_kwargs)
    backend_class(landmarks).check_weights(model_dir, **lm_kwargs["backend_options"])
    common = {"fps": fps, "grayscale": grayscale, "smooth_window": smooth_window}
    placeholder = np.zeros((68, 2))
    mouth = {**common, "size": mouth_size} if "mouth" in sets else None
    face = {**common, "sizes": sorted({int(s) for s in face_sizes})} if "face" in sets else None
    for cls, kwargs in ((MouthRoiExtractor, mouth), (FaceCropExtractor, face)):
        if kwargs is not None:
            cls.describe(mean_face=placeholder, **kwargs)
    if mean_face is not None:
        load_mean_face(mean_face)
    return VideoPlan(tuple(sets), lm_kwargs, mouth, face, mean_face)


def _landmark_extractor_cls(plan: VideoPlan) -> type:
    import ray

    from affectlab.runtime import ensure_ray

    device = plan.landmark_kwargs["backend_options"].get("device", "auto")
    wants_gpu = plan.landmark_kwargs["backend"] == "face_alignment" and device != "cpu"
    if not wants_gpu:
        return LandmarkExtractor
    ensure_ray()  # the GPU count needs Ray
    return GpuLandmarkExtractor if ray.cluster_resources().get("GPU", 0) >= 1 else LandmarkExtractor


def with_landmark_parts(manifest: pa.Table, landmarks_dir: str) -> pa.Table:
    """Add ``landmarks_part``: the Parquet file holding each clip's landmarks (null when none)."""
    where: dict[str, str] = {}
    for part in storage.list_files(landmarks_dir, suffix=".parquet"):
        for sid in storage.read_parquet(part, columns=["sample_id"]).column("sample_id").to_pylist():
            where[sid] = part
    parts = pa.array([where.get(s) for s in manifest.column("sample_id").to_pylist()], pa.string())
    if "landmarks_part" in manifest.column_names:
        manifest = manifest.drop_columns(["landmarks_part"])
    return manifest.append_column("landmarks_part", parts)


def run_video_stages(
    manifest: pa.Table,
    plan: VideoPlan,
    *,
    out: str,
    batch_size: int | None = None,
    num_workers: int | None = None,
    progress: bool = True,
    echo: Callable[[str], None] | None = None,
) -> list[StageResult]:
    """Run the landmarks stage, fix the mean face, then the crop stages (see the module docstring).

    Must run inside a Ray session (:func:`affectlab.runtime.ray_session`).
    """
    say = echo or (lambda _: None)
    run = {"out": out, "batch_size": batch_size, "num_workers": num_workers, "progress": progress}
    lm = run_stage(manifest, _landmark_extractor_cls(plan), plan.landmark_kwargs, **run)
    say(lm.summary_line())
    results = [lm]
    candidates = ((MouthRoiExtractor, plan.mouth_kwargs), (FaceCropExtractor, plan.face_kwargs))
    crop_stages = [(cls, kwargs) for cls, kwargs in candidates if kwargs]
    if not crop_stages:
        return results
    if not storage.list_files(lm.feature_dir, suffix=".parquet"):
        say("video: no clip has landmarks; mouth/face crops skipped")
        return results
    if plan.mean_face:
        mean, source = load_mean_face(plan.mean_face), plan.mean_face
    else:
        mean = dataset_mean_face(out, lm.version)
        source = f"landmarks set {lm.version} (Procrustes mean over its clips)"
    save_mean_face(out, lm.version, mean, source=source)
    crops_manifest = with_landmark_parts(manifest, lm.feature_dir)
    for cls, kwargs in crop_stages:
        full = {**kwargs, "mean_face": mean.tolist(), "landmarks_version": lm.version}
        stage = run_stage(crops_manifest, cls, full, **run)
        say(stage.summary_line())
        results.append(stage)
    return results
