"""End to end on real Ray: synthetic speech-au corpus + bad inputs -> Parquet features and labels."""

from __future__ import annotations

import csv
import json
import os
import shutil
from pathlib import Path

import numpy as np
import opensmile
import pandas as pd
import pyarrow.dataset as pads
import pyarrow.parquet as pq
import pytest
import soundfile as sf

from affectlab import storage
from affectlab.cli import main
from affectlab.data.synth import generate
from affectlab.features import io
from affectlab.features.normalize import load_subject_stats
from affectlab.preprocess import preprocess

pytestmark = pytest.mark.slow
GOOD_SUBJECTS, GOOD_ITEMS = 2, 3
# sample_id -> (stage(s) expected to fail, words expected in the message)
BAD = {
    "bad_zero": ({"egemaps", "au"}, "empty file"),
    "bad_trunc": ({"egemaps", "au"}, "cannot decode"),
    "bad_junk": ({"egemaps", "au"}, "cannot decode"),
    "bad_missing": ({"egemaps", "au"}, "not found"),
    "bad_xyz": ({"egemaps", "au"}, "unsupported audio format"),
    "bad_short": ({"egemaps"}, "too short"),
    "bad_nolabel": ({"au"}, "not found"),
    "bad_labellen": ({"au"}, "labels cover"),
}


def _add_bad_items(root: Path) -> None:
    """Append broken recordings (and one silent, fine one) to the synthetic corpus manifest."""
    good_wav = next((root / "audio" / "s01").glob("*.wav"))
    good_labels = root / "labels" / "s01" / (good_wav.stem + ".csv")
    bad = root / "bad"
    bad.mkdir()
    (bad / "zero.wav").write_bytes(b"")
    (bad / "trunc.wav").write_bytes(good_wav.read_bytes()[:30])
    (bad / "junk.wav").write_bytes(np.random.default_rng(0).bytes(3000))
    (bad / "clip.xyz").write_bytes(good_wav.read_bytes())
    sf.write(bad / "short.wav", np.zeros(400, np.float32), 16000)
    sf.write(bad / "silence.wav", np.zeros(32000, np.float32), 16000)
    shutil.copy(good_wav, bad / "nolabel.wav")
    shutil.copy(good_wav, bad / "labellen.wav")
    lines = good_labels.read_text().splitlines()
    (bad / "labellen.csv").write_text("\n".join(lines[: len(lines) // 3]) + "\n")
    header = lines[0]
    (bad / "silence.csv").write_text(header + "\n" + "\n".join(
        ",".join([str(i)] + ["0"] * (len(header.split(",")) - 1)) for i in range(50)) + "\n")
    rows = [
        ("bad_zero", "bad/zero.wav", "bad/silence.csv"), ("bad_trunc", "bad/trunc.wav", "bad/silence.csv"),
        ("bad_junk", "bad/junk.wav", "bad/silence.csv"), ("bad_missing", "bad/missing.wav", "bad/silence.csv"),
        ("bad_xyz", "bad/clip.xyz", "bad/silence.csv"), ("bad_short", "bad/short.wav", ""),
        ("bad_nolabel", "bad/nolabel.wav", "bad/nolabel.csv"), ("bad_labellen", "bad/labellen.wav", "bad/labellen.csv"),
        ("silence", "bad/silence.wav", "bad/silence.csv"),
    ]
    with open(root / "manifest.csv", "a", newline="") as f:
        writer = csv.writer(f)
        for sample_id, audio, labels in rows:
            writer.writerow([sample_id, "s01", audio, "", labels, "", "", "", ""])


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("corpus") / "speech"
    card = generate("speech-au", str(root), subjects=GOOD_SUBJECTS, items=GOOD_ITEMS, seed=3)
    _add_bad_items(root)
    return Path(card)


@pytest.fixture(scope="module")
def run(ray_local: None, corpus: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, object]:
    out = str(tmp_path_factory.mktemp("out") / "prep")
    result = preprocess(str(corpus), out, audio="egemaps", progress=False)
    return out, result


def _good_ids() -> set[str]:
    return {f"s{s:02d}_u{i:03d}" for s in range(1, GOOD_SUBJECTS + 1) for i in range(1, GOOD_ITEMS + 1)}


def test_every_good_recording_written_once_and_every_bad_one_recorded(run: tuple[str, object]) -> None:
    out, result = run
    features = io.load_features(out, "egemaps")
    feature_ids = features.column("sample_id").to_pylist()
    assert len(feature_ids) == len(set(feature_ids))
    assert set(feature_ids) == _good_ids() | {"silence", "bad_nolabel", "bad_labellen"}
    labels = io.load_labels(out)
    assert set(labels.column("sample_id").to_pylist()) == _good_ids() | {"silence"}
    errors = io.load_errors(out).to_pylist()
    by_stage = {(e["sample_id"], e["stage"]): e for e in errors}
    for sample_id, (stages, words) in BAD.items():
        for stage in stages:
            err = by_stage.pop((sample_id, stage))
            assert err["error"] in {"MediaError", "DatasetError"} and err["path"]
            if stage == "egemaps" or sample_id.startswith(("bad_nolabel", "bad_labellen")):
                assert words in err["message"], err
    assert not by_stage, f"unexpected errors: {by_stage}"
    stage = {s.feature_set: s for s in result.stages}
    assert stage["egemaps"].n_failed == 6 and stage["egemaps"].n_ok == 9
    assert stage["au"].n_failed == 7 and stage["au"].n_not_applicable == 1


def test_values_equal_opensmile_and_labels_match_feature_frames(run: tuple[str, object], corpus: Path) -> None:
    out, _ = run
    features = io.load_features(out, "egemaps")
    smile = opensmile.Smile(feature_set=opensmile.FeatureSet.eGeMAPSv02,
                            feature_level=opensmile.FeatureLevel.LowLevelDescriptors)
    rows = dict(zip(features.column("sample_id").to_pylist(), io.column_arrays(features, "features"), strict=True))
    for sample_id in ("s01_u001", "s02_u003"):
        reference = smile.process_file(str(corpus.parent / "audio" / sample_id[:3] / f"{sample_id}.wav"))
        np.testing.assert_array_equal(rows[sample_id], reference.to_numpy())
    assert io.feature_names(features) == list(smile.feature_names)
    labels = io.load_labels(out)
    n_feat = dict(zip(features.column("sample_id").to_pylist(), features.column("n_frames").to_pylist(), strict=True))
    for sample_id, n, onset in zip(labels.column("sample_id").to_pylist(), labels.column("n_frames").to_pylist(),
                                   io.column_arrays(labels, "onset", np.int8), strict=True):
        assert n == n_feat[sample_id] and onset.shape == (n, 8)
    assert io.label_names(labels) == ["AU01", "AU02", "AU04", "AU06", "AU07", "AU10", "AU12", "AU17"]
    silence = features.filter(pads.field("sample_id") == "silence")
    assert set(io.column_arrays(silence, "f0_hz")[0].tolist()) == {0.0}


def test_f0_matches_the_planted_ground_truth(run: tuple[str, object], corpus: Path) -> None:
    out, _ = run
    features = io.load_features(out, "egemaps")
    errors = []
    for sample_id, f0 in zip(features.column("sample_id").to_pylist(), io.column_arrays(features, "f0_hz"), strict=True):
        if sample_id not in _good_ids():
            continue
        truth = pd.read_csv(corpus.parent / "f0" / sample_id[:3] / f"{sample_id}.csv")["f0_hz"].to_numpy()
        n = min(len(f0), len(truth))  # feature frame t <-> ground truth at t * 10 ms
        both = (f0[:n] > 0) & (truth[:n] > 0)
        errors.append(np.abs(f0[:n][both] - truth[:n][both]) / truth[:n][both])
    rel = np.concatenate(errors)
    assert len(rel) > 500
    assert np.median(rel) <= 0.05, f"median abs relative F0 error {np.median(rel):.4f}"


def test_plain_pandas_reads_everything_and_side_files_exist(run: tuple[str, object]) -> None:
    out, _ = run
    for path in ("features/egemaps", "labels/au", "errors"):
        frame = pd.read_parquet(os.path.join(out, path))
        assert len(frame) > 0
    assert set(pd.read_parquet(os.path.join(out, "features/egemaps"))["version"].unique()) == {io.latest_version(out, "features", "egemaps")}
    vocab = io.load_vocab(out, "au")
    assert vocab["ID_to_AU"][0] == "SOS" and vocab["ID_to_AU"][2] == 0.0 and len(vocab["ID_to_AU"]) == 53
    assert io.load_vocab(out, "egemaps")["ID_to_F0"][2] == "UNVOICED"
    version = io.latest_version(out, "labels", "au")
    counts = json.loads(storage.read_text(os.path.join(out, "stats/au", f"version={version}", "class_counts.json")))
    assert counts["AU01"]["occurrence"]["positive"] > 0
    assert counts["AU01"]["occurrence"]["positive"] == sum(counts["AU01"][c]["positive"] for c in ("onset", "apex", "offset"))
    stats = load_subject_stats(out, "egemaps")
    assert sorted(stats.mean) == ["s01", "s02"] and len(stats.names) == 25
    provenance = json.loads(storage.read_text(os.path.join(out, "_SUCCESS.json")))
    assert provenance["versions"]["opensmile"] == opensmile.__version__
    assert {s["feature_set"] for s in provenance["stages"]} == {"egemaps", "au"}
    assert storage.list_files(os.path.join(out, "_staging"), include_hidden=True) == []


def test_rerun_skips_committed_and_changed_params_make_a_new_version(run: tuple[str, object], corpus: Path) -> None:
    out, _ = run
    version = io.latest_version(out, "features", "egemaps")
    before = storage.list_files(io.set_dir(out, "features", "egemaps", version))
    again = preprocess(str(corpus), out, audio="egemaps", progress=False)
    stage = {s.feature_set: s for s in again.stages}
    assert stage["egemaps"].n_ok == 0 and stage["egemaps"].n_skipped == 9 and stage["egemaps"].n_failed == 6
    assert stage["au"].n_skipped == len(_good_ids()) + 1
    assert storage.list_files(io.set_dir(out, "features", "egemaps", version)) == before
    changed = preprocess(str(corpus), out, audio="egemaps", f0_step=5.0, labels=False, progress=False)
    new_version = changed.stages[0].version
    assert new_version != version and changed.stages[0].n_ok == 9
    assert io.list_versions(out, "features", "egemaps") == sorted([version, new_version])
    assert io.latest_version(out, "features", "egemaps") == new_version
    assert io.load_features(out, "egemaps", version=version).num_rows == 9
    assert len(io.load_vocab(out, "egemaps")["ID_to_F0"]) == 3 + 101


def test_cli_strict_exits_nonzero_when_anything_failed(run: tuple[str, object], corpus: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out, _ = run
    with pytest.raises(SystemExit) as exc:
        main(["preprocess", str(corpus), "--out", out, "--audio", "egemaps", "--no-labels", "--strict", "--no-progress"])
    assert exc.value.code == 1
    text = capsys.readouterr()
    assert "failed 6" in text.out and "skipped" in text.out and "h of audio" in text.out
    assert "bad_zero" in text.err


def test_cli_rejects_unknown_audio_set_before_running(corpus: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["preprocess", str(corpus), "--out", str(tmp_path), "--audio", "egemaps,gemaps"])
    assert exc.value.code == 2
    assert "gemaps" in capsys.readouterr().err and not os.listdir(tmp_path)


def test_actor_strategy_writes_the_same_rows(run: tuple[str, object], corpus: Path, tmp_path: Path) -> None:
    from affectlab.data.cards import build_manifest, load_card
    from affectlab.features.audio import OpenSmileExtractor
    from affectlab.features.pipeline import run_stage

    out, _ = run
    manifest = build_manifest(load_card(str(corpus)))
    manifest = manifest.filter([s in _good_ids() for s in manifest.column("sample_id").to_pylist()])
    result = run_stage(manifest, OpenSmileExtractor, {"feature_set": "egemaps"}, out=str(tmp_path), strategy="actors",
                       batch_size=2, progress=False)
    assert result.n_ok == len(_good_ids()) and result.n_failed == 0
    tasks = io.load_features(out, "egemaps", version=result.version)  # same params: the same version
    actors = io.load_features(str(tmp_path), "egemaps")
    a = dict(zip(tasks.column("sample_id").to_pylist(), io.column_arrays(tasks, "features"), strict=True))
    b = dict(zip(actors.column("sample_id").to_pylist(), io.column_arrays(actors, "features"), strict=True))
    assert sorted(b) == sorted(_good_ids())
    for key, value in b.items():
        np.testing.assert_array_equal(value, a[key])


def test_a_block_commits_every_commit_rows_so_a_crash_loses_little(run: tuple[str, object], corpus: Path,
                                                                    tmp_path: Path) -> None:
    from affectlab.data.cards import build_manifest, load_card
    from affectlab.features.audio import OpenSmileExtractor
    from affectlab.features.pipeline import run_stage

    manifest = build_manifest(load_card(str(corpus)))
    manifest = manifest.filter([s in _good_ids() for s in manifest.column("sample_id").to_pylist()])
    commit_rows = 4
    assert manifest.num_rows > commit_rows
    result = run_stage(manifest, OpenSmileExtractor, {"feature_set": "egemaps"}, out=str(tmp_path),
                       batch_size=manifest.num_rows, num_workers=1, progress=False, commit_rows=commit_rows)  # one block
    assert result.n_ok == manifest.num_rows
    parts = sorted((tmp_path / "features" / "egemaps" / f"version={result.version}").glob("*.parquet"))
    sizes = [pq.read_metadata(p).num_rows for p in parts]
    assert sum(sizes) == manifest.num_rows
    assert len(parts) == -(-manifest.num_rows // commit_rows) and max(sizes) == commit_rows
