"""``data.task: emotion`` without Ray: labels and split, frame selection, augmentation, clip
decisions, the recording key of late fusion, config errors."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
import torch

from affectlab.errors import ConfigError, DatasetError
from affectlab.training.config import ExperimentConfig, parse_experiment
from affectlab.training.emotion_data import InMemoryPart, labelled_clips, select_frames
from affectlab.training.emotion_run import recording_key
from affectlab.training.tasks import DataInfo, EmotionTask, build_task
from affectlab.training.tasks.emotion import clip_probabilities


def _config(**emotion) -> ExperimentConfig:
    split = {"train": ["actor_01", "actor_02"], "val": ["actor_03"], "test": ["actor_04"]}
    return ExperimentConfig.model_validate({
        "data": {"features": "/nowhere", "feature_set": "face", "task": "emotion",
                 "emotion": {"split": split, **emotion}},
        "model": {"name": "emotion_cnn"}, "training": {"monitor": "val_accuracy"}})


def _tables(rows: list[tuple[str, str, str | None]]) -> tuple[pa.Table, pa.Table]:
    index = pa.table({"sample_id": [r[0] for r in rows], "subject": [r[1] for r in rows], "n_frames": [30] * len(rows)})
    labels = pa.table({"sample_id": [r[0] for r in rows], "emotion": [r[2] for r in rows]})
    return index, labels


def _corpus() -> list[tuple[str, str, str | None]]:
    emotions = ["angry", "calm", "neutral", "fearful", "surprised"]
    return [(f"a{s}_{k}", f"actor_0{s}", e) for s in range(1, 5) for k, e in enumerate(emotions)]


def test_clips_get_the_seeds_classes_with_ravdess_names_mapped_and_neutral_dropped() -> None:
    parts = labelled_clips(_config(), *_tables(_corpus()))
    assert {p: len(c) for p, c in parts.items()} == {"train": 8, "val": 4, "test": 4}
    names = ("angry", "calm", "disgust", "fear", "happy", "sad", "surprise")
    labels = {c["sample_id"]: names[c["label"]] for c in parts["train"]}
    assert labels["a1_3"] == "fear" and labels["a1_4"] == "surprise" and "a1_2" not in labels  # neutral dropped


def test_an_unknown_emotion_or_a_missing_label_is_an_error_naming_the_clips() -> None:
    rows = [*_corpus(), ("a1_9", "actor_01", "bored"), ("a2_9", "actor_02", None)]
    with pytest.raises(DatasetError) as info:
        labelled_clips(_config(), *_tables(rows))
    message = str(info.value)
    assert "2 clip(s)" in message and "a1_9: emotion 'bored'" in message and "a2_9: no emotion label" in message


def test_an_actor_of_the_split_without_videos_is_an_error_naming_it_and_its_part() -> None:
    rows = [r for r in _corpus() if r[1] != "actor_03"]
    with pytest.raises(DatasetError, match=r"actor_03 \(val\)"):
        labelled_clips(_config(), *_tables(rows))


def test_split_parts_must_not_share_actors_and_classes_must_not_be_dropped() -> None:
    base = {"data": {"features": "x", "feature_set": "face", "task": "emotion",
                     "emotion": {"split": {"train": ["a", "b"], "val": ["b"], "test": []}}},
            "model": {"name": "emotion_cnn"}, "training": {"monitor": "val_accuracy"}}
    with pytest.raises(ConfigError, match="'b' is in both train and val"):
        parse_experiment({"base": base})
    base["data"]["emotion"] = {"classes": ["angry", "neutral"], "drop": ["neutral"]}
    with pytest.raises(ConfigError, match=r"\['neutral'\] are both in classes and in drop"):
        parse_experiment({"base": base})
    base["data"]["emotion"] = {}
    base["training"]["monitor"] = "val_uar_of_frames"
    with pytest.raises(ConfigError, match="val_video_accuracy"):
        parse_experiment({"base": base})


def test_frames_skip_then_step_and_balance_to_the_parts_minimum() -> None:
    clips = [{"sample_id": "long", "n_frames": 60}, {"sample_id": "short", "n_frames": 40},
             {"sample_id": "tiny", "n_frames": 20}]
    k, dropped = select_frames(clips, skip=21, step=3, balance=True, seed=0)
    assert dropped == [{"sample_id": "tiny", "reason": "20 frames: none left after skipping 21"}]
    assert k == len(range(21, 40, 3)) == 7
    assert [c["sample_id"] for c in clips] == ["long", "short"]
    for clip in clips:
        frames = clip["frames"]
        assert len(frames) == 7 and np.all(frames >= 21) and np.all((frames - 21) % 3 == 0)
        assert len(set(frames.tolist())) == 7
    again = [{"sample_id": "long", "n_frames": 60}]
    select_frames(again, skip=21, step=3, balance=True, seed=0)
    unbalanced = [{"sample_id": "long", "n_frames": 60}]
    assert select_frames(unbalanced, skip=21, step=3, balance=False, seed=0)[0] == 0
    assert len(unbalanced[0]["frames"]) == 13  # every 3rd of 21..59


def _task(**emotion) -> EmotionTask:
    config = _config(**emotion)
    task = build_task(config, DataInfo(extra={"mean_face": None}))
    assert isinstance(task, EmotionTask)
    return task


def test_cutout_zeroes_one_square_of_the_configured_side_and_flip_mirrors() -> None:
    torch.manual_seed(0)
    task = _task(flip=False, cutout=0.25)
    x = torch.ones(16, 1, 32, 32)
    holes = (task.augment(x) == 0).float()
    assert torch.all(holes.sum(dim=(1, 2, 3)) == 8 * 8)
    rows, cols = holes[:, 0].amax(dim=2), holes[:, 0].amax(dim=1)
    assert torch.all(rows.sum(dim=1) == 8) and torch.all(cols.sum(dim=1) == 8)  # one contiguous 8 x 8 square
    flip_only = _task(flip=True, cutout=0.0)
    ramp = torch.arange(32.0).expand(64, 1, 32, 32)
    out = flip_only.augment(ramp)
    mirrored = torch.all(out == ramp.flip(-1), dim=(1, 2, 3))
    assert 10 < int(mirrored.sum()) < 54 and torch.all(mirrored | torch.all(out == ramp, dim=(1, 2, 3)))


def test_face_inputs_are_scaled_mean_subtracted_and_resized() -> None:
    config = _config(input_size=16)
    mean = np.full((32, 32), 0.25, np.float32)
    task = build_task(config, DataInfo(extra={"mean_face": mean.tolist()}))
    batch = task.to_device({"image": np.full((2, 32, 32), 255, np.uint8), "label": np.array([1, 2])}, "cpu")
    assert batch["x"].shape == (2, 1, 16, 16) and torch.allclose(batch["x"], torch.tensor(0.75))
    assert batch["y"].tolist() == [1, 2]


def test_clip_decision_is_the_mean_of_frame_probabilities_or_max_weighted() -> None:
    ids = np.array(["v1", "v1", "v1", "v2"])
    probs = np.array([[0.9, 0.1], [0.25, 0.75], [0.3, 0.7], [0.2, 0.8]])
    labels = np.array([0, 0, 0, 1])
    clips, mean, clip_labels = clip_probabilities(ids, probs, labels)
    assert clips.tolist() == ["v1", "v2"] and clip_labels.tolist() == [0, 1]
    assert mean[0].argmax() == 1  # (0.9 + 0.25 + 0.3) / 3 < 0.5
    _, weighted, _ = clip_probabilities(ids, probs, labels, "max")
    assert weighted[0].argmax() == 0  # the confident frame counts more
    with pytest.raises(ValueError, match="'median' is not one of"):
        clip_probabilities(ids, probs, labels, "median")


def test_scores_count_frames_and_videos() -> None:
    task = _task()
    out = {"probs": np.array([[0.8, 0.2] + [0.0] * 5, [0.4, 0.6] + [0.0] * 5, [0.1, 0.9] + [0.0] * 5]),
           "label": np.array([0, 0, 1]), "sample_id": np.array(["v1", "v1", "v2"]), "frame": np.zeros(3), "loss": 1.0}
    scores = task.scores(out, "test_")
    assert scores["test_accuracy"] == pytest.approx(2 / 3) and scores["test_video_accuracy"] == 1.0
    assert scores["test_uar"] == pytest.approx((0.5 + 1.0) / 2)


def test_in_memory_parts_iterate_whole_and_shuffle_by_seed() -> None:
    part = InMemoryPart({"label": np.arange(10), "x": np.arange(10) * 2})
    plain = np.concatenate([b["label"] for b in part.iter_batches(batch_size=4)])
    assert plain.tolist() == list(range(10))
    a = np.concatenate([b["label"] for b in part.iter_batches(batch_size=4, local_shuffle_seed=1)])
    b = np.concatenate([b["label"] for b in part.iter_batches(batch_size=4, local_shuffle_seed=1)])
    assert sorted(a.tolist()) == list(range(10)) and a.tolist() == b.tolist() and a.tolist() != plain.tolist()


def test_recording_key_pairs_ravdess_modalities_and_leaves_other_ids_alone() -> None:
    assert recording_key("01-01-05-01-02-01-12") == recording_key("03-01-05-01-02-01-12") == "01-05-01-02-01-12"
    assert recording_key("Actor_12/02-01-05-01-02-01-12") == "01-05-01-02-01-12"
    assert recording_key("04-01-05-01-02-01-12") == "04-01-05-01-02-01-12"
    assert recording_key("s01/clip3") == "s01/clip3"
