"""The config half of the adversarial benchmark: mutated dataset cards, manifests, experiment and
sweep files, each derived programmatically from a valid file and run through the real checks.

Valid files (the negative controls, which must pass): the experiment / sweep files in
``search_spaces/``, the example cards in ``datasets/`` and a small generated ``csv`` corpus with
its card (``toy``). Mutations:

- **experiments** (``au_003.yaml``, the emotion / VAE / GAN sections of theirs): every scalar leaf of
  ``base`` gets a value of the wrong type, and, where its field has bounds, a value just beyond each
  bound; literal fields get an unknown choice, floats ``.nan`` / ``.inf``; every section gets an
  unknown key (a misspelling of its first key);
- **sweeps**: unknown keys and distributions, empty or inverted ranges, values the base would
  reject, bad ``tune`` settings; ``--set`` overrides that are malformed;
- **cards**: unknown keys (top level and adapter options), wrong types and out-of-range values,
  adapter options that leave the root (``../../etc``, absolute paths), a root elsewhere;
- **manifests** (``toy``): paths that escape the root (``..``, absolute, a symbolic link pointing
  outside, a URI), missing or repeated ids, non-numeric and non-finite numbers, misspelt or missing
  columns, a file that is not CSV, an empty one, NUL bytes and overlong paths;
- **YAML itself**: a key given twice, invalid YAML, a list at the top, binary bytes, a "billion
  laughs" alias bomb, a self-referencing alias, nesting 3000 deep.

Each case runs ``affectlab config check`` and, for a card with a real root, ``affectlab datasets
check``; a rejected card also goes to ``affectlab preprocess``, which must refuse it before writing
anything. Handled means: no crash, a non-zero exit, and a message naming the file and the key (or
row and column) at fault. ``nothing lost``: the valid files are unchanged afterwards.
"""

from __future__ import annotations

import copy
import csv
import hashlib
import typing
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from adversarial_common import CaseResult, CliRun, run_cli, short

__all__ = ["ConfigCase", "config_cases", "names_key", "run_config_case", "run_config_cases"]

REPO = Path(__file__).resolve().parents[1]
CONTROL_EXPERIMENTS = ("au_003.yaml", "emotion.yaml", "f0_to_au.yaml", "vae_lma.yaml", "gan_au.yaml")
CONTROL_CARDS = ("ravdess.yaml", "lrs3.yaml", "affwild2.yaml", "lma.yaml")
# sections of other experiment files walked like au_003's base (their own settings)
EXTRA_SECTIONS = {"emotion.yaml": ("data.emotion", "training.lr_plateau"), "vae_lma.yaml": ("data.vae",),
                  "gan_au.yaml": ("data.gan",)}
TOY_HEADER = ["sample_id", "subject", "audio", "video", "labels", "emotion", "valence"]


@dataclass(frozen=True)
class ConfigCase:
    """One file (or override) to check.

    Attributes:
        case: Short id.
        kind: ``control``, ``experiment``, ``sweep``, ``card``, ``manifest``, ``yaml`` or ``override``.
        tried: What was changed, in words.
        path: The file given to the verbs.
        named: The file the message must name (the manifest for manifest cases).
        key: The dotted key (or ``row N`` / column) the message must name; None: ``needles`` only.
        needles: Further strings the message must contain.
        args: Extra arguments (``--set ...``).
        dataset: A card with a real root: also ``datasets check`` (and ``preprocess`` if rejected).
        valid: A negative control: it must pass.
        preprocess: With ``dataset``: ``preprocess`` must refuse the card too (False where only
            ``datasets check`` judges it, e.g. a split naming a subject without recordings: a
            corpus subset may be preprocessed; the training that names the split checks it).
    """

    case: str
    kind: str
    tried: str
    path: Path
    named: str
    key: str | None = None
    needles: tuple[str, ...] = ()
    args: tuple[str, ...] = ()
    dataset: bool = False
    valid: bool = False
    preprocess: bool = True


# ---------------------------------------------------------------------------------------------
# writing files


def _dump(path: Path, data: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True))
    return path


def _load(path: Path) -> dict[str, Any]:
    from affectlab.config import load_yaml

    return load_yaml(str(path))


def _set(data: dict[str, Any], dotted: str, value: Any) -> dict[str, Any]:
    """A deep copy of ``data`` with ``dotted`` set to ``value`` (mappings created as needed)."""
    out = copy.deepcopy(data)
    node = out
    *parents, leaf = dotted.split(".")
    for part in parents:
        node = node.setdefault(part, {})
    node[leaf] = value
    return out


def _wav(path: Path, seconds: float = 0.5, seed: int = 0) -> None:
    import soundfile as sf

    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(seconds * 16000)) / 16000
    x = 0.2 * np.sin(2 * np.pi * 150 * t) + 0.01 * np.random.default_rng(seed).standard_normal(len(t))
    sf.write(path, x.astype(np.float32), 16000, subtype="PCM_16")


def toy_corpus(workdir: Path) -> dict[str, Path]:
    """A small valid ``csv`` corpus and card (``root``, ``card``, ``rows``) plus a file outside
    the root and a symbolic link inside it that points there (``outside``)."""
    root = workdir / "toy"
    rows = []
    for i, sid in enumerate(("a", "b", "c")):
        _wav(root / "audio" / f"{sid}.wav", seed=i)
        labels = root / "labels" / f"{sid}.csv"
        labels.parent.mkdir(parents=True, exist_ok=True)
        labels.write_text("frame,AU01,AU12\n" + "".join(f"{f},0.5,1.0\n" for f in range(12)))
        rows.append({"sample_id": sid, "subject": f"s{i % 2 + 1}", "audio": f"audio/{sid}.wav", "video": "",
                     "labels": f"labels/{sid}.csv", "emotion": "happy", "valence": "0.5"})
    _write_manifest(root / "manifest.csv", rows)
    outside = workdir / "outside" / "secret.wav"
    _wav(outside)
    (root / "audio" / "escape.wav").symlink_to(outside)
    card = _dump(workdir / "toy.yaml", {"name": "toy", "adapter": "csv", "root": "toy",
                                        "options": {"manifest": "manifest.csv"}, "frame_labels": {"rate_hz": 25},
                                        "splits": {"main": {"train": ["s1"], "val": ["s2"]}}})
    return {"root": root, "card": card, "outside": outside}


def _write_manifest(path: Path, rows: list[dict[str, str]], header: list[str] | None = None) -> None:
    header = header or TOY_HEADER
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(header)
        writer.writerows([row.get(c, "") for c in header] for row in rows)


# ---------------------------------------------------------------------------------------------
# experiments: a walk over the leaves of `base`


def _field(model: type, path: list[str]) -> Any:
    """The pydantic field at ``path`` below ``model`` (None inside free-form mappings)."""
    from affectlab.config import model_in_annotation

    cls, field = model, None
    for part in path:
        if cls is None:
            return None
        field = cls.model_fields.get(part)
        if field is None:
            return None
        cls = model_in_annotation(field.annotation)
    return field


def _bound_violations(field: Any) -> list[tuple[str, Any]]:
    """Values just beyond each bound of a numeric field: ``[(description, value)]``."""
    import annotated_types as at

    out = []
    for m in getattr(field, "metadata", ()):
        if isinstance(m, at.Gt):
            out.append((f"{m.gt} (must be > {m.gt})", m.gt))
        elif isinstance(m, at.Ge):
            out.append((f"{m.ge - 1} (must be >= {m.ge})", m.ge - 1))
        elif isinstance(m, at.Lt):
            out.append((f"{m.lt} (must be < {m.lt})", m.lt))
        elif isinstance(m, at.Le):
            out.append((f"{m.le + 1} (must be <= {m.le})", m.le + 1))
    return out


def _is_literal(field: Any) -> bool:
    annotation = getattr(field, "annotation", None)
    return typing.get_origin(annotation) is typing.Literal or any(
        typing.get_origin(a) is typing.Literal for a in typing.get_args(annotation))


def _leaf_mutations(value: Any, field: Any) -> Iterator[tuple[str, Any]]:
    """``(what, new value)`` for one scalar leaf (see the module docstring)."""
    if isinstance(value, bool):
        yield "'maybe' (wrong type: a bool)", "maybe"
    elif isinstance(value, (int, float)):
        yield "'not-a-number' (wrong type)", "not-a-number"
        for what, bad in _bound_violations(field) if field is not None else [("-1 (out of range)", -1)]:
            yield what, bad
        if isinstance(value, float) and field is not None:
            yield ".nan (not finite)", float("nan")
    elif isinstance(value, str):
        if _is_literal(field):
            yield "'bogus' (not one of the choices)", "bogus"
        else:
            yield "[1, 2] (wrong type: a list)", [1, 2]


def _walk(node: Any, prefix: list[str]) -> Iterator[tuple[list[str], Any]]:
    if isinstance(node, dict):
        for key, value in node.items():
            yield from _walk(value, [*prefix, str(key)])
    elif not isinstance(node, list):
        yield prefix, node


def _sections(node: Any, prefix: list[str]) -> Iterator[tuple[list[str], dict[str, Any]]]:
    if isinstance(node, dict) and node:
        yield prefix, node
        for key, value in node.items():
            if key not in ("kwargs", "xgb"):  # free-form mappings: their keys go to a builder
                yield from _sections(value, [*prefix, str(key)])


def experiment_cases(workdir: Path, name: str, under: tuple[str, ...] = ("",)) -> list[ConfigCase]:
    """Mutations of the ``base`` of ``search_spaces/<name>`` below the dotted prefixes ``under``."""
    from affectlab.training.config import ExperimentConfig

    source = REPO / "search_spaces" / name
    data = _load(source)
    stem = Path(name).stem
    cases: list[ConfigCase] = []

    def add(dotted: str, what: str, mutated: dict[str, Any], key: str) -> None:
        case = f"{stem}:{dotted.removeprefix('base.')}:{len(cases)}"
        path = _dump(workdir / "experiments" / f"{stem}-{len(cases):03d}.yaml", mutated)
        cases.append(ConfigCase(case, "experiment", f"{name} `{dotted}: {what}`", path, path.name, key=key))

    for prefix in under:
        start = prefix.split(".") if prefix else []
        node = data["base"]
        for part in start:
            node = node[part]
        for path, value in _walk(node, start):
            dotted = "base." + ".".join(path)
            field = _field(ExperimentConfig, path)
            for what, bad in _leaf_mutations(value, field):
                add(dotted, what, _set(data, dotted, bad), dotted)
        for path, section in _sections(node, start):
            first = next(iter(section))
            typo = first[:-1] + first[-1] * 2 if len(first) > 1 else first + "x"
            dotted = ".".join(["base", *path, typo])
            add(dotted, "1 (unknown key: a misspelling)", _set(data, dotted, 1), dotted)
    if under == ("",):
        add("bsae", "unknown top-level key (misspelt `base`)", {**data, "bsae": data["base"]}, "bsae")
        add("base.training", "[1, 2] (a list instead of a mapping)", _set(data, "base.training", [1, 2]), "base.training")
        add("base.tracking.mlflow_uri", "'http://user:secret@mlflow:5000' (a password in a config)",
            _set(data, "base.tracking.mlflow_uri", "http://user:secret@mlflow:5000"), "base.tracking.mlflow_uri")
        add("base.model.kwargs.bogus", "1 (an unknown model keyword)", _set(data, "base.model.kwargs.bogus", 1),
            "bogus")
    return cases


# ---------------------------------------------------------------------------------------------
# sweeps, overrides and YAML


def sweep_cases(workdir: Path) -> list[ConfigCase]:
    """Mutations of ``space`` / ``tune`` in ``au_003.yaml`` and ``vae_lma.yaml`` (a grid)."""
    au = _load(REPO / "search_spaces" / "au_003.yaml")
    vae = _load(REPO / "search_spaces" / "vae_lma.yaml")
    changes: list[tuple[str, dict[str, Any], str, str]] = [
        ("space `training.lrr` (a key that is not in base)", _set(au, "space", {**au["space"], "training.lrr": {"choice": [1, 2]}}), "training.lrr", "au_003"),
        ("space `training.lr: {normal: [0, 1]}` (unknown distribution)", _set(au, "space", {**au["space"], "training.lr": {"normal": [0, 1]}}), "training.lr", "au_003"),
        ("space `training.lr: {loguniform: [0.01, 0.001]}` (low above high)", _set(au, "space", {**au["space"], "training.lr": {"loguniform": [0.01, 0.001]}}), "training.lr", "au_003"),
        ("space `training.lr: {loguniform: [0, 0.01]}` (log of 0)", _set(au, "space", {**au["space"], "training.lr": {"loguniform": [0, 0.01]}}), "training.lr", "au_003"),
        ("space `training.lr: {uniform: [0.5, 2.0]}` (base rejects lr > 1)", _set(au, "space", {**au["space"], "training.lr": {"uniform": [0.5, 2.0]}}), "training.lr", "au_003"),
        ("space `model.name: {choice: []}` (empty choice)", _set(au, "space", {**au["space"], "model.name": {"choice": []}}), "model.name", "au_003"),
        ("space `model.name: {choice: [transformer]}` (a model that does not exist)", _set(au, "space", {**au["space"], "model.name": {"choice": ["transformer"]}}), "model.name", "au_003"),
        ("space `training.lr: {loguniform: [0.001, .inf]}` (infinite bound)", _set(au, "space", {**au["space"], "training.lr": {"loguniform": [0.001, float("inf")]}}), "training.lr", "au_003"),
        ("space: a list instead of a mapping", _set(au, "space", ["training.lr"]), "space", "au_003"),
        ("tune `mode: maximize` (not max / min)", _set(au, "tune.mode", "maximize"), "tune.mode", "au_003"),
        ("tune `num_samples: 0`", _set(au, "tune.num_samples", 0), "tune.num_samples", "au_003"),
        ("tune `num_sample: 8` (misspelt key)", _set(au, "tune.num_sample", 8), "tune.num_sample", "au_003"),
        ("tune `asha.reduction_factor: 1`", _set(au, "tune.asha.reduction_factor", 1), "tune.asha.reduction_factor", "au_003"),
        ("tune `search: random` (not tpe / grid)", _set(au, "tune.search", "random"), "tune.search", "au_003"),
        ("tune `search: grid` with loguniform / step-less entries", _set(au, "tune.search", "grid"), "training.lr", "au_003"),
        ("grid `num_samples: 3` (the grid has 8 points)", _set(vae, "tune.num_samples", 3), "num_samples", "vae_lma"),
        ("grid `model.kwargs.latent_dim: {grid: [1, 1]}` (repeated point)", _set(vae, "space", {"model.kwargs.latent_dim": {"grid": [1, 1]}}), "model.kwargs.latent_dim", "vae_lma"),
        ("grid `model.kwargs.latent_dim: {grid: [0, 1]}` (latent size 0)", _set(vae, "space", {"model.kwargs.latent_dim": {"grid": [0, 1]}}), "latent_dim", "vae_lma"),
    ]
    cases = []
    for i, (tried, data, key, stem) in enumerate(changes):
        path = _dump(workdir / "sweeps" / f"{stem}-{i:02d}.yaml", data)
        cases.append(ConfigCase(f"sweep:{key}:{i}", "sweep", f"{stem}.yaml {tried}", path, path.name, key=key))
    return cases


def override_cases() -> list[ConfigCase]:
    """Malformed and bad ``--set`` overrides on a valid file."""
    path = REPO / "search_spaces" / "au_003.yaml"
    sets = [("training.lr=fast", "training.lr", "`--set training.lr=fast` (wrong type)"),
            ("training.lr", "training.lr", "`--set training.lr` (no `=`)"),
            ("training..lr=0.1", "training..lr", "`--set training..lr=0.1` (empty key part)"),
            ("training.lr=[0.1", "training.lr", "`--set training.lr=[0.1` (broken YAML: kept as text)")]
    return [ConfigCase(f"override:{i}", "override", f"au_003.yaml {tried}", path, "--set", key=key,
                       args=("--set", item)) for i, (item, key, tried) in enumerate(sets)]


def yaml_cases(workdir: Path) -> list[ConfigCase]:
    """Files that are not (safe) YAML mappings."""
    text = (REPO / "search_spaces" / "au_003.yaml").read_text()
    bomb = "a: &a [x, x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{chr(98 + i)}: &{chr(98 + i)} [" + ", ".join(["*" + chr(97 + i)] * 10) + "]\n" for i in range(8))
    files: list[tuple[str, str | bytes, tuple[str, ...]]] = [
        ("`lr` given twice in `base.training` (YAML keeps the last silently)",
         text.replace("    lr: 3.0e-3", "    lr: 3.0e-3\n    lr: 3.0e-4"), ("duplicate key 'lr'", "line")),
        ("invalid YAML (a tab indents a key)", text.replace("  name: au_003", "\tname: au_003"), ("not valid YAML", "line 5")),
        ("a list at the top level", "- base\n- space\n", ("top level must be a mapping",)),
        ("binary bytes, not text", b"\x00\xff\xfe\x89PNG garbage", ("not UTF-8",)),
        ("a 'billion laughs' alias bomb (10^9 values)", bomb + text, ("expands to more than",)),
        ("an alias that contains itself", text.replace("  name: au_003", "  name: &r [*r]"), ("refers to itself",)),
        ("3000 nested lists", text + "\nextra: " + "[" * 3000 + "]" * 3000 + "\n", ("nested too deeply",)),
        ("an empty file", "", ("cannot tell what kind of config",)),
    ]
    cases = []
    for i, (tried, content, needles) in enumerate(files):
        path = workdir / "yaml" / f"file-{i:02d}.yaml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
        cases.append(ConfigCase(f"yaml:{i}", "yaml", tried, path, path.name, needles=needles))
    return cases


# ---------------------------------------------------------------------------------------------
# cards and manifests


def card_cases(workdir: Path, toy: dict[str, Path]) -> list[ConfigCase]:
    """Mutations of the toy card (with a real root) and of the example cards in ``datasets/``."""
    base = _load(toy["card"])
    up = "/".join([".."] * 12)
    toy_changes: list[tuple[str, dict[str, Any], str | None, tuple[str, ...]]] = [
        ("`nmae: toy` (misspelt top-level key)", {**base, "nmae": "toy"}, "nmae", ("did you mean",)),
        ("`options.manfest` (misspelt option)", _set(base, "options.manfest", "manifest.csv"), "options.manfest", ()),
        ("`frame_labels.rate: 25` (unknown key)", _set(base, "frame_labels.rate", 25), "frame_labels.rate", ()),
        ("`adapter: cvs` (unknown adapter)", {**base, "adapter": "cvs"}, "adapter", ("Did you mean 'csv'",)),
        ("`name: [toy]` (wrong type)", {**base, "name": ["toy"]}, "name", ()),
        ("`name: ../../evil name` (path characters)", {**base, "name": "../../evil name"}, "name", ()),
        ("`root: {path: toy}` (wrong type)", {**base, "root": {"path": "toy"}}, "root", ()),
        ("`root: ''` (empty)", {**base, "root": ""}, "root", ()),
        ("`options: manifest.csv` (a string, not a mapping)", {**base, "options": "manifest.csv"}, "options", ()),
        ("`frame_labels.rate_hz: 0`", _set(base, "frame_labels.rate_hz", 0), "frame_labels.rate_hz", ()),
        ("`frame_labels.rate_hz: 1e9`", _set(base, "frame_labels.rate_hz", 1e9), "frame_labels.rate_hz", ()),
        ("`frame_labels.rate_hz: fast` (wrong type)", _set(base, "frame_labels.rate_hz", "fast"), "frame_labels.rate_hz", ()),
        ("`frame_labels.rate_hz: .nan`", _set(base, "frame_labels.rate_hz", float("nan")), "frame_labels.rate_hz", ()),
        ("`splits.main.train: []` (empty part)", _set(base, "splits.main.train", []), "splits.main.train", ()),
        ("`splits.main.val: [s1]` (a subject in train and val)", _set(base, "splits.main.val", ["s1"]), "splits.main", ("s1",)),
        ("`splits.main.test: [s9]` (a subject without recordings)", _set(base, "splits.main.test", ["s9"]), "splits.main.test", ("s9",)),
        ("`options.manifest: ../../etc/passwd` (leaves the root)", _set(base, "options.manifest", "../../etc/passwd"), "options.manifest", ("leaves the dataset root",)),
        ("`options.manifest: /etc/passwd` (absolute, outside the root)", _set(base, "options.manifest", "/etc/passwd"), "options.manifest", ("absolute",)),
        ("`options.manifest: audio/../../../etc/hosts` (`..` inside)", _set(base, "options.manifest", "audio/../../../etc/hosts"), "options.manifest", ()),
        (f"`root: {up}/etc` (a root elsewhere: no corpus there)", {**base, "root": f"{up}/etc"}, "options.manifest", ("not found",)),
        ("`root: /nonexistent/corpus`", {**base, "root": "/nonexistent/corpus"}, "root", ("does not exist",)),
    ]
    cases = []
    for i, (tried, data, key, needles) in enumerate(toy_changes):
        path = _dump(workdir / f"card-{i:02d}.yaml", data)  # next to toy/: relative roots resolve alike
        cases.append(ConfigCase(f"card:toy:{i}", "card", f"toy card {tried}", path, path.name, key=key,
                                needles=needles, dataset=True, preprocess="without recordings" not in tried))
    shipped: list[tuple[str, str, Any, str]] = [
        ("ravdess.yaml", "options.glob", 5, "5 (wrong type)"),
        ("ravdess.yaml", "options.globb", ["**/*.wav"], "(misspelt option)"),
        ("lrs3.yaml", "options.splits", ["../../etc"], "[../../etc] (leaves the root)"),
        ("lrs3.yaml", "options.splits", "trainval", "'trainval' (a string, not a list)"),
        ("affwild2.yaml", "options.video_dir", "/etc", "/etc (absolute, outside the root)"),
        ("affwild2.yaml", "options.annotation_dir", "../../../home", "../../../home (leaves the root)"),
        ("affwild2.yaml", "options.fps", -30, "-30 (out of range)"),
        ("affwild2.yaml", "options.allow_missing_video", "maybe", "maybe (wrong type)"),
        ("lma.yaml", "options.file", "../../../etc/passwd", "../../../etc/passwd (leaves the root)"),
        ("lma.yaml", "options.features", [], "[] (no feature columns)"),
    ]
    for i, (name, dotted, value, what) in enumerate(shipped):
        data = _set(_load(REPO / "datasets" / name), dotted, value)
        path = _dump(workdir / "cards" / f"{Path(name).stem}-{i:02d}.yaml", data)
        cases.append(ConfigCase(f"card:{Path(name).stem}:{i}", "card", f"{name} `{dotted}: {what}`", path,
                                path.name, key=dotted))
    return cases


def manifest_cases(workdir: Path, toy: dict[str, Path]) -> list[ConfigCase]:
    """Mutations of the toy manifest, each in its own manifest file named by a card of its own."""
    base = _load(toy["card"])
    rows = list(csv.DictReader(open(toy["root"] / "manifest.csv", encoding="utf-8")))
    extra = {"sample_id": "evil", "subject": "s1", "audio": "audio/a.wav", "video": "", "labels": "",
             "emotion": "", "valence": ""}

    def row(**fields: str) -> list[dict[str, str]]:
        return [*rows, {**extra, **fields}]

    outside = str(toy["outside"])
    changes: list[tuple[str, list[dict[str, str]] | bytes, list[str] | None, str | None, tuple[str, ...]]] = [
        ("`audio: ../../x.wav` (escapes the root)", row(audio="../../x.wav"), None, "'audio'", ("row 5", "escapes")),
        (f"`audio: {outside}` (absolute, outside the root)", row(audio=outside), None, "'audio'", ("row 5", "escapes")),
        ("`audio: audio/escape.wav`, a symbolic link to a file outside the root", row(audio="audio/escape.wav"), None, "'audio'", ("row 5", "escapes")),
        ("`video: audio/../../outside/secret.wav` (`..` inside)", row(video="audio/../../outside/secret.wav"), None, "'video'", ("row 5", "escapes")),
        ("`labels: ../../../etc/passwd` (escapes the root)", row(labels="../../../etc/passwd"), None, "'labels'", ("row 5", "escapes")),
        ("`audio: s3://other-bucket/x.wav` (a URI under a local root)", row(audio="s3://other-bucket/x.wav"), None, "'audio'", ("row 5", "URI")),
        ("`audio:` with a NUL byte", row(audio="audio/a\x00.wav"), None, "'audio'", ("row 5", "NUL")),
        ("`audio:` a 5000-character path", row(audio="a/" * 2500 + "x.wav"), None, "'audio'", ("row 5", "longer than")),
        ("empty `sample_id`", row(sample_id=""), None, "sample_id", ("row 5",)),
        ("`sample_id: a` twice", row(sample_id="a"), None, "'a'", ("row 2", "row 5", "duplicate")),
        ("empty `subject`", row(subject=""), None, "subject", ("row 5",)),
        ("`valence: high` (not a number)", row(valence="high"), None, "'valence'", ("row 5",)),
        ("`valence: nan` (not finite)", row(valence="nan"), None, "'valence'", ("row 5", "finite")),
        ("`valence: inf` (not finite)", row(valence="inf"), None, "'valence'", ("row 5", "finite")),
        ("column `emotoin` (misspelt: its labels would be dropped)", rows, [*TOY_HEADER[:5], "emotoin", "valence"], "'emotoin'", ("did you mean 'emotion'",)),
        ("column `video` missing", rows, [c for c in TOY_HEADER if c != "video"], "'video'", ("missing column",)),
        ("labels named, but the card has no `frame_labels`", rows, None, "frame_labels", ()),
        ("not CSV: 3 kB of random bytes", np.random.default_rng(0).bytes(3000), None, None, ("not a readable",)),
        ("an empty manifest (0 bytes)", b"", None, None, ("empty manifest",)),
        ("a header and no rows", [], None, None, ("lists no recording",)),
    ]
    cases = []
    for i, (tried, content, header, key, needles) in enumerate(changes):
        name = f"manifest-{i:02d}.csv"
        if isinstance(content, bytes):
            (toy["root"] / name).write_bytes(content)
        else:
            _write_manifest(toy["root"] / name, content, header)
        card = _set(base, "options.manifest", name)
        if tried.startswith("labels named"):
            card.pop("frame_labels")
        path = _dump(workdir / f"manifest-card-{i:02d}.yaml", card)
        named = path.name if content == [] else name  # no row to name: the card is named
        cases.append(ConfigCase(f"manifest:{i}", "manifest", f"toy manifest {tried}", path, named, key=key,
                                needles=needles, dataset=True))
    return cases


def control_cases(toy: dict[str, Path]) -> list[ConfigCase]:
    """The valid files: each must pass (negative controls)."""
    cases = [ConfigCase(f"control:{n}", "control", f"valid `search_spaces/{n}`", REPO / "search_spaces" / n, n, valid=True)
             for n in CONTROL_EXPERIMENTS]
    cases += [ConfigCase(f"control:{n}", "control", f"valid `datasets/{n}`", REPO / "datasets" / n, n, valid=True)
              for n in CONTROL_CARDS]
    cases.append(ConfigCase("control:toy", "control", "valid toy card and manifest (config + datasets check)",
                            toy["card"], toy["card"].name, valid=True, dataset=True))
    return cases


def config_cases(workdir: Path) -> list[ConfigCase]:
    """Every case: controls first, then the mutations (module docstring)."""
    workdir.mkdir(parents=True, exist_ok=True)
    toy = toy_corpus(workdir)
    cases = control_cases(toy)
    cases += experiment_cases(workdir, "au_003.yaml")
    for name, sections in EXTRA_SECTIONS.items():
        cases += experiment_cases(workdir, name, sections)
    cases += sweep_cases(workdir) + override_cases() + yaml_cases(workdir)
    cases += card_cases(workdir, toy) + manifest_cases(workdir, toy)
    return cases


# ---------------------------------------------------------------------------------------------
# running and judging


def names_key(text: str, dotted: str) -> bool:
    """Whether ``text`` names the key ``dotted``: the key or a dotted tail of it (``training.lr``
    for ``base.training.lr``), or one of its sections together with its last part (messages of
    whole-section checks: ``base.model: ... hidden=...``)."""
    parts = dotted.split(".")
    if len(parts) == 1:
        return dotted in text
    if any(".".join(parts[i:]) in text for i in range(len(parts) - 1)):
        return True
    return parts[-1] in text and any(".".join(parts[:i]) in text for i in range(1, len(parts)))


def _message(run: CliRun, case: ConfigCase, workdir: Path) -> str:
    """The line of the error that names the key (or the first expected words; else the first
    lines), without ``error:`` and the work directory."""
    lines = [line.strip().removeprefix("error: ").removeprefix("- ") for line in run.err.splitlines() if line.strip()]
    needle = case.key.split(".")[-1] if case.key else (case.needles[0] if case.needles else None)
    chosen = next((line for line in lines if needle and needle in line), None)
    text = chosen or " ".join(lines[:2]) or run.out.strip()
    return text.replace(f"{workdir}/", "").replace(f"{REPO}/", "")


def run_config_case(case: ConfigCase, workdir: Path) -> CaseResult:
    """Run one case through the verbs and judge it (see the module docstring); ``preprocess``
    writes (if it wrongly does) under ``workdir/scratch``."""
    runs = [run_cli(["config", "check", str(case.path), *case.args])]
    if case.dataset and runs[-1].code == 0 and runs[-1].crash is None:
        runs.append(run_cli(["datasets", "check", str(case.path), *case.args]))
    last = runs[-1]
    verb = " ".join(last.args[:2])

    def result(outcome: str, ok: bool, problem: str = "", kept: str = "—", message: str | None = None) -> CaseResult:
        shown = message if message is not None else _message(last, case, workdir)
        return CaseResult("config", case.case, case.tried, outcome, shown.replace(f"{workdir}/", ""), kept, ok, problem)

    crashed = next((r for r in runs if r.crash), None)
    if crashed is not None:
        return result("CRASH", False, f"{' '.join(crashed.args[:2])} raised", message=crashed.crash.strip().splitlines()[-1])
    if case.valid:
        return result("accepted", last.code == 0, "" if last.code == 0 else f"{verb} exit {last.code}",
                      message=short((last.out.strip().splitlines() or [last.err])[0]).replace(f"{REPO}/", ""),
                      kept="valid file passes")
    if last.code == 0:
        return result("SILENTLY ACCEPTED", False, f"{verb} exit 0", message=short(last.out))
    text = last.text
    missing = [n for n in ((case.named,) if case.named != "--set" else ()) + case.needles if n not in text]
    if case.key and not names_key(text, case.key):
        missing.append(f"key {case.key}")
    if missing:
        return result("rejected", False, f"message lacks {missing}")
    kept = "—"
    if case.dataset and not case.preprocess:
        kept = "datasets check only (training checks the split)"
    elif case.dataset:  # the real job must refuse it too, before writing anything
        out = workdir / "scratch" / f"out-{case.case.replace(':', '-')}"
        pre = run_cli(["preprocess", str(case.path), "--out", str(out), "--audio", "egemaps", "--no-progress", *case.args])
        if pre.crash or pre.code != 2 or out.exists():
            return result("rejected", False, f"preprocess exit {pre.code}, out {'written' if out.exists() else 'absent'}")
        kept = "preprocess refused: nothing written"
    return result("rejected", True, kept=kept, message=f"{verb}: {_message(last, case, workdir)}")


def _digest(paths: list[Path]) -> str:
    h = hashlib.sha256()
    for p in sorted(paths):
        h.update(p.read_bytes())
    return h.hexdigest()


def run_config_cases(workdir: Path, cases: list[ConfigCase] | None = None) -> list[CaseResult]:
    """Generate (unless given) and run every case; a last row checks that no valid file changed."""
    shipped = sorted((REPO / "search_spaces").glob("*.yaml")) + sorted((REPO / "datasets").glob("*.yaml"))
    before = _digest(shipped)
    cases = cases if cases is not None else config_cases(workdir)
    results = [run_config_case(case, workdir) for case in cases]
    same = _digest(shipped) == before
    results.append(CaseResult("config", "nothing lost", "the valid search_spaces/ and datasets/ files after every run",
                              "accepted" if same else "CHANGED", f"{len(shipped)} files byte-identical" if same else
                              "a valid file changed", "all kept" if same else "lost", same, "" if same else "changed"))
    return results
