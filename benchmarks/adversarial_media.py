"""The media half of the adversarial benchmark: a ``csv`` corpus of good recordings interleaved
with broken and hostile ones, run through ``affectlab datasets check`` and ``affectlab preprocess
--audio egemaps --video landmarks`` on Ray, every recording accounted for afterwards.

Each :class:`MediaCase` says what a user would expect of its files, per stage (``egemaps``,
``landmarks``): **kept** (written; ``converted`` when decoding changed its rate, width or channel
count) or **quarantined** (an error row in ``<out>/errors/`` whose message names the file and
contains the expected words). Judged afterwards from the published Parquet and ``errors/``:

- *crash*: the command raised (or exited with a traceback);
- *silent bad item*: a recording expected in ``errors/`` was written as features;
- *lost good item*: a recording expected to be kept is missing (or written twice, or also in
  ``errors/``);
- *NaN*: a written feature value is not finite.

The hours-long file is a sparse two-hour 16 kHz WAV (230 MB that take no disk space) and the peak
memory of the whole process tree (driver, Raylet, workers) is sampled during the run. A symbolic
link escaping the root makes the *card* invalid: that case runs a copy of the manifest with the
extra row, which both verbs must refuse before writing anything.
"""

from __future__ import annotations

import csv
import os
import shutil
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from adversarial_common import CaseResult, CliRun, run_cli

__all__ = ["MediaCase", "MediaCorpus", "MediaRun", "RssSampler", "build_media_corpus", "judge_media", "judge_row",
           "media_counts", "run_media"]

SR = 16000
HOURS_LONG_S = 2 * 3600
MANIFEST_HEADER = ["sample_id", "subject", "audio", "video", "labels"]
STAGES = ("egemaps", "landmarks")


@dataclass(frozen=True)
class MediaCase:
    """One kind of input and what a user would expect of it.

    Attributes:
        case: Short id (the sample ids are ``<case>`` or ``<case>-<k>``).
        tried: What the file is, in words.
        rows: Manifest rows (``sample_id, subject, audio, video``), paths relative to the root.
        expect: Per stage: ``"kept"``, ``"converted"`` or ``"quarantined"``; stages not named do
            not apply (no such column in the rows).
        words: Words the error message must contain (quarantined stages).
        good: A good recording (counted in "good items kept").
        note: For kept / converted rows: what the table says about the conversion.
    """

    case: str
    tried: str
    rows: tuple[dict[str, str], ...]
    expect: dict[str, str]
    words: str = ""
    good: bool = False
    note: str = ""


@dataclass
class MediaCorpus:
    """A written corpus: its card, root, cases and the card with the escaping symbolic link."""

    root: Path
    card: Path
    cases: list[MediaCase]
    escape_card: Path
    escape_case: MediaCase
    video: bool = True


# ---------------------------------------------------------------------------------------------
# writing the files


def _voice(seconds: float, sr: int = SR, seed: int = 0, f0: float = 140.0) -> np.ndarray:
    """Speech-like audio: a harmonic source with vibrato, syllable-rate gating and a noise floor."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    freq = f0 * (1 + 0.1 * np.sin(2 * np.pi * 0.7 * t))
    phase = 2 * np.pi * np.cumsum(freq) / sr
    gate = (np.sin(2 * np.pi * 3.0 * t) > -0.4).astype(float)
    x = sum(np.sin(k * phase) / k for k in range(1, 8)) * 0.15 * gate + 0.003 * rng.standard_normal(len(t))
    return x.astype(np.float32)


def _write(path: Path, data: np.ndarray, sr: int, subtype: str) -> None:
    import soundfile as sf

    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, data, sr, subtype=subtype, format="WAV")


def _wav_header(frames: int, sr: int, channels: int = 1, bits: int = 16) -> bytes:
    """A canonical 44-byte PCM WAV header."""
    block = channels * bits // 8
    data = frames * block
    return (b"RIFF" + (36 + data).to_bytes(4, "little") + b"WAVEfmt " + (16).to_bytes(4, "little")
            + (1).to_bytes(2, "little") + channels.to_bytes(2, "little") + sr.to_bytes(4, "little")
            + (sr * block).to_bytes(4, "little") + block.to_bytes(2, "little") + bits.to_bytes(2, "little")
            + b"data" + data.to_bytes(4, "little"))


def _sparse_wav(path: Path, seconds: float) -> None:
    """A valid 16 kHz mono 16-bit WAV of ``seconds`` of silence, written sparsely (no disk used)."""
    frames = int(seconds * SR)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as fh:
        fh.write(_wav_header(frames, SR))
        fh.truncate(44 + frames * 2)


def _with_rate(good: Path, path: Path, rate: int) -> None:
    """A copy of a PCM WAV whose header claims another sample rate (and byte rate)."""
    data = bytearray(good.read_bytes())
    block = int.from_bytes(data[32:34], "little")
    data[24:28] = rate.to_bytes(4, "little")
    data[28:32] = (rate * block).to_bytes(4, "little")
    path.write_bytes(bytes(data))


def _video_files(root: Path, scratch: Path, n_good: int) -> list[str]:
    """``n_good`` talking-face clips with audio (the synth), a face clip without an audio track and
    an MP4 whose video stream holds no frame; paths relative to ``root``."""
    import av

    from affectlab.data.synth import generate
    from affectlab.data.synth import talking_face as tf
    from affectlab.data.synth.video import write_mp4

    generate("talking-face", str(scratch / "tf"), subjects=n_good, items=1, seed=3, size=160,
             min_duration_s=0.5, max_duration_s=0.6)
    clips = sorted((scratch / "tf").rglob("*.mp4"))[:n_good]
    (root / "video").mkdir(parents=True, exist_ok=True)
    names = []
    for i, clip in enumerate(clips):
        name = f"video/clip {i + 1} – vidéo.mp4" if i == 0 else f"video/clip{i + 1}.mp4"  # a unicode name too
        shutil.copy(clip, root / name)
        names.append(name)
    face = tf.render_frames(np.zeros(12), np.zeros((12, 3)), 160, np.ones(3))
    write_mp4(str(root / "video" / "mute.mp4"), face, fps=25)
    container = av.open(str(root / "video" / "noframes.mp4"), "w", format="mp4")
    stream = container.add_stream("libx264", rate=25)
    stream.width, stream.height, stream.pix_fmt = 64, 64, "yuv420p"
    container.start_encoding()  # writes the header although no frame follows
    for packet in stream.encode(None):
        container.mux(packet)
    container.close()
    return names


def _audio_cases(root: Path, n_good: int) -> list[MediaCase]:
    """Write the audio files and return their cases (good ones interleaved with the bad)."""
    a = root / "audio"
    good = [a / f"good{i + 1}.wav" for i in range(n_good)]
    for i, path in enumerate(good):
        _write(path, _voice(1.2 + 0.2 * i, seed=i, f0=110 + 20 * i), SR, "PCM_16")
    voice = _voice(1.0, seed=9)
    pcm = good[0].read_bytes()
    bad: list[MediaCase] = []

    def case(cid: str, tried: str, files: list[str], expect: str, words: str = "", note: str = "") -> None:
        rows = tuple({"sample_id": cid if len(files) == 1 else f"{cid}-{k + 1}", "subject": "s9", "audio": f,
                      "video": ""} for k, f in enumerate(files))
        bad.append(MediaCase(cid, tried, rows, {"egemaps": expect}, words, note=note))

    (a / "zero.wav").write_bytes(b"")
    case("zero_bytes", "a 0-byte .wav", ["audio/zero.wav"], "quarantined", "empty file (0 bytes)")
    (a / "trunc_header.wav").write_bytes(pcm[:30])
    case("truncated_header", "the first 30 bytes of a WAV (header cut)", ["audio/trunc_header.wav"], "quarantined",
         "cannot decode")
    (a / "trunc_data.wav").write_bytes(pcm[: 44 + (len(pcm) - 44) // 2])
    case("truncated_data", "a WAV cut in the middle of its samples (header intact)", ["audio/trunc_data.wav"],
         "quarantined", "truncated WAV")
    (a / "junk.wav").write_bytes(np.random.default_rng(1).bytes(4000))
    case("not_audio", "4 kB of random bytes named .wav", ["audio/junk.wav"], "quarantined", "cannot decode")
    _write(a / "rate8k.wav", _voice(1.0, sr=8000, seed=2), 8000, "PCM_16")
    _write(a / "rate44k.wav", _voice(1.0, sr=44100, seed=3), 44100, "PCM_16")
    case("wrong_rate", "8 kHz and 44.1 kHz WAVs (not 16 kHz)", ["audio/rate8k.wav", "audio/rate44k.wav"], "converted",
         note="resampled to 16 kHz (sample_rate_hz keeps the original)")
    _with_rate(good[0], a / "rate3hz.wav", 3)
    _with_rate(good[0], a / "rate2ghz.wav", 2_000_000_000)
    case("implausible_rate", "WAV headers claiming 3 Hz and 2 GHz", ["audio/rate3hz.wav", "audio/rate2ghz.wav"],
         "quarantined", "outside the supported")
    _write(a / "pcm_u8.wav", voice, SR, "PCM_U8")
    case("pcm_8bit", "8-bit unsigned PCM", ["audio/pcm_u8.wav"], "converted", note="8-bit samples read as float")
    _write(a / "pcm_24.wav", voice, SR, "PCM_24")
    case("pcm_24bit", "24-bit PCM", ["audio/pcm_24.wav"], "converted", note="24-bit samples read as float")
    six = np.stack([_voice(1.0, sr=48000, seed=10 + c) for c in range(6)], axis=1)
    _write(a / "six_channels.wav", six, 48000, "PCM_16")
    case("multichannel", "6 channels at 48 kHz", ["audio/six_channels.wav"], "converted",
         note="6 channels averaged to mono, resampled")
    _sparse_wav(a / "two_hours.wav", HOURS_LONG_S)
    case("hours_long", "2 h of 16 kHz PCM (a sparse 230 MB WAV)", ["audio/two_hours.wav"], "quarantined",
         "longer than the 3600 s limit")
    _write(a / "ten_ms.wav", voice[:160], SR, "PCM_16")
    case("ten_ms", "a 10 ms clip", ["audio/ten_ms.wav"], "quarantined", "too short")
    _write(a / "silence.wav", np.zeros(2 * SR, np.float32), SR, "PCM_16")
    case("silence", "2 s of digital silence (the NaN-producing case)", ["audio/silence.wav"], "kept",
         note="openSMILE gives finite values for it (measured); a row with NaN would be refused")
    nan = voice.copy()
    nan[1000:1100] = np.nan
    _write(a / "nan.wav", nan, SR, "FLOAT")
    case("nan_samples", "a float WAV holding 100 NaN samples", ["audio/nan.wav"], "quarantined", "NaN or infinite")
    _write(a / "int_scaled.wav", voice * 32767, SR, "FLOAT")
    case("float_out_of_range", "a float WAV holding 16-bit-scaled samples (speech x 32767)", ["audio/int_scaled.wav"],
         "quarantined", "outside [-1, 1]")
    (a / "folder.wav").mkdir()
    case("directory", "a directory named folder.wav", ["audio/folder.wav"], "quarantined", "is a directory")
    case("missing_file", "a manifest row naming a file that does not exist", ["audio/nope.wav"], "quarantined",
         "not found")
    odd = root / "ünï cødé" / "ファイル 01, \"quoted\" (copy).wav"
    odd.parent.mkdir(parents=True)
    shutil.copy(good[-1], odd)
    unicode_case = MediaCase("unicode_names", "unicode, spaces, a comma and quotes in the directory and file names",
                             ({"sample_id": "ünï 01 ☺", "subject": "s9", "audio": str(odd.relative_to(root)), "video": ""},),
                             {"egemaps": "kept"}, good=True, note="written as is")
    (root / "links").mkdir()
    (root / "links" / "inside.wav").symlink_to(Path("..") / "audio" / good[0].name)
    link_case = MediaCase("symlink_inside", "a symbolic link to a file inside the root",
                          ({"sample_id": "symlink_inside", "subject": "s9", "audio": "links/inside.wav", "video": ""},),
                          {"egemaps": "kept"}, good=True, note="followed (stays inside the root)")
    goods = [MediaCase(f"good{i + 1}", "good 16 kHz speech WAV", ({"sample_id": f"good{i + 1}", "subject": f"s{i % 2 + 1}",
                                                                  "audio": f"audio/good{i + 1}.wav", "video": ""},),
                       {"egemaps": "kept"}, good=True) for i in range(n_good)]
    cases: list[MediaCase] = []
    for i, bad_case in enumerate(bad):  # interleaved: a good recording after every few bad ones
        if i % 3 == 0 and goods:
            cases.append(goods.pop(0))
        cases.append(bad_case)
    return [*cases, *goods, unicode_case, link_case]


def build_media_corpus(workdir: Path, *, n_good_audio: int = 4, n_good_video: int = 2, video: bool = True) -> MediaCorpus:
    """Write the corpus under ``workdir`` (see the module docstring); ``video=False`` leaves out the
    video rows (an audio-only run)."""
    root = workdir / "corpus"
    root.mkdir(parents=True)
    cases = _audio_cases(root, n_good_audio)
    if video:
        names = _video_files(root, workdir / "scratch", n_good_video)
        for i, name in enumerate(names):
            cases.insert(2 * i + 1, MediaCase(f"good_video{i + 1}", "good talking-face MP4 (H.264 + AAC)",
                                              ({"sample_id": f"good_video{i + 1}", "subject": f"s{i % 2 + 1}",
                                                "audio": name, "video": name},),
                                              {"egemaps": "converted", "landmarks": "kept"}, good=True,
                                              note="audio from the video's AAC track"))
        cases.append(MediaCase("video_without_audio", "an MP4 with a face but no audio track, audio requested",
                               ({"sample_id": "video_without_audio", "subject": "s9", "audio": "video/mute.mp4",
                                 "video": "video/mute.mp4"},),
                               {"egemaps": "quarantined", "landmarks": "kept"}, "no audio track",
                               note="landmarks written"))
        cases.append(MediaCase("video_no_frames", "an MP4 whose video stream holds no frame",
                               ({"sample_id": "video_no_frames", "subject": "s9", "audio": "", "video": "video/noframes.mp4"},),
                               {"landmarks": "quarantined"}, "no video stream"))
    _manifest(root / "manifest.csv", [row for c in cases for row in c.rows])
    card = workdir / "corpus.yaml"
    card.write_text("name: adversarial\nadapter: csv\nroot: corpus\n")
    outside = workdir / "outside" / "secret.wav"
    outside.parent.mkdir()
    _write(outside, _voice(1.0, seed=7), SR, "PCM_16")
    (root / "audio" / "escape.wav").symlink_to(outside)
    escape = MediaCase("symlink_escape", "a symbolic link in the root pointing to a file outside it",
                       ({"sample_id": "symlink_escape", "subject": "s9", "audio": "audio/escape.wav", "video": ""},),
                       {}, "escapes the dataset root")
    _manifest(root / "manifest-escape.csv", [row for c in cases for row in c.rows] + list(escape.rows))
    escape_card = workdir / "corpus-escape.yaml"
    escape_card.write_text("name: adversarial\nadapter: csv\nroot: corpus\noptions: {manifest: manifest-escape.csv}\n")
    return MediaCorpus(root, card, cases, escape_card, escape, video)


def _manifest(path: Path, rows: list[dict[str, str]]) -> None:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(MANIFEST_HEADER)
        writer.writerows([row.get(c, "") for c in MANIFEST_HEADER] for row in rows)


# ---------------------------------------------------------------------------------------------
# memory of the process tree


class RssSampler:
    """Samples the resident memory of this process and all its descendants (Linux ``/proc``)
    every ``interval`` seconds while running; ``peak_total`` / ``peak_process`` in bytes."""

    def __init__(self, interval: float = 0.2) -> None:
        self.interval = interval
        self.peak_total = 0
        self.peak_process = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._page = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _tree(self) -> list[int]:
        parent: dict[int, int] = {}
        for name in os.listdir("/proc"):
            if name.isdigit():
                try:
                    with open(f"/proc/{name}/stat") as fh:
                        parent[int(name)] = int(fh.read().rsplit(")", 1)[1].split()[1])
                except (OSError, IndexError, ValueError):
                    continue
        tree, todo = [], [os.getpid()]
        while todo:
            pid = todo.pop()
            tree.append(pid)
            todo += [child for child, ppid in parent.items() if ppid == pid]
        return tree

    def _rss(self, pid: int) -> int:
        try:
            with open(f"/proc/{pid}/statm") as fh:
                return int(fh.read().split()[1]) * self._page
        except (OSError, IndexError, ValueError):
            return 0

    def _run(self) -> None:
        if not os.path.isdir("/proc"):
            return
        while not self._stop.is_set():
            sizes = [self._rss(pid) for pid in self._tree()]
            self.peak_total = max(self.peak_total, sum(sizes))
            self.peak_process = max(self.peak_process, max(sizes, default=0))
            self._stop.wait(self.interval)


# ---------------------------------------------------------------------------------------------
# running and judging


@dataclass
class MediaRun:
    """What the verbs did on the corpus."""

    check: CliRun
    preprocess: CliRun
    escape_check: CliRun
    escape_preprocess: CliRun
    out: Path
    escape_out: Path
    seconds: float
    peak_total: int
    peak_process: int


def run_media(corpus: MediaCorpus, out: Path, *, num_cpus: int | None = 2) -> MediaRun:
    """``datasets check`` and ``preprocess`` on the corpus, and both on the card with the escaping
    link (which must be refused before any work)."""
    check = run_cli(["datasets", "check", str(corpus.card)])
    args = ["preprocess", str(corpus.card), "--out", str(out), "--audio", "egemaps", "--no-progress"]
    if corpus.video:
        args += ["--video", "landmarks"]
    if num_cpus:
        args += ["--num-cpus", str(num_cpus)]
    start = time.perf_counter()
    with RssSampler() as rss:
        pre = run_cli(args)
    seconds = time.perf_counter() - start
    escape_out = out.parent / (out.name + "-escape")
    escape_check = run_cli(["datasets", "check", str(corpus.escape_card)])
    escape_pre = run_cli(["preprocess", str(corpus.escape_card), "--out", str(escape_out), "--no-progress"])
    return MediaRun(check, pre, escape_check, escape_pre, out, escape_out, seconds, rss.peak_total, rss.peak_process)


def _published(out: Path, stage: str) -> dict[str, list[dict[str, Any]]]:
    """sample_id -> its published rows (a list, to see duplicates) of a stage's latest version."""
    from affectlab.errors import StorageError
    from affectlab.features import io

    columns = {"egemaps": ["sample_id", "features", "f0_hz", "sample_rate_hz", "channels", "duration_s"],
               "landmarks": ["sample_id", "landmarks", "n_frames"]}[stage]
    try:
        table = io.load_features(str(out), stage, columns=columns)
    except StorageError:
        return {}
    from affectlab.features.crops import column_cells

    rows: dict[str, list[dict[str, Any]]] = {}
    arrays = column_cells(table, columns[1], np.float32)
    for i, sid in enumerate(table.column("sample_id").to_pylist()):
        row = {c: table.column(c)[i].as_py() for c in columns[2:] if c not in ("landmarks", "f0_hz")}
        row["values"] = arrays[i]
        rows.setdefault(sid, []).append(row)
    return rows


def _errors(out: Path) -> dict[tuple[str, str], dict[str, Any]]:
    from affectlab.features import io

    return {(e["stage"], e["sample_id"]): e for e in io.load_errors(str(out)).to_pylist()}


def judge_row(sid: str, path: str, stage: str, expect: str, words: str, written: dict[str, list[dict[str, Any]]],
              errors: dict[tuple[str, str], dict[str, Any]]) -> tuple[str, str, str]:
    """``(outcome, message, problem)`` of one recording in one stage (problem empty when fine).

    ``written``: sample_id -> published rows of the stage; ``errors``: (stage, sample_id) -> error
    row. ``words`` (and the file's name) must appear in the message of a quarantined recording.
    """
    rows, err = written.get(sid, []), errors.get((stage, sid))
    if expect == "quarantined":
        if rows:
            return "SILENTLY ACCEPTED", "", f"{stage} wrote it"
        if err is None:
            return "LOST", "", f"{stage}: neither written nor in errors/"
        message = err["message"]
        name = os.path.basename(path)
        missing = [w for w in (words, name) if w and w not in message]
        return "quarantined", message, f"{stage} message lacks {missing}" if missing else ""
    if err is not None:
        return "LOST", err["message"], f"{stage} quarantined a good item"
    if len(rows) != 1:
        return "LOST", "", f"{stage}: {len(rows)} rows"
    if not np.isfinite(rows[0]["values"]).all():
        return "NaN WRITTEN", "", f"{stage}: non-finite values"
    return expect, _facts(stage, rows[0]), ""


def _facts(stage: str, row: dict[str, Any]) -> str:
    """What a written row records about its input (the conversion is in the data, not silent)."""
    if stage == "egemaps":
        return (f"written: {row['sample_rate_hz']} Hz, {row['channels']} ch, {row['duration_s']:.2f} s, "
                f"{len(row['values'])} frames, all finite")
    return f"written: {row['n_frames']} frames of landmarks"


def _good_kept(cases: list[MediaCase], written: dict[str, dict[str, list[dict[str, Any]]]],
               errors: dict[tuple[str, str], dict[str, Any]]) -> tuple[int, int]:
    kept = total = 0
    for c in cases:
        if not c.good:
            continue
        for row in c.rows:
            for stage, expect in c.expect.items():
                total += 1
                kept += judge_row(row["sample_id"], row.get("audio") or row.get("video", ""), stage, expect, "",
                                   written[stage], errors)[2] == ""
    return kept, total


def judge_media(corpus: MediaCorpus, run: MediaRun) -> list[CaseResult]:
    """One table row per case (module docstring), then the corpus-level checks."""
    written = {stage: _published(run.out, stage) for stage in STAGES}
    errors = _errors(run.out) if run.out.exists() else {}
    kept, total = _good_kept(corpus.cases, written, errors)
    good = f"good {kept}/{total}"
    results: list[CaseResult] = []
    crash = run.preprocess.crash or (run.check.crash or "")
    for c in corpus.cases:
        outcomes, messages, problems, own = [], [], [], 0
        for row in c.rows:
            for stage, expect in c.expect.items():
                path = row["video"] if stage == "landmarks" else row["audio"]
                outcome, message, problem = judge_row(row["sample_id"], path, stage, expect, c.words, written[stage], errors)
                outcomes.append(f"{stage}: {outcome}")
                own += outcome in ("kept", "converted")
                if message:
                    messages.append(message.replace(str(corpus.root) + "/", "") if expect == "quarantined"
                                    else message if len(c.rows) == 1 else f"{row['sample_id']}: {message}")
                if problem:
                    problems.append(problem)
        n = len(c.rows) * len(c.expect)
        kept_cell = f"{own}/{n} written" if any(e != "quarantined" for e in c.expect.values()) else good
        if any(e != "quarantined" for e in c.expect.values()) and any(e == "quarantined" for e in c.expect.values()):
            kept_cell = f"{own}/{len(c.rows)} written (video), {good}"
        outcome = "; ".join(dict.fromkeys(outcomes)) if len(c.expect) > 1 else outcomes[0].split(": ", 1)[1]
        message = " | ".join([*([c.note] if c.note else []), *dict.fromkeys(messages)])
        ok = not problems and not crash
        results.append(CaseResult("media", c.case, c.tried, outcome if not crash else "CRASH", message, kept_cell, ok,
                                  "; ".join(problems) or ("preprocess crashed" if crash else "")))
    results.append(_escape_result(corpus, run, good))
    results.append(_corpus_result(corpus, run, good, kept == total))
    return results


def _escape_result(corpus: MediaCorpus, run: MediaRun, good: str) -> CaseResult:
    c, check, pre = corpus.escape_case, run.escape_check, run.escape_preprocess
    problems = []
    if check.crash or pre.crash:
        problems.append("crash")
    if check.code != 2 or pre.code != 2:
        problems.append(f"datasets check exit {check.code}, preprocess exit {pre.code} (expected 2 and 2)")
    if c.words not in check.err or "row" not in check.err:
        problems.append("message does not name the row")
    if run.escape_out.exists():
        problems.append("preprocess wrote output")
    line = next((ln for ln in check.err.splitlines() if c.words in ln), check.err.strip())
    message = line.removeprefix("error: ").replace(str(corpus.root.parent) + "/", "")
    return CaseResult("media", c.case, c.tried + " (the card with that row)", "rejected" if not problems else "NOT REJECTED",
                      message, "card refused before any work: nothing written", not problems, "; ".join(problems))


def _corpus_result(corpus: MediaCorpus, run: MediaRun, good: str, all_good: bool) -> CaseResult:
    """The run as a whole: exit codes, the missing file reported by ``datasets check``, memory."""
    problems = []
    if run.preprocess.crash or run.check.crash:
        problems.append("crash: " + (run.preprocess.crash or run.check.crash or "").strip().splitlines()[-1])
    if run.preprocess.code != 0:
        problems.append(f"preprocess exit {run.preprocess.code}")
    if run.check.code != 1 or "nope.wav" not in run.check.err:
        problems.append(f"datasets check exit {run.check.code} (expected 1, naming audio/nope.wav)")
    if not all_good:
        problems.append("a good item was lost")
    summary = next((ln for ln in run.preprocess.out.splitlines() if ln.startswith("preprocess:")), "")
    n_rows = sum(len(c.rows) for c in corpus.cases)
    tried = (f"the whole corpus, {n_rows} recordings: `datasets check`, then `preprocess --audio egemaps"
             f"{' --video landmarks' if corpus.video else ''}` ({run.seconds:.0f} s; peak memory of all processes "
             f"{run.peak_total / 2**30:.2f} GiB, of one process {run.peak_process / 2**30:.2f} GiB)")
    message = f"datasets check exit {run.check.code} (1 missing file listed); " + " ".join(summary.split()[:7])
    return CaseResult("media", "corpus", tried, "handled" if not problems else "FAILED", message, good, not problems,
                      "; ".join(problems))


def media_counts(corpus: MediaCorpus) -> dict[str, int]:
    """Kinds of broken input (not the good items) and recordings in the corpus."""
    kinds = [c for c in corpus.cases if not c.case.startswith("good")] + [corpus.escape_case]
    return {"kinds": len(kinds), "recordings": sum(len(c.rows) for c in corpus.cases)}

