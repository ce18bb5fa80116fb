"""``affectlab preprocess``: a dataset card -> features, labels, stats and provenance under ``<out>``.

:func:`preprocess` builds the card's manifest and runs one :func:`~affectlab.features.pipeline.run_stage`
per requested audio feature set and, when the manifest has frame-level labels, the ``au``
label stage; then it writes the side files (speaker stats, vocabularies, class counts) and the
provenance. The layout is documented in :mod:`affectlab.features.io`. The video sets
(``video=``: landmarks, mouth ROI, face crops) run after them through
:func:`affectlab.features.video_stages.run_video_stages`; their options are checked (and the
landmark weights located) before Ray starts.
"""

from __future__ import annotations

import datetime as _dt
import json
import platform as _platform
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from affectlab import __version__, storage
from affectlab.data.cards import build_manifest, load_card
from affectlab.data.frame_labels import read_frame_labels
from affectlab.data.labels import PHASES, au_vocab, f0_vocab
from affectlab.errors import ConfigError, DatasetError
from affectlab.features import io
from affectlab.features.au_labels import AuLabelExtractor, au_columns
from affectlab.features.audio import AUDIO_SETS, MAX_SECONDS, OpenSmileExtractor
from affectlab.features.normalize import compute_subject_stats
from affectlab.features.pipeline import StageResult, describe_extractor, run_stage
from affectlab.features.video_stages import prepare_video, run_video_stages

__all__ = ["AUDIO_CHOICES", "PreprocessResult", "StagePlan", "parse_audio_sets", "plan_stages", "preprocess"]

AUDIO_CHOICES = ("egemaps", "compare", "functionals", "egemaps_functionals", "compare_functionals")


@dataclass(frozen=True)
class StagePlan:
    """One stage to run: extractor class and its keyword arguments."""

    extractor_cls: type
    kwargs: dict[str, Any]


@dataclass
class PreprocessResult:
    """Everything one :func:`preprocess` call did."""

    out: str
    stages: list[StageResult] = field(default_factory=list)
    seconds: float = 0.0
    provenance_uri: str = ""

    @property
    def n_failed(self) -> int:
        """Failed items over all stages."""
        return sum(s.n_failed for s in self.stages)

    def summary_line(self) -> str:
        """ok / skipped / failed over all stages, hours of audio, throughput."""
        ok = sum(s.n_ok for s in self.stages)
        skipped = sum(s.n_skipped for s in self.stages)
        audio_s = sum(s.media_seconds for s in self.stages if s.kind == "features")
        files = sum(s.n_ok + s.n_failed for s in self.stages)
        return (
            f"preprocess: ok {ok}  skipped {skipped}  failed {self.n_failed}  "
            f"{audio_s / 3600:.3f} h of audio processed  {self.seconds:.1f} s  "
            f"{files / self.seconds if self.seconds else 0:.1f} items/s  "
            f"{audio_s / self.seconds if self.seconds else 0:.0f}x real time"
        )


def parse_audio_sets(audio: str | Sequence[str]) -> list[str]:
    """``"egemaps,compare,functionals"`` -> ``["egemaps", "compare", "egemaps_functionals", ...]``.

    ``functionals`` adds the functionals of each requested LLD set.

    Raises:
        ConfigError: Unknown names (lists the choices) or ``functionals`` alone.
    """
    items = [a.strip() for a in (audio.split(",") if isinstance(audio, str) else audio) if a.strip()]
    unknown = [a for a in items if a not in AUDIO_CHOICES]
    if unknown:
        raise ConfigError(f"--audio: unknown feature set(s) {unknown}; choose from {', '.join(AUDIO_CHOICES)}")
    lld = [a for a in items if a in ("egemaps", "compare")]
    sets = [a for a in items if a != "functionals"]
    if "functionals" in items:
        if not lld:
            raise ConfigError("--audio: 'functionals' needs egemaps and/or compare (e.g. --audio egemaps,functionals)")
        sets += [f"{a}_functionals" for a in lld]
    return list(dict.fromkeys(sets))


def _au_names(manifest: pa.Table) -> list[str]:
    """AU columns of the first readable label file in the manifest (empty when none)."""
    rows = manifest.filter(pc.is_valid(manifest.column("labels_path"))).to_pylist()
    for row in rows[:20]:
        try:
            return au_columns(list(read_frame_labels(row).columns))
        except DatasetError:
            continue
    return []


def plan_stages(
    manifest: pa.Table, *, audio: Sequence[str], deltas: bool, f0_step: float, au_step: float, labels: bool,
    max_seconds: float | None = MAX_SECONDS,
) -> list[StagePlan]:
    """The stages to run, validated before any Ray work starts (``max_seconds``: audio duration limit)."""
    plans = []
    for name in audio:
        kwargs: dict[str, Any] = {"feature_set": name, "max_seconds": max_seconds}
        if name == "compare" and deltas:
            kwargs["deltas"] = True
        if AUDIO_SETS[name].f0:
            kwargs["f0_step"] = f0_step
        plans.append(StagePlan(OpenSmileExtractor, kwargs))
    if labels and manifest.num_rows and pc.any(pc.is_valid(manifest.column("labels_path"))).as_py():
        aus = _au_names(manifest)
        if aus:
            plans.append(StagePlan(AuLabelExtractor, {"aus": aus, "au_step": au_step}))
    for plan in plans:
        describe_extractor(plan.extractor_cls, plan.kwargs)  # raises ConfigError on bad values
    return plans


def _class_counts(out: str, version: str, aus: list[str]) -> dict[str, Any]:
    """Positive / negative / invalid frames per AU and class, one Parquet file at a time."""
    counts = {au: {c: {"positive": 0, "negative": 0, "invalid": 0} for c in PHASES} for au in aus}
    for uri in storage.list_files(io.set_dir(out, "labels", "au", version), suffix=".parquet"):
        table = storage.read_parquet(uri, columns=list(PHASES))
        for cls in PHASES:
            flat = pc.list_flatten(pc.list_flatten(table.column(cls))).to_numpy(zero_copy_only=False).reshape(-1, len(aus))
            for k, au in enumerate(aus):
                col = flat[:, k]
                for key, n in (("positive", (col == 1).sum()), ("negative", (col == 0).sum()), ("invalid", (col < 0).sum())):
                    counts[au][cls][key] += int(n)
    return counts


def _side_files(out: str, result: StageResult, plan: StagePlan) -> None:
    """Speaker stats for LLD sets, F0 / AU vocabularies, AU class counts."""
    spec = AUDIO_SETS.get(result.feature_set) if plan.extractor_cls is OpenSmileExtractor else None
    if spec is not None and spec.lld and (result.n_ok or not _stats_exist(out, result)):
        if storage.list_files(result.feature_dir, suffix=".parquet"):
            compute_subject_stats(out, result.feature_set, version=result.version)
    if "f0_step" in plan.kwargs:
        _write_json(io.sidecar_dir(out, "vocab", result.feature_set, result.version), "vocab.json", f0_vocab(plan.kwargs["f0_step"]))
    if plan.extractor_cls is AuLabelExtractor:
        _write_json(io.sidecar_dir(out, "vocab", "au", result.version), "vocab.json", au_vocab(plan.kwargs["au_step"]))
        if storage.list_files(result.feature_dir, suffix=".parquet"):
            counts = _class_counts(out, result.version, plan.kwargs["aus"])
            _write_json(io.sidecar_dir(out, "stats", "au", result.version), "class_counts.json", counts)


def _stats_exist(out: str, result: StageResult) -> bool:
    return storage.exists(storage.join(io.sidecar_dir(out, "stats", result.feature_set, result.version), "subject_stats.parquet"))


def _write_json(directory: str, name: str, data: dict[str, Any]) -> None:
    storage.write_text(storage.join(directory, name), json.dumps(data, indent=1, default=str))


def _provenance(out: str, card_path: str, manifest: pa.Table, result: PreprocessResult, run_id: str, started: str) -> dict[str, Any]:
    import opensmile
    import ray

    return {
        "run_id": run_id,
        "started": started,
        "finished": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "seconds": round(result.seconds, 3),
        "card": storage.absolute(card_path),  # absolute: a later training may run elsewhere
        "out": out,
        "manifest_rows": manifest.num_rows,
        "versions": {"affectlab": __version__, "opensmile": opensmile.__version__, "ray": ray.__version__,
                     "pyarrow": pa.__version__, "numpy": np.__version__, "python": _platform.python_version()},
        "stages": [s.to_dict() for s in result.stages],
        "n_failed": result.n_failed,
        "summary": result.summary_line(),
    }


def preprocess(
    card_path: str,
    out: str,
    *,
    audio: str | Sequence[str] = ("egemaps",),
    deltas: bool = False,
    labels: bool = True,
    au_step: float = 0.1,
    f0_step: float = 10.0,
    batch_size: int | None = None,
    num_workers: int | None = None,
    num_cpus: int | None = None,
    overrides: Iterable[str] = (),
    progress: bool = True,
    verbose: bool = False,
    echo: Callable[[str], None] | None = None,
    strategy: str = "tasks",
    video: str | Sequence[str] = (),
    landmarks: str = "dlib",
    fps: float | None = None,
    face_sizes: Sequence[int] = (112,),
    grayscale: bool = True,
    model_dir: str | None = None,
    mean_face: str | None = None,
    landmark_options: dict[str, Any] | None = None,
    max_duration_s: float | None = MAX_SECONDS,
) -> PreprocessResult:
    """Preprocess a corpus: audio features, aligned labels, stats, vocabularies, provenance.

    Args:
        card_path: Dataset card (YAML) path or URI.
        out: Output root (local path or ``s3://bucket/prefix``).
        audio: Feature sets, e.g. ``"egemaps,compare,functionals"`` (see :func:`parse_audio_sets`).
        deltas: Add first-order deltas to ``compare`` (130 dims).
        labels: Run the ``au`` label stage when the manifest has frame labels.
        au_step: AU intensity quantization step (divides 5).
        f0_step: F0 quantization step in Hz (divides 500).
        batch_size: Rows per Ray Data block (default: automatic).
        num_workers: Extractor actors per stage (default: one per CPU).
        num_cpus: CPUs of the embedded local Ray (ignored with ``RAY_ADDRESS``).
        overrides: ``key=value`` overrides for the card.
        progress: Ray Data progress bars.
        verbose: Ray INFO logs.
        echo: Called with one summary line per stage.
        strategy: Ray Data compute for the audio and label stages: ``tasks`` (extractor cached
            per worker process) or ``actors`` (see :mod:`affectlab.features.pipeline`).
        video: Video sets, e.g. ``"landmarks,mouth,face"`` (see
            :mod:`affectlab.features.video_stages`); empty for none.
        landmarks: Landmark back end: ``dlib`` or ``face_alignment``.
        fps: Resample video frames to this rate (default: native).
        face_sizes: Face crop sides in pixels (``face`` set).
        grayscale: Gray mouth / face crops (else RGB).
        model_dir: Landmark weights directory (local or ``s3://``); default: package / torch hub cache.
        mean_face: A 68 x 2 mean face (``.npy``/``.json``); default: computed from the data set.
        landmark_options: Extra back-end options (e.g. ``{"device": "cuda", "upsample": 0}``).
        max_duration_s: Audio longer than this is an error (in ``errors/``), refused from the
            file's header before it is decoded: bounds a worker's memory. ``None``: no limit.

    Returns:
        A :class:`PreprocessResult`; the caller decides the exit code (``--strict``).

    Raises:
        ConfigError / DatasetError / RegistryError: Bad card or options, or a manifest without
            recordings (before any Ray work).
    """
    from affectlab.runtime import ray_session

    start = time.perf_counter()
    started = _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")
    loaded = load_card(card_path, overrides)
    manifest = build_manifest(loaded)
    if not manifest.num_rows:
        raise DatasetError(f"{card_path}: the manifest lists no recording, nothing to preprocess "
                           "(`affectlab datasets check` shows what the card reads)")
    plans = plan_stages(manifest, audio=parse_audio_sets(audio), deltas=deltas, f0_step=f0_step, au_step=au_step,
                        labels=labels, max_seconds=max_duration_s)
    video_plan = prepare_video(video, landmarks=landmarks, fps=fps, face_sizes=face_sizes, grayscale=grayscale,
                               model_dir=model_dir, mean_face=mean_face, backend_options=landmark_options)
    result = PreprocessResult(out=out)
    run_id = uuid.uuid4().hex[:8]
    io.write_clip_labels(out, manifest)
    io.write_splits(out, loaded.card.splits)
    with ray_session(num_cpus=num_cpus, verbose=verbose, lazy=True):  # no Ray when all is done
        for plan in plans:
            stage = run_stage(manifest, plan.extractor_cls, plan.kwargs, out=out, batch_size=batch_size,
                              num_workers=num_workers, progress=progress, strategy=strategy)
            _side_files(out, stage, plan)
            result.stages.append(stage)
            if echo:
                echo(stage.summary_line())
        if video_plan is not None:
            result.stages += run_video_stages(manifest, video_plan, out=out, batch_size=batch_size,
                                              num_workers=num_workers, progress=progress, echo=echo)
    result.seconds = time.perf_counter() - start
    stamp = started.replace(":", "").replace("-", "").replace("+0000", "Z")
    result.provenance_uri = storage.join(out, "provenance", f"{stamp}-{run_id}.json")
    text = json.dumps(_provenance(out, card_path, manifest, result, run_id, started), indent=1, default=str)
    storage.write_text(result.provenance_uri, text)
    storage.write_text(storage.join(out, "_SUCCESS.json"), text)
    return result
