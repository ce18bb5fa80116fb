"""The directory-layout adapters (ravdess, lrs, affwild2, lma) on generated corpora.

Adapters never decode media, so the media files here are a few placeholder bytes.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import yaml

from affectlab.cli import main
from affectlab.data.adapters import lma, ravdess
from affectlab.data.cards import build_manifest, load_card
from affectlab.data.check import check_manifest
from affectlab.errors import ConfigError, DatasetError


def touch(path: Path, data: bytes = b"\0") -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def write_card(path: Path, adapter: str, root: Path, **options: object) -> str:
    path.write_text(yaml.safe_dump({"name": path.stem, "adapter": adapter, "root": str(root), "options": options}))
    return str(path)


def rows_by_id(card: str, *overrides: str) -> dict[str, dict]:
    return {r["sample_id"]: r for r in build_manifest(load_card(card, overrides)).to_pylist()}


def cli_check(card: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    try:
        main(["datasets", "check", card])
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    captured = capsys.readouterr()
    return code, captured.out + captured.err


# ---------------------------------------------------------------- ravdess

RAVDESS_FILES = (
    "Actor_01/03-01-05-01-02-01-01.wav",
    "Actor_01/03-01-01-01-01-01-01.wav",
    "Actor_02/03-02-03-02-01-02-02.wav",
    "Actor_02/01-01-04-01-01-01-02.mp4",
    "video/02-01-08-02-02-02-24.mp4",
)


@pytest.fixture
def ravdess_card(tmp_path: Path) -> str:
    root = tmp_path / "RAVDESS"
    for rel in RAVDESS_FILES:
        touch(root / rel)
    return write_card(tmp_path / "ravdess.yaml", "ravdess", root, glob=["**/*.wav", "**/*.mp4"])


def test_ravdess_parse_name() -> None:
    parts = ravdess.parse_name("Actor_12/03-01-05-02-01-02-12.wav")
    assert parts == {
        "modality": "audio-only",
        "vocal channel": "speech",
        "emotion": "angry",
        "intensity": "strong",
        "statement": "Kids are talking by the door",
        "repetition": "2",
        "actor": "actor_12",
    }


@pytest.mark.parametrize(
    ("name", "part"),
    [
        ("03-01-05-01-02-01.wav", "7 dash-separated parts"),
        ("03-01-09-01-02-01-01.wav", "emotion code '09'"),
        ("03-01-05-01-02-01-25.wav", "actor code '25'"),
        ("04-01-05-01-02-01-01.wav", "modality code '04'"),
        ("03-01-05-01-02-01-01.txt", "extension '.txt'"),
    ],
)
def test_ravdess_parse_name_rejects(name: str, part: str) -> None:
    with pytest.raises(ValueError, match=part):
        ravdess.parse_name(name)


def test_ravdess_manifest(ravdess_card: str) -> None:
    rows = rows_by_id(ravdess_card)
    assert len(rows) == len(RAVDESS_FILES)
    speech = rows["03-01-05-01-02-01-01"]
    assert speech["subject"] == "actor_01" and speech["emotion"] == "angry"
    assert speech["transcript"] == "Dogs are sitting by the door"
    assert speech["audio_path"].endswith("Actor_01/03-01-05-01-02-01-01.wav") and speech["video_path"] is None
    full_av = rows["01-01-04-01-01-01-02"]
    assert full_av["video_path"] == full_av["audio_path"] and full_av["video_path"].endswith(".mp4")
    video_only = rows["02-01-08-02-02-02-24"]
    assert video_only["audio_path"] is None and video_only["emotion"] == "surprised"
    assert video_only["subject"] == "actor_24"


def test_ravdess_default_glob_reads_wav_only(ravdess_card: str) -> None:
    rows = rows_by_id(ravdess_card, "options.glob='**/*.wav'")
    assert sorted(rows) == sorted(Path(f).stem for f in RAVDESS_FILES if f.endswith(".wav"))


def test_ravdess_bad_names_reported_together(ravdess_card: str, tmp_path: Path) -> None:
    touch(tmp_path / "RAVDESS" / "Actor_03" / "03-01-05-01-02-01.wav")
    touch(tmp_path / "RAVDESS" / "notes" / "readme.wav")
    with pytest.raises(DatasetError) as info:
        build_manifest(load_card(ravdess_card))
    text = str(info.value)
    assert "2 problem(s)" in text and "MM-VV-EE-II-SS-RR-AA" in text
    assert "Actor_03/03-01-05-01-02-01.wav" in text and "notes/readme.wav" in text


def test_ravdess_bad_video_names_name_the_file_and_the_valid_codes(ravdess_card: str, tmp_path: Path) -> None:
    touch(tmp_path / "RAVDESS" / "Actor_05" / "01-01-09-01-02-01-05.mp4")  # unknown emotion code
    touch(tmp_path / "RAVDESS" / "Actor_05" / "01-01-03-01-02-01-05-2.mp4")  # 8 parts
    with pytest.raises(DatasetError) as info:
        build_manifest(load_card(ravdess_card))
    text = str(info.value)
    assert "2 problem(s)" in text
    assert "Actor_05/01-01-09-01-02-01-05.mp4: emotion code '09' is not one of ['01'" in text and "'08']" in text
    assert "Actor_05/01-01-03-01-02-01-05-2.mp4: expected 7 dash-separated parts, got 8" in text


def test_ravdess_no_matching_files(ravdess_card: str) -> None:
    with pytest.raises(DatasetError, match=r"no file .* matches options.glob"):
        build_manifest(load_card(ravdess_card, ["options.glob='**/*.flac'"]))


def test_ravdess_check_cli(ravdess_card: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, out = cli_check(ravdess_card, capsys)
    assert code == 0, out
    assert "recordings: 5   subjects: 3" in out and "ok" in out


# ---------------------------------------------------------------- lrs


@pytest.fixture
def lrs_root(tmp_path: Path) -> Path:
    root = tmp_path / "LRS3"
    for rel, text in [
        ("trainval/spk1/00001", "Text:  HELLO WORLD  \nConf:  4\n\nWORD START END ASDSCORE\nHELLO 0.1 0.4 5.2\nWORLD 0.48 0.9 5.0\n"),
        ("trainval/spk1/00002", None),
        ("trainval/spk2/00001", "Text:  GOOD MORNING\n"),
        ("test/spk3/00001", "Text:  SEE YOU\n"),
    ]:
        touch(root / f"{rel}.mp4")
        if text is not None:
            (root / f"{rel}.txt").write_text(text)
    return root


def test_lrs_manifest_with_splits(lrs_root: Path, tmp_path: Path) -> None:
    card = write_card(tmp_path / "lrs3.yaml", "lrs", lrs_root, splits=["trainval", "test"])
    rows = rows_by_id(card)
    assert sorted(rows) == ["test/spk3/00001", "trainval/spk1/00001", "trainval/spk1/00002", "trainval/spk2/00001"]
    first = rows["trainval/spk1/00001"]
    assert first["transcript"] == "HELLO WORLD" and first["subject"] == "spk1"
    assert first["audio_path"] == first["video_path"] == str(lrs_root / "trainval/spk1/00001.mp4")
    assert first["word_times"] == [{"word": "HELLO", "start": 0.1, "end": 0.4},
                                   {"word": "WORLD", "start": 0.48, "end": 0.9}]
    assert rows["trainval/spk1/00002"]["transcript"] is None
    assert rows["trainval/spk2/00001"]["word_times"] is None  # no timing header: no word timings
    assert check_manifest(build_manifest(load_card(card))).label_coverage == {"transcript": 3, "word_times": 1}


def test_lrs_flat_layout(lrs_root: Path, tmp_path: Path) -> None:
    card = write_card(tmp_path / "lrs.yaml", "lrs", lrs_root / "trainval")
    assert sorted(rows_by_id(card)) == ["spk1/00001", "spk1/00002", "spk2/00001"]


def test_lrs_layout_errors(lrs_root: Path, tmp_path: Path) -> None:
    card = write_card(tmp_path / "lrs.yaml", "lrs", lrs_root)
    with pytest.raises(DatasetError, match=r"set options\.splits, e\.g\. \[.test., .trainval.\]"):
        build_manifest(load_card(card))
    with pytest.raises(DatasetError, match=r"options.splits entry 'pretrain': no directory"):
        build_manifest(load_card(card, ["options.splits=[trainval, pretrain]"]))
    with pytest.raises(ConfigError, match=r"options\.splits\.0: .*'\.\./x' leaves the dataset root"):
        load_card(card, ["options.splits=[../x]"])  # refused with the card, before any listing


def test_lrs_txt_without_text_line(lrs_root: Path, tmp_path: Path) -> None:
    (lrs_root / "test/spk3/00001.txt").write_text("Conf:  3\n")
    card = write_card(tmp_path / "lrs3.yaml", "lrs", lrs_root, splits=["trainval", "test"])
    with pytest.raises(DatasetError, match=r"test/spk3/00001.txt: no line starting with 'Text:'"):
        build_manifest(load_card(card))


@pytest.mark.parametrize(("timings", "message"), [
    ("HELLO 0.1 soon 5\nWORLD 0.5 0.9 5\n", r"line 5 'HELLO 0.1 soon 5': expected 'WORD START END"),
    ("HELLO 0.4 0.1 5\nWORLD 0.5 0.9 5\n", r"needs 0 <= START <= END, got 0.4 and 0.1"),
    ("HELLO 0.1 0.4 5\n", r"timed words \['HELLO'\] are not those of the 'Text:' line \['HELLO', 'WORLD'\]"),
])
def test_lrs_bad_word_timings_name_the_file_and_line(lrs_root: Path, tmp_path: Path, timings: str,
                                                     message: str) -> None:
    txt = lrs_root / "trainval/spk1/00001.txt"
    txt.write_text("Text:  HELLO WORLD\nConf:  4\n\nWORD START END ASDSCORE\n" + timings)
    card = write_card(tmp_path / "lrs3.yaml", "lrs", lrs_root, splits=["trainval", "test"])
    with pytest.raises(DatasetError, match=re.escape(str(txt)) + ": .*" + message):
        build_manifest(load_card(card))


def test_lrs_check_cli(lrs_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    card = write_card(tmp_path / "lrs3.yaml", "lrs", lrs_root, splits=["trainval", "test"])
    code, out = cli_check(card, capsys)
    assert code == 0, out
    assert "recordings: 4   subjects: 3" in out and "label transcript  3/4 recordings" in out


# ---------------------------------------------------------------- affwild2

AU_HEADER = "AU1,AU2,AU4,AU6,AU7,AU10,AU12,AU15,AU23,AU24,AU25,AU26"


def au_lines(n: int) -> str:
    rng = np.random.default_rng(0)
    body = ["-1," * 11 + "-1"] + [",".join(map(str, rng.integers(0, 2, 12))) for _ in range(n - 1)]
    return AU_HEADER + "\n" + "\n".join(body) + "\n"


@pytest.fixture
def affwild_root(tmp_path: Path) -> Path:
    root = tmp_path / "Aff-Wild2"
    touch(root / "videos/batch1/vid1.mp4")
    touch(root / "videos/vid2.avi")
    touch(root / "videos/unannotated.mp4")
    ann = root / "annotations"
    (ann / "AU_Set/Train_Set").mkdir(parents=True)
    (ann / "AU_Set/Train_Set/vid1.txt").write_text(au_lines(4))
    (ann / "VA_Set/Train_Set").mkdir(parents=True)
    (ann / "VA_Set/Train_Set/vid1.txt").write_text("valence,arousal\n0.1,0.2\n-5,-5\n-1,0.5\n")
    (ann / "EXPR_Set/Validation_Set").mkdir(parents=True)
    (ann / "EXPR_Set/Validation_Set/vid2_left.txt").write_text(
        "Neutral,Anger,Disgust,Fear,Happiness,Sadness,Surprise,Other\n0\n4\n-1\n"
    )
    (ann / "AU_Set/Validation_Set").mkdir(parents=True)
    (ann / "AU_Set/Validation_Set/vid2_right.txt").write_text(au_lines(3))
    return root


def test_affwild2_manifest(affwild_root: Path, tmp_path: Path) -> None:
    card = write_card(tmp_path / "aw.yaml", "affwild2", affwild_root)
    rows = rows_by_id(card)
    assert sorted(rows) == ["vid1", "vid2_left", "vid2_right"]
    vid1 = rows["vid1"]
    assert vid1["video_path"] == str(affwild_root / "videos/batch1/vid1.mp4") and vid1["audio_path"] is None
    assert vid1["labels_path"].endswith("AU_Set/Train_Set/vid1.txt")
    assert vid1["va_labels_path"].endswith("VA_Set/Train_Set/vid1.txt") and vid1["expr_labels_path"] is None
    assert vid1["labels_format"] == "abaw_au" and vid1["labels_rate_hz"] == 30.0
    left, right = rows["vid2_left"], rows["vid2_right"]
    assert left["subject"] == right["subject"] == "vid2"
    assert left["video_path"] == right["video_path"] == str(affwild_root / "videos/vid2.avi")
    assert left["labels_path"] is None and left["expr_labels_path"].endswith("vid2_left.txt")
    options = rows_by_id(card, "options.fps=25", "options.audio_from_video=true")["vid1"]
    assert options["labels_rate_hz"] == 25.0 and options["audio_path"] == options["video_path"]


def test_affwild2_annotation_without_video(affwild_root: Path, tmp_path: Path) -> None:
    (affwild_root / "annotations/VA_Set/Train_Set/ghost.txt").write_text("valence,arousal\n0,0\n")
    (affwild_root / "annotations/AU_Set/Train_Set/phantom_left.txt").write_text(au_lines(2))
    card = write_card(tmp_path / "aw.yaml", "affwild2", affwild_root)
    with pytest.raises(DatasetError) as info:
        build_manifest(load_card(card))
    text = str(info.value)
    assert "annotations without a video" in text and "ghost" in text and "phantom_left" in text
    assert "allow_missing_video" in text
    assert sorted(rows_by_id(card, "options.allow_missing_video=true")) == ["vid1", "vid2_left", "vid2_right"]


def test_affwild2_layout_errors(affwild_root: Path, tmp_path: Path) -> None:
    card = write_card(tmp_path / "aw.yaml", "affwild2", affwild_root)
    with pytest.raises(DatasetError, match=r"options.video_dir 'clips': no directory"):
        build_manifest(load_card(card, ["options.video_dir=clips"]))
    with pytest.raises(DatasetError, match=r"options.annotation_dir 'labels'"):
        build_manifest(load_card(card, ["options.annotation_dir=labels"]))
    touch(affwild_root / "videos/vid1.avi")
    with pytest.raises(DatasetError, match="video 'vid1'"):
        build_manifest(load_card(card))


def test_affwild2_check_cli(affwild_root: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    card = write_card(tmp_path / "aw.yaml", "affwild2", affwild_root)
    code, out = cli_check(card, capsys)
    assert code == 0, out
    assert "recordings: 3   subjects: 2" in out and "va_labels_path" in out


# ---------------------------------------------------------------- lma


def write_lma(path: Path, n: int = 6, *, drop: tuple[str, ...] = (), subject: bool = True) -> np.ndarray:
    rng = np.random.default_rng(4)
    values = rng.normal(size=(n, len(lma.LMA_FEATURES))).round(4)
    pad = rng.uniform(-1, 1, size=(n, 3)).round(3)
    header = ["clip_id", *(["subject"] if subject else []), *lma.LMA_FEATURES, "pleasure", "arousal", "dominance"]
    lines = []
    for i in range(n):
        cells = [f"clip{i}", *([f"actor{i % 2}"] if subject else []), *map(str, values[i]), *map(str, pad[i])]
        lines.append(",".join(cells))
    keep = [j for j, h in enumerate(header) if h not in drop]
    text = "\n".join(",".join(row.split(",")[j] for j in keep) for row in [",".join(header), *lines])
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text + "\n")
    return np.hstack([values, pad])


def test_lma_feature_list() -> None:
    assert len(lma.LMA_FEATURES) == 27 and len(set(lma.LMA_FEATURES)) == 27
    assert "avg_neck_cnest_distance" in lma.LMA_FEATURES


def test_lma_manifest(tmp_path: Path) -> None:
    expected = write_lma(tmp_path / "lma" / "lma_features.csv")
    card = write_card(tmp_path / "lma.yaml", "lma", tmp_path / "lma")
    rows = rows_by_id(card)
    assert sorted(rows) == [f"clip{i}" for i in range(6)]
    clip = rows["clip3"]
    assert clip["subject"] == "actor1"
    np.testing.assert_allclose(clip["features"], expected[3, :27], rtol=1e-6)
    assert (clip["valence"], clip["arousal"], clip["dominance"]) == pytest.approx(tuple(expected[3, 27:]))


def test_lma_subject_defaults_to_clip_id(tmp_path: Path) -> None:
    write_lma(tmp_path / "lma" / "t.csv", subject=False, drop=("dominance",))
    card = write_card(tmp_path / "lma.yaml", "lma", tmp_path / "lma", file="t.csv")
    clip = rows_by_id(card)["clip0"]
    assert clip["subject"] == "clip0" and clip["dominance"] is None


def test_lma_missing_feature_columns_listed(tmp_path: Path) -> None:
    write_lma(tmp_path / "lma" / "lma_features.csv", drop=("neck_speed", "r_hand_speed"))
    card = write_card(tmp_path / "lma.yaml", "lma", tmp_path / "lma")
    with pytest.raises(DatasetError, match=r"missing column\(s\) \['neck_speed', 'r_hand_speed'\]"):
        build_manifest(load_card(card))


def test_lma_bad_cells_name_row_and_column(tmp_path: Path) -> None:
    path = tmp_path / "lma" / "lma_features.csv"
    write_lma(path)
    lines = path.read_text().splitlines()
    cells = lines[2].split(",")
    cells[3], cells[-1] = "oops", "high"  # a feature and dominance
    lines[2] = ",".join(cells)
    path.write_text("\n".join(lines) + "\n")
    card = write_card(tmp_path / "lma.yaml", "lma", tmp_path / "lma")
    with pytest.raises(DatasetError) as info:
        build_manifest(load_card(card))
    text = str(info.value)
    assert f"row 3, column {lma.LMA_FEATURES[1]!r}: not a number: 'oops'" in text
    assert "row 3, column 'dominance': not a number: 'high'" in text


def test_lma_check_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    write_lma(tmp_path / "lma" / "lma_features.csv")
    card = write_card(tmp_path / "lma.yaml", "lma", tmp_path / "lma")
    code, out = cli_check(card, capsys)
    assert code == 0, out
    assert "recordings: 6   subjects: 2" in out and "label features    6/6" in out
