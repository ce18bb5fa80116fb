"""Landmark back ends: the shared largest-face rule, dlib on a real face, weight look-up."""

from __future__ import annotations

import os

import numpy as np
import pytest

from affectlab.errors import ConfigError, RegistryError
from affectlab.features import faces
from affectlab.features.faces import DlibBackend, Detections, backend_class, largest_face


def test_largest_face_picks_the_biggest_area() -> None:
    boxes = [(0, 0, 10, 10, 0.9), (5, 5, 45, 25, 0.6), (0, 0, 25, 25, 0.99)]  # areas 100, 800, 625
    assert largest_face(boxes) == 1
    assert largest_face(np.array(boxes)[:, :4]) == 1
    assert largest_face([(0, 0, 4, 4), (1, 1, 5, 5)]) == 0  # ties: first
    assert largest_face([]) is None and largest_face(None) is None
    assert largest_face([(10, 10, 5, 5), (0, 0, 1, 1)]) == 1  # degenerate boxes count as empty


def test_detections_concat_and_empty() -> None:
    a, b = Detections.empty(2), Detections.empty(3)
    b.set(1, (1, 2, 3, 4), np.ones((68, 2)))
    both = Detections.concat([a, b])
    assert both.landmarks.shape == (5, 68, 2) and both.detected.tolist() == [False, False, False, True, False]
    np.testing.assert_array_equal(both.boxes[3], [1, 2, 3, 4])
    assert np.isnan(both.landmarks[0]).all()


def test_registry_lists_known_back_ends() -> None:
    assert backend_class("dlib") is DlibBackend
    with pytest.raises(RegistryError, match="dlib, face_alignment"):
        backend_class("mediapipe")


def test_dlib_finds_the_face_in_talking_face_frames() -> None:
    from affectlab.data.synth import talking_face as tf

    n, size = 16, 256
    t = np.arange(n) / tf.FPS
    head = np.stack([3 * np.sin(2 * np.pi * t), 2 * np.cos(2 * np.pi * t), 2 * np.sin(np.pi * t)], axis=1)
    frames = tf.render_frames(np.linspace(0, 1, n), head, size, np.ones(3))
    backend = DlibBackend(upsample=1)
    out = backend.detect(frames)
    assert out.detected.mean() >= 0.95
    assert out.landmarks.shape == (n, 68, 2) and out.landmarks.dtype == np.float32
    # the planted mouth (astronaut coordinates) mapped into each frame, rotation ignored (<= 2 deg)
    scale = tf.CROP / size
    planted = np.stack([(tf.MOUTH[0] - tf.FACE_CENTRE[0] - head[:, 0]) / scale + size / 2,
                        (tf.MOUTH[1] - tf.FACE_CENTRE[1] - head[:, 1]) / scale + size / 2], axis=1)
    found = out.landmarks[:, 48:68].mean(axis=1)
    assert np.abs(found - planted)[out.detected].max() < 8 + 14 / scale  # jaw drop moves the lower lip
    inside = (out.boxes[:, [0]] <= found[:, [0]]) & (found[:, [0]] <= out.boxes[:, [2]])
    assert inside[out.detected].all()
    assert backend.params()["backend"] == "dlib"


def test_dlib_finds_nothing_in_noise() -> None:
    frames = np.random.default_rng(0).integers(0, 255, size=(2, 128, 128, 3), dtype=np.uint8)
    out = DlibBackend(upsample=0).detect(frames)
    assert not out.detected.any() and np.isnan(out.landmarks).all()


def test_dlib_predictor_is_found_without_importing_the_package(tmp_path) -> None:  # noqa: ANN001
    import sys

    path = faces.dlib_predictor_path()
    assert path.endswith(os.path.join("models", faces.DLIB_PREDICTOR_FILE)) and os.path.isfile(path)
    assert "face_recognition_models" not in sys.modules
    os.symlink(path, tmp_path / faces.DLIB_PREDICTOR_FILE)
    assert faces.dlib_predictor_path(str(tmp_path)) == str(tmp_path / faces.DLIB_PREDICTOR_FILE)


def test_dlib_missing_predictor_names_the_file(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:  # noqa: ANN001
    monkeypatch.setattr(faces.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ConfigError, match=r"shape_predictor_68_face_landmarks\.dat.*--model-dir"):
        DlibBackend.check_weights(str(tmp_path))


def test_dlib_rejects_negative_upsample() -> None:
    with pytest.raises(ConfigError, match="upsample"):
        DlibBackend(upsample=-1)
