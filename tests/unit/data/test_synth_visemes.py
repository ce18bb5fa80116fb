"""``synth visemes``: the viseme table, the planted mouth track, the corpus, sentences files, the control."""

from __future__ import annotations

import itertools
import os
import re
from pathlib import Path

import numpy as np
import pytest
import yaml

from affectlab.data.cards import build_manifest, load_card
from affectlab.data.check import check_manifest
from affectlab.data.synth import generate
from affectlab.data.synth import talking_face as TF
from affectlab.data.synth import visemes as VS
from affectlab.data.synth.base import SynthRequest
from affectlab.data.synth.video import read_mp4
from affectlab.errors import ConfigError

LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
STILL = VS.Subject(1.0, (0.0, 0.0), 0.0, (1.0, 1.0, 1.0), (0.0, 0.0), 1.0, 1.0, 0.0, 0.0, None)  # type: ignore[arg-type]
SENTENCES = ["BOB MET A DOG", "MY CAT SAW IT", "ZAP THE FOX", "I LOVE WAVES", "HUGE QUIET JOKE"]


def _sentences(tmp_path: Path, lines: list[str] = SENTENCES, name: str = "sentences.txt") -> str:
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return str(path)


def _corpus(tmp_path: Path, name: str, **kw: object) -> Path:
    args: dict[str, object] = {"subjects": 2, "items": 2, "seed": 1, "size": 64, "sentences": _sentences(tmp_path)}
    args.update(kw)
    return Path(generate("visemes", str(tmp_path / name), **args)).parent  # type: ignore[arg-type]


def _transcript(path: Path) -> str:
    return path.read_text(encoding="utf-8").splitlines()[0].removeprefix("Text:").strip()


# --- the viseme table ---------------------------------------------------------------------------


def test_viseme_table_covers_the_alphabet_with_10_to_14_shared_classes() -> None:
    assert set(VS.VISEME_TABLE) == set(VS.ALPHABET) == set(" " + LETTERS)
    assert 10 <= len(VS.VISEME_CLASSES) <= 14 and VS.VISEME_CLASSES[0] == "rest"
    assert set(VS.VISEME_TABLE.values()) == set(VS.VISEME_CLASSES) == set(VS.VISEMES)
    members = {c: {ch for ch, k in VS.VISEME_TABLE.items() if k == c} for c in VS.VISEME_CLASSES}
    assert sum(len(m) >= 2 for m in members.values()) >= 6  # letters share classes, as in real lip reading
    assert members["rest"] == {" "}
    for group in ("BMP", "FV", "OUW"):
        assert len({VS.VISEME_TABLE[ch] for ch in group}) == 1, group
    closed, open_ = VS.VISEME_CLASSES.index("bilabial"), VS.VISEME_CLASSES.index("open")
    assert VS.viseme_ids("BAM") == [closed, open_, closed]


def test_every_class_has_a_distinct_mouth_shape() -> None:
    for a, b in itertools.combinations(VS.VISEME_CLASSES, 2):
        diff = np.abs(VS.VISEMES[a].vector() - VS.VISEMES[b].vector()).max()
        assert diff >= 0.1, (a, b, diff)


def test_module_docstring_table_matches_the_constant() -> None:
    rows = re.findall(r"^(\w+)\s{2,}(\(space\)|[A-Z](?: [A-Z])*)\s{2,}\S", VS.__doc__ or "", flags=re.MULTILINE)
    documented = {name: " " if letters == "(space)" else letters.replace(" ", "") for name, letters in rows}
    letters = {c: "".join(sorted(ch for ch, k in VS.VISEME_TABLE.items() if k == c)) for c in VS.VISEME_CLASSES}
    assert documented == letters


# --- timing and the mouth track -----------------------------------------------------------------


def test_mouth_track_shows_each_class_shape_at_the_middle_of_its_frames() -> None:
    text = "BAMBI MOPS FAVOUR THE LILY"
    tm = VS.timing(text, 1.0, np.random.default_rng(0))
    track = VS.mouth_track(tm)
    assert track.shape == (tm.n_frames, len(VS.SHAPE_PARAMS))
    mids = track[tm.middles]
    for ch, row in zip(text, mids, strict=True):
        np.testing.assert_allclose(row, VS.VISEMES[VS.VISEME_TABLE[ch]].vector(), atol=1e-9)
    # same class -> same shape (B, M, P; F, V), different classes -> different shapes
    by_char = {ch: mids[i] for i, ch in enumerate(text)}
    np.testing.assert_array_equal(by_char["B"], by_char["M"])
    np.testing.assert_array_equal(by_char["M"], by_char["P"])
    np.testing.assert_array_equal(by_char["F"], by_char["V"])
    assert np.abs(by_char["A"] - by_char["B"]).max() > 0.5
    # rest before and after the sentence; co-articulated frames in between the held shapes
    rest = VS.VISEMES["rest"].vector()
    np.testing.assert_allclose(track[0], rest)
    np.testing.assert_allclose(track[-1], rest)
    targets = np.stack([s.vector() for s in VS.VISEMES.values()])
    off_target = np.abs(track[:, None, :] - targets[None]).max(axis=2).min(axis=1) > 1e-6
    classes = [VS.VISEME_TABLE[ch] for ch in text]
    changes = [i for i in range(1, len(text)) if classes[i] != classes[i - 1]]
    assert len(changes) >= 20 and off_target[tm.starts[changes]].all()  # each new shape starts in between
    assert not off_target[tm.starts[3]]  # B after M: the same shape, nothing to move
    jumps = np.abs(np.diff(track, axis=0)).max(axis=1)
    assert jumps.max() < 0.9  # no frame goes all the way from one shape to the next (full range: 1)


def test_durations_vary_so_frames_do_not_count_characters() -> None:
    rng = np.random.default_rng(0)
    tm = VS.timing("A" * 20 + " " + "S" * 20, 1.0, rng)
    assert tm.lengths.min() >= 2 and len(set(tm.lengths[:20])) >= 3  # the same letter, different lengths
    texts = ["THE DOG SAW A CAT", "A RED BUS MET HER", "WE HID THE KEY ON"]
    assert len({len(t) for t in texts}) == 1
    frames = [VS.timing(t, 1.0, rng).n_frames for t in texts for _ in range(4)]
    assert len(set(frames)) >= 4  # equal character counts, different frame counts
    lengths = np.concatenate([VS.timing(VS.sentence(rng), 1.0, rng).lengths for _ in range(30)])
    assert lengths.std() > 0.5 and len(np.unique(lengths)) >= 4
    slow = np.mean([VS.timing("MY DOG SAW A CAT", 0.75, rng).lengths.mean() for _ in range(20)])
    fast = np.mean([VS.timing("MY DOG SAW A CAT", 1.3, rng).lengths.mean() for _ in range(20)])
    assert slow > fast + 0.5  # the speaking rate sets the pace


def test_rendered_mouth_follows_the_viseme_classes() -> None:
    size = 224  # 1 output px per source px for the still subject
    text = "BMPA FVO"
    tm = VS.timing(text, 1.0, np.random.default_rng(1))
    frames = VS.render_mouth_frames(VS.mouth_track(tm), STILL, np.zeros((tm.n_frames, 3)), size)
    mid = frames[tm.middles].astype(int)
    np.testing.assert_array_equal(mid[0], mid[1])  # B and M
    np.testing.assert_array_equal(mid[1], mid[2])  # M and P
    np.testing.assert_array_equal(mid[5], mid[6])  # F and V
    assert np.abs(mid[0] - mid[3]).mean() > 0.5 and np.abs(mid[3] - mid[7]).mean() > 0.5
    # the rendered opening (dark cavity or teeth down the mouth's centre column) follows `open`
    params = np.stack([VS.VISEMES[c].vector() for c in VS.VISEME_CLASSES])
    still = VS.render_mouth_frames(params, STILL, np.zeros((len(params), 3)), size).astype(float)
    cx = int(TF.MOUTH[0] - TF.FACE_CENTRE[0] + size / 2)
    cy = int(TF.MOUTH[1] - TF.FACE_CENTRE[1] + size / 2)
    column = still[:, cy - 16 : cy + 24, cx - 1 : cx + 2].mean(axis=2)
    lum, sat = column.mean(-1), column.max(-1) - column.min(-1)
    opening = ((lum < 110) | ((lum > 170) & (sat < 40))).sum(axis=1)
    assert np.corrcoef(params[:, 0], opening)[0, 1] > 0.8
    named = dict(zip(VS.VISEME_CLASSES, opening, strict=True))
    assert named["open"] == opening.max() and named["open"] > named["rounded"] + 4
    assert named["bilabial"] <= 1 and named["rounded"] > named["bilabial"] + 2


# --- sentences ----------------------------------------------------------------------------------


def test_grammar_has_a_few_hundred_words_and_is_deterministic() -> None:
    words = VS.vocabulary()
    assert 250 <= len(words) <= 600 and all(re.fullmatch(r"[A-Z]+", w) for w in words)
    a = [VS.sentence(np.random.default_rng(7)) for _ in range(3)]
    assert a[0] == a[1] == a[2]
    many = {VS.sentence(np.random.default_rng(i)) for i in range(200)}
    assert len(many) > 190 and all(set(s) <= set(VS.ALPHABET) and "  " not in s for s in many)


def test_read_sentences_normalises_and_names_every_problem(tmp_path: Path) -> None:
    ok = _sentences(tmp_path, ["  hello   World ", "BOB"], "ok.txt")
    assert VS.read_sentences(ok) == ["HELLO WORLD", "BOB"]
    bad = _sentences(tmp_path, ["GOOD LINE", "BAD LINE!", "", "CAFÉ AU LAIT", "A\tB"], "bad.txt")
    with pytest.raises(ValueError) as info:
        VS.read_sentences(bad)
    msg = str(info.value)
    assert f"{bad} line 2: unsupported character '!' (U+0021) at column 9" in msg
    assert f"{bad} line 3: empty line" in msg
    assert f"{bad} line 4: unsupported character 'É'" in msg
    assert f"{bad} line 5: unsupported character '\\t'" in msg
    assert "line 1" not in msg
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    with pytest.raises(ValueError, match="no sentences"):
        VS.read_sentences(str(empty))
    with pytest.raises(ValueError, match="cannot read"):
        VS.read_sentences(str(tmp_path / "missing.txt"))
    with pytest.raises(ValueError, match="at most 200"):
        VS.read_sentences(_sentences(tmp_path, ["AB " * 80], "long.txt"))


def test_a_bad_sentences_file_stops_generate_before_writing(tmp_path: Path) -> None:
    bad = _sentences(tmp_path, ["FINE", "NOT FINE 2"], "bad.txt")
    with pytest.raises(ConfigError) as info:
        generate("visemes", str(tmp_path / "out"), subjects=1, items=1, seed=0, sentences=bad)
    msg = str(info.value)
    assert "sentences" in msg and f"{bad} line 2" in msg and "'2'" in msg
    assert not (tmp_path / "out").exists()


# --- the corpus ---------------------------------------------------------------------------------


def test_corpus_layout_transcripts_media_and_card(tmp_path: Path) -> None:
    root = _corpus(tmp_path, "c")
    assert sorted(p.relative_to(root).as_posix() for p in root.rglob("*.*") if p.name != "dataset.yaml") == [
        f"{s}/{k:05d}.{ext}" for s in ("s01", "s02") for k in (1, 2) for ext in ("mp4", "txt")
    ]
    # the sentences file round trip: clip j = subject * items + item says line j mod N
    for j, (s, k) in enumerate(itertools.product(("s01", "s02"), (1, 2))):
        assert _transcript(root / s / f"{k:05d}.txt") == SENTENCES[j % len(SENTENCES)]
    txt = (root / "s01" / "00001.txt").read_text().splitlines()
    assert txt[1] == "Conf:  4" and [w.split()[0] for w in txt[4:]] == SENTENCES[0].split()
    req = SynthRequest("visemes", str(root), 2, 2, 1, "planted")
    timings = VS.clip_timings(req, VS.VisemesOptions(size=64, sentences=_sentences(tmp_path)))
    frames, audio = read_mp4(str(root / "s01" / "00001.mp4"))
    tm = timings["s01/00001"]
    assert tm.text == SENTENCES[0] and frames.shape == (tm.n_frames, 64, 64, 3)
    assert audio is not None and abs(len(audio) - tm.n_frames * 640) <= 2048 and np.abs(audio).max() > 0.01
    card = load_card(str(root / "dataset.yaml"))
    assert card.adapter.name == "lrs"
    table = build_manifest(card)
    report = check_manifest(table)
    assert report.ok and (report.n_recordings, report.n_subjects) == (4, 2)
    rows = {r["sample_id"]: r["transcript"] for r in table.to_pylist()}
    assert rows["s02/00002"] == SENTENCES[3]
    planted = yaml.safe_load((root / "dataset.yaml").read_text())["planted"]
    assert planted["viseme_table"] == VS.VISEME_TABLE and planted["fps"] == 25
    assert planted["audio_sample_rate"] == 16000 and list(planted["viseme_classes"]) == list(VS.VISEME_CLASSES)
    assert "sentences.txt" in planted["sentences"] and str(tmp_path) not in planted["sentences"]


def test_same_seed_same_files_and_a_speaker_split(tmp_path: Path) -> None:
    kw = {"subjects": 3, "items": 1, "seed": 4}
    a, b = _corpus(tmp_path, "a", **kw), _corpus(tmp_path, "b", **kw)
    files = sorted(p.relative_to(a) for p in a.rglob("*.*"))
    assert files == sorted(p.relative_to(b) for p in b.rglob("*.*"))
    for rel in files:
        assert (a / rel).read_bytes() == (b / rel).read_bytes(), rel
    card = yaml.safe_load((a / "dataset.yaml").read_text())
    assert card["splits"] == {"speakers": {"train": ["s01"], "val": ["s02"], "test": ["s03"]}}


def test_shuffled_relation_permutes_transcripts_and_keeps_the_media(tmp_path: Path) -> None:
    kw = {"subjects": 1, "items": 5, "seed": 2}
    planted, shuffled = _corpus(tmp_path, "p", **kw), _corpus(tmp_path, "s", relation="shuffled", **kw)
    clips = sorted(p.relative_to(planted) for p in planted.rglob("*.mp4"))
    own = [_transcript(planted / c.with_suffix(".txt")) for c in clips]
    given = [_transcript(shuffled / c.with_suffix(".txt")) for c in clips]
    assert own == SENTENCES and sorted(given) == sorted(own)
    assert all(g != o for g, o in zip(given, own, strict=True))  # no clip keeps its own transcript
    for c in clips:
        assert (planted / c).read_bytes() == (shuffled / c).read_bytes()
    card = yaml.safe_load((shuffled / "dataset.yaml").read_text())
    assert card["planted"]["relation"] == "shuffled"


def test_subjects_differ_in_face_pose_light_mouth_and_rate(tmp_path: Path) -> None:
    subjects = [VS.random_subject(np.random.default_rng([9, s])) for s in range(4)]
    for field in ("scale", "shift", "rotation_deg", "gain", "light", "mouth_width", "rate", "voice"):
        values = [getattr(s, field) for s in subjects]
        assert len({str(v) for v in values}) == len(values), field
    root = _corpus(tmp_path, "subj", items=1, sentences=_sentences(tmp_path, ["MOM"]))
    params = yaml.safe_load((root / "dataset.yaml").read_text())["planted"]["subject_params"]
    assert set(params) == {"s01", "s02"} and all(params["s01"][k] != params["s02"][k] for k in params["s01"])
    first = [read_mp4(str(root / s / "00001.mp4"))[0][0].astype(int) for s in ("s01", "s02")]
    assert np.abs(first[0] - first[1]).mean() > 5  # same face, another pose and light


def test_faces_are_found_and_the_mouth_sits_where_the_landmarks_put_it(tmp_path: Path) -> None:
    dlib = pytest.importorskip("dlib")
    from affectlab.features.faces import dlib_predictor_path

    try:
        predictor = dlib.shape_predictor(dlib_predictor_path())
    except ConfigError as exc:  # the predictor file is not installed
        pytest.skip(str(exc))
    detector = dlib.get_frontal_face_detector()
    root = _corpus(tmp_path, "dlib", size=128, items=1, sentences=_sentences(tmp_path, ["BOB SAW A BAT"]))
    for s in ("s01", "s02"):
        frames = read_mp4(str(root / s / "00001.mp4"))[0]
        for frame in frames[::6]:
            faces = detector(frame, 1)
            assert len(faces) == 1, s
            mouth = np.array([[p.x, p.y] for p in predictor(frame, faces[0]).parts()])[48:68]
            box = faces[0]
            rel = (mouth.mean(axis=0) - [box.left(), box.top()]) / [box.width(), box.height()]
            assert 0.3 < rel[0] < 0.7 and 0.6 < rel[1] < 1.0, (s, rel)


def test_cli_writes_a_corpus_and_rejects_misplaced_or_bad_sentences(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from affectlab.cli import main

    path = _sentences(tmp_path, ["HI MOM"])
    out = tmp_path / "cli"
    main(["synth", "visemes", "--out", str(out), "--subjects", "1", "--items", "1", "--size", "64",
          "--sentences", path])
    assert "card:" in capsys.readouterr().out and _transcript(out / "s01" / "00001.txt") == "HI MOM"
    with pytest.raises(SystemExit) as exit_:
        main(["synth", "lma", "--out", str(tmp_path / "l"), "--sentences", path])
    assert exit_.value.code == 2 and "--sentences" in capsys.readouterr().err
    bad = _sentences(tmp_path, ["OK", "NO WAY?"], "bad.txt")
    with pytest.raises(SystemExit) as exit_:
        main(["synth", "visemes", "--out", str(tmp_path / "b"), "--items", "1", "--sentences", bad])
    err = capsys.readouterr().err
    assert exit_.value.code != 0 and f"{bad} line 2" in err and "'?'" in err
    assert not os.path.exists(tmp_path / "b")
