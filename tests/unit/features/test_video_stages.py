"""Video stage planning: option parsing and validation before any Ray work, landmark-part index."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from affectlab import storage
from affectlab.errors import ConfigError, RegistryError
from affectlab.features.video_stages import parse_video_sets, prepare_video, with_landmark_parts


def test_parse_video_sets() -> None:
    assert parse_video_sets("mouth") == ["landmarks", "mouth"]  # crops need landmarks
    assert parse_video_sets("face, landmarks,mouth") == ["landmarks", "mouth", "face"]
    assert parse_video_sets("") == [] and parse_video_sets(()) == []
    with pytest.raises(ConfigError, match="unknown set.*'lips'.*landmarks, mouth, face"):
        parse_video_sets("landmarks,lips")


def test_prepare_video_validates_everything_up_front(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: ANN001
    assert prepare_video("") is None
    plan = prepare_video("landmarks,face", face_sizes=[64, 112, 64], fps=25)
    assert plan.sets == ("landmarks", "face") and plan.mouth_kwargs is None
    assert plan.face_kwargs["sizes"] == [64, 112] and plan.landmark_kwargs["fps"] == 25
    with pytest.raises(ConfigError, match="sizes"):
        prepare_video("face", face_sizes=[2])
    with pytest.raises(RegistryError, match="landmark back end"):
        prepare_video("landmarks", landmarks="openface")
    with pytest.raises(ConfigError, match="unknown option"):
        prepare_video("landmarks", backend_options={"bogus": 1})
    with pytest.raises(ConfigError, match="mean face .* not found"):
        prepare_video("mouth", mean_face=str(tmp_path / "missing.npy"))
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    with pytest.raises(ConfigError, match="s3fd-619a316812.pth, 2DFAN4-11f355bf06.pth.tar"):
        prepare_video("landmarks", landmarks="face_alignment", model_dir=str(tmp_path / "weights"))


def test_with_landmark_parts_points_each_clip_at_its_file(tmp_path) -> None:  # noqa: ANN001
    root = str(tmp_path / "set")
    storage.write_parquet(pa.table({"sample_id": ["a", "b"], "x": [1, 2]}), f"{root}/part-1.parquet")
    storage.write_parquet(pa.table({"sample_id": ["c"], "x": [3]}), f"{root}/part-2.parquet")
    manifest = pa.table({"sample_id": ["c", "a", "z"], "subject": ["s", "s", "s"]})
    out = with_landmark_parts(manifest, root)
    parts = out.column("landmarks_part").to_pylist()
    assert parts[0].endswith("part-2.parquet") and parts[1].endswith("part-1.parquet") and parts[2] is None
    again = with_landmark_parts(out, root)  # idempotent
    assert again.column_names.count("landmarks_part") == 1
    assert np.array_equal(again.column("sample_id").to_numpy(zero_copy_only=False), ["c", "a", "z"])
