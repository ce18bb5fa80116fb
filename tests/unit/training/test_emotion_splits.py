"""Named card splits and leave-one-actor-out folds of ``data.task: emotion``, without Ray: the card's
``splits:``, their storage next to the features, resolution by name, fold construction, and the
errors a user sees for a bad split, an unknown name or too few actors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from affectlab.cli import cli
from affectlab.data.cards import load_card
from affectlab.data.synth.ravdess import seed_split
from affectlab.errors import ConfigError, DatasetError
from affectlab.features import io
from affectlab.training.config import ExperimentConfig
from affectlab.training.emotion_cv import emotion_folds
from affectlab.training.emotion_data import resolve_split

REPO = Path(__file__).resolve().parents[3]


def _card(tmp_path: Path, splits: object) -> str:
    path = tmp_path / "card.yaml"
    path.write_text(yaml.safe_dump({"name": "c", "adapter": "ravdess", "root": str(tmp_path), "splits": splits}))
    return str(path)


def _config(features: str, split: object) -> ExperimentConfig:
    return ExperimentConfig.model_validate({
        "data": {"features": features, "feature_set": "face", "task": "emotion", "emotion": {"split": split}},
        "model": {"name": "emotion_cnn"}, "training": {"monitor": "val_accuracy"}})


def test_the_repositorys_ravdess_card_names_the_seeds_split() -> None:
    split = load_card(str(REPO / "datasets" / "ravdess.yaml"), check_root=False).card.splits["seed001"]
    assert (len(split.train), split.val, split.test) == (18, ("actor_19", "actor_20"),
                                                         ("actor_21", "actor_22", "actor_23", "actor_24"))
    assert seed_split(24) == {"train": list(split.train), "val": list(split.val), "test": list(split.test)}


def test_the_synthetic_split_scales_the_seeds_proportions() -> None:
    assert seed_split(6) == {"train": [f"actor_0{i}" for i in range(1, 5)], "val": ["actor_05"], "test": ["actor_06"]}
    assert [len(seed_split(10)[p]) for p in ("train", "val", "test")] == [7, 1, 2]
    assert seed_split(2) is None


def test_a_card_split_sharing_an_actor_or_without_training_actors_is_named(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"splits\.bad.*'actor_02' is in both train and test"):
        load_card(_card(tmp_path, {"bad": {"train": ["actor_01", "actor_02"], "val": ["actor_03"],
                                           "test": ["actor_02"]}}))
    with pytest.raises(ConfigError, match=r"splits\.empty\.train"):
        load_card(_card(tmp_path, {"empty": {"train": [], "val": ["actor_03"]}}))


def test_a_named_split_resolves_from_the_stored_card_splits_and_an_unknown_name_lists_them(tmp_path: Path) -> None:
    card = load_card(_card(tmp_path, {"mine": {"train": ["actor_01", "actor_02"], "val": ["actor_03"],
                                               "test": ["actor_04"]}}))
    io.write_splits(str(tmp_path), card.card.splits)
    assert json.loads((tmp_path / "splits.json").read_text())["mine"]["test"] == ["actor_04"]
    config, name = resolve_split(_config(str(tmp_path), "mine"))
    split = config.data.emotion.split
    assert name == "mine" and (split.train, split.val, split.test) == (("actor_01", "actor_02"), ("actor_03",), ("actor_04",))
    unchanged, none = resolve_split(config)
    assert unchanged is config and none is None
    with pytest.raises(DatasetError, match=r"'seed001': no such split .* its splits: mine"):
        resolve_split(_config(str(tmp_path), "seed001"))
    with pytest.raises(DatasetError, match=r"its splits: none \(add `splits:` to the dataset card"):
        resolve_split(_config(str(tmp_path / "elsewhere"), "mine"))


def test_loso_folds_test_every_actor_once_and_never_validate_or_train_on_it() -> None:
    actors = [f"actor_0{i}" for i in range(1, 6)]
    folds = emotion_folds(actors, 2)
    assert [f.test for f, _ in folds] == [(a,) for a in actors]
    for fold, split in folds:
        assert len(split["val"]) == 2 and fold.test[0] not in split["val"] + split["train"]
        assert sorted(split["train"] + split["val"] + split["test"]) == actors
    assert folds[-1][1]["val"] == ["actor_01", "actor_02"]  # wraps around
    with pytest.raises(DatasetError, match=r"at least 4 actors .* found 3"):
        emotion_folds(actors[:3], 2)


def test_split_on_a_non_emotion_task_is_a_usage_error() -> None:
    result = CliRunner().invoke(cli, ["train", str(REPO / "search_spaces" / "au_003.yaml"), "--out", "/tmp/x",
                                       "--split", "seed001"])
    assert result.exit_code == 2 and "card splits apply to data.task: emotion" in result.output


def _functionals_store(out: Path) -> None:
    """A tiny ``egemaps_functionals`` set: actors 1-4, two recordings per emotion each; actor_02's
    features are offset by 100 (a speaker effect), the emotion shifts dimension 0."""
    import numpy as np
    import pyarrow as pa

    from affectlab import storage

    emotions = ["angry", "calm", "happy", "sad"]
    rows = []
    for a in range(1, 5):
        for k, emotion in enumerate(emotions * 2):
            x = np.full((1, 3), 100.0 if a == 2 else 0.0) + np.array([[k % 4, k, a]], dtype=float)
            rows.append({"sample_id": f"s{a}_{k}", "subject": f"actor_0{a}", "n_frames": 1,
                         "features": x.astype(np.float32).tolist(), "emotion": emotion})
    table = pa.Table.from_pylist(rows)
    storage.write_parquet(table.drop(["emotion"]), storage.join(
        io.set_dir(str(out), "features", "egemaps_functionals", "vtest"), "part-0.parquet"))
    io.write_clip_labels(str(out), table.select(["sample_id", "subject", "emotion"]))


@pytest.mark.parametrize("normalisation", ["per_speaker", "global"])
def test_speech_functionals_are_z_scored_per_speaker_only_when_asked(tmp_path: Path, normalisation: str) -> None:
    import numpy as np

    from affectlab.training.emotion_data import load_emotion_data

    _functionals_store(tmp_path)
    config = ExperimentConfig.model_validate({
        "data": {"features": str(tmp_path), "feature_set": "egemaps_functionals", "task": "emotion",
                 "normalisation": normalisation,
                 "emotion": {"modality": "speech", "classes": ["angry", "calm", "happy", "sad"], "drop": [],
                             "split": {"train": ["actor_01", "actor_02"], "val": ["actor_03"], "test": ["actor_04"]}}},
        "model": {"name": "speech_emotion_mlp"}, "training": {"monitor": "val_accuracy"}})
    data = load_emotion_data(config, in_process=True)
    part = data.datasets["train"].arrays
    means = {s: part["x"][np.char.startswith(part["sample_id"].astype(str), f"s{i}_")].mean(axis=0)
             for i, s in ((1, "actor_01"), (2, "actor_02"))}
    if normalisation == "per_speaker":  # every speaker centred on its own mean: the offset is gone
        assert np.allclose(means["actor_01"], 0, atol=1e-5) and np.allclose(means["actor_02"], 0, atol=1e-5)
    else:  # the speaker offset survives (the training part's z-score is applied later, in the task)
        assert means["actor_02"][0] - means["actor_01"][0] == pytest.approx(100.0)
    assert data.extra["feature_mean"] is not None
