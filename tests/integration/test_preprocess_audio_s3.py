"""``preprocess`` with the corpus and the output on a real local S3 server: same results as local."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pyarrow.dataset as pads
import pytest

from affectlab import storage
from affectlab.data.synth import generate
from affectlab.features import io
from affectlab.features.normalize import load_subject_stats
from affectlab.preprocess import preprocess

pytestmark = pytest.mark.slow


def _upload(local_dir: Path, uri: str) -> None:
    for path in sorted(local_dir.rglob("*")):
        if path.is_file():
            storage.write_bytes(storage.join(uri, *path.relative_to(local_dir).parts), path.read_bytes())


def _by_id(table, column: str) -> dict[str, np.ndarray]:  # noqa: ANN001
    return dict(zip(table.column("sample_id").to_pylist(), io.column_arrays(table, column), strict=True))


def test_s3_card_and_output_match_a_local_run(ray_local: None, s3_bucket: str, tmp_path: Path) -> None:
    card = generate("speech-au", str(tmp_path / "corpus"), subjects=2, items=2, seed=5)
    (tmp_path / "corpus" / "audio" / "s02" / "s02_u002.wav").write_bytes(b"")  # one bad file
    local_out = str(tmp_path / "out")
    local = preprocess(card, local_out, audio="egemaps", progress=False)

    corpus_uri = f"{s3_bucket}/corpus"
    _upload(tmp_path / "corpus", corpus_uri)
    text = (tmp_path / "corpus" / "dataset.yaml").read_text().replace("root: .", f"root: {corpus_uri}")
    storage.write_text(f"{corpus_uri}/dataset.yaml", text)
    s3_out = f"{s3_bucket}/prep"
    remote = preprocess(f"{corpus_uri}/dataset.yaml", s3_out, audio="egemaps", progress=False)

    for a, b in zip(local.stages, remote.stages, strict=True):
        assert (a.feature_set, a.version, a.n_ok, a.n_failed) == (b.feature_set, b.version, b.n_ok, b.n_failed)
    assert remote.stages[0].n_ok == 3 and remote.stages[0].n_failed == 1
    for kind, name, column in (("features", "egemaps", "features"), ("features", "egemaps", "f0_hz"), ("labels", "au", "onset")):
        loader = io.load_features if kind == "features" else io.load_labels
        here, there = _by_id(loader(local_out, name), column), _by_id(loader(s3_out, name), column)
        assert sorted(here) == sorted(there) and len(here) == 3
        for key in here:
            np.testing.assert_array_equal(here[key], there[key])
    errors = io.load_errors(s3_out).to_pylist()
    assert {(e["sample_id"], e["stage"]) for e in errors} == {("s02_u002", "egemaps"), ("s02_u002", "au")}
    assert errors[0]["path"].startswith("s3://")
    fs, path = storage.filesystem(f"{s3_out}/features/egemaps")
    assert pads.dataset(path, filesystem=fs, partitioning="hive").to_table().num_rows == 3
    np.testing.assert_array_equal(load_subject_stats(s3_out, "egemaps").mean["s01"], load_subject_stats(local_out, "egemaps").mean["s01"])
    assert io.load_vocab(s3_out, "au")["ID_to_AU"] == io.load_vocab(local_out, "au")["ID_to_AU"]
    assert storage.exists(f"{s3_out}/_SUCCESS.json")
    assert storage.list_files(f"{s3_out}/_staging", include_hidden=True) == []

    again = preprocess(f"{corpus_uri}/dataset.yaml", s3_out, audio="egemaps", labels=False, progress=False)
    assert again.stages[0].n_skipped == 3 and again.stages[0].n_ok == 0
    assert len(storage.list_files(f"{s3_out}/features/egemaps", suffix=".parquet")) == len(
        storage.list_files(os.path.join(local_out, "features", "egemaps"), suffix=".parquet"))
