"""The face_alignment back end, loaded for real from RANDOM-weight checkpoints in a model dir.

The checkpoints are built from face_alignment's own ``FAN`` and ``s3fd`` modules (random
init, fixed seed) and saved as the state dicts face_alignment 1.5 loads. Outputs are
meaningless as landmarks; the tests check loading, the offline guarantee, shapes and that
points are mapped back into frame coordinates around the chosen (largest) box.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

from affectlab import storage
from affectlab.errors import ConfigError
from affectlab.features import fan
from affectlab.features.faces import largest_face


@pytest.fixture(scope="module")
def random_model_dir(tmp_path_factory: pytest.TempPathFactory) -> str:
    import torch
    from face_alignment.detection.sfd.net_s3fd import s3fd
    from face_alignment.models import FAN

    root = tmp_path_factory.mktemp("fa-weights")
    torch.manual_seed(0)
    torch.save(FAN(4).state_dict(), root / fan.FAN_FILE)
    torch.save(s3fd().state_dict(), root / fan.DETECTOR_FILES["sfd"])
    return str(root)


@pytest.fixture
def offline(monkeypatch: pytest.MonkeyPatch, tmp_path) -> str:  # noqa: ANN001
    """An empty torch hub cache, and any download attempt fails the test."""
    import face_alignment.utils
    import torch.hub

    def no_download(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"download attempted: {args}")

    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    monkeypatch.setattr(torch.hub, "download_url_to_file", no_download)
    monkeypatch.setattr(face_alignment.utils, "download_url_to_file", no_download)
    monkeypatch.setattr(torch.hub, "load_state_dict_from_url", no_download)
    return str(tmp_path / "torch")


def test_missing_weights_name_the_files_and_how_to_stage_them(offline: str, tmp_path) -> None:  # noqa: ANN001
    with pytest.raises(ConfigError) as info:
        fan.FaceAlignmentBackend(model_dir=str(tmp_path / "empty"))
    message = str(info.value)
    for part in (fan.FAN_FILE, fan.DETECTOR_FILES["sfd"], "--model-dir", "hub/checkpoints", "No download"):
        assert part in message
    with pytest.raises(ConfigError, match="retinaface_mobilenet0.25.pth"):
        fan.FaceAlignmentBackend.check_weights(None, detector="retinaface")


def test_unknown_detector_lists_the_known_ones() -> None:
    from affectlab.errors import RegistryError

    with pytest.raises(RegistryError, match="retinaface, sfd"):
        fan.expected_files("yolo")


def test_weights_are_found_in_the_torch_hub_cache(offline: str) -> None:
    hub = os.path.join(offline, "hub", "checkpoints")
    os.makedirs(hub)
    for name in fan.expected_files("sfd"):  # stand-in bytes: only the look-up is under test here
        with open(os.path.join(hub, name), "wb") as f:
            f.write(b"x")
    found = fan.locate_weights(None, "sfd")
    assert found == {name: os.path.join(hub, name) for name in fan.expected_files("sfd")}


def test_s3_model_dir_is_staged_to_the_local_cache(
    offline: str, s3_bucket: str, tmp_path, monkeypatch: pytest.MonkeyPatch  # noqa: ANN001
) -> None:
    monkeypatch.setenv("AFFECTLAB_CACHE_DIR", str(tmp_path / "cache"))
    for name in fan.expected_files("sfd"):  # stand-in bytes: only the staging is under test here
        storage.write_bytes(f"{s3_bucket}/weights/{name}", name.encode())
    found = fan.locate_weights(f"{s3_bucket}/weights", "sfd")
    for name, path in found.items():
        assert path.startswith(str(tmp_path / "cache")) and open(path, "rb").read() == name.encode()
    storage.remove(f"{s3_bucket}/weights/{fan.FAN_FILE}")
    with pytest.raises(ConfigError, match=f"{fan.FAN_FILE}.*{s3_bucket}/weights"):
        fan.locate_weights(f"{s3_bucket}/weights", "sfd")


def test_device_selection() -> None:
    import torch

    assert fan.pick_device("auto") == ("cuda" if torch.cuda.is_available() else "cpu")
    assert fan.pick_device("cpu") == "cpu"


@pytest.mark.slow
def test_random_weights_load_and_run_offline(offline: str, random_model_dir: str) -> None:
    from face_alignment.utils import SCALE_FACTOR

    backend = fan.FaceAlignmentBackend(model_dir=random_model_dir, device="cpu", detector_threshold=0.0, batch_size=2)
    assert backend.device == "cpu" and not backend.compile
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 255, size=(2, 96, 96, 3), dtype=np.uint8)
    out = backend.detect(frames)
    assert out.landmarks.shape == (2, 68, 2) and out.detected.all()
    assert np.isfinite(out.landmarks).all()
    import torch

    candidates = backend._detect_boxes(frames)
    for i, boxes in enumerate(candidates):
        best = boxes[largest_face(boxes)]
        np.testing.assert_allclose(out.boxes[i], np.asarray(best[:4], np.float32), rtol=1e-5)
        # points come back in frame pixels, inside the FAN's crop window around that box
        half = SCALE_FACTOR * ((best[2] - best[0] + best[3] - best[1]) / 195.0) / 2
        centre = np.array([(best[0] + best[2]) / 2, (best[1] + best[3]) / 2])
        assert (np.abs(out.landmarks[i] - centre) <= half + 2 + 0.12 * (best[3] - best[1])).all()
    assert isinstance(backend._fa.face_alignment_net, torch.nn.Module)
    assert backend.params()["network"] == fan.FAN_FILE
