"""Seed 000 on the real pipeline: F0 tokens -> AU intensity tokens, teacher forcing in training,
decoding without ground truth at evaluation."""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from affectlab.training.config import load_experiment
from affectlab.training.data import batches, prepare
from affectlab.training.run import train
from affectlab.training.runners import build
from affectlab.training.tasks import Seq2SeqTask
from speech_au_data import speech_au_preprocessed

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(__file__)))
F0_FILE = os.path.join(ROOT, "search_spaces", "f0_to_au.yaml")


@pytest.fixture(scope="module")
def trained(tmp_path_factory, ray_local):
    pre = speech_au_preprocessed(tmp_path_factory)
    config = load_experiment(F0_FILE, [
        f"data.features={pre}", "data.test_subjects=[s01]", "scaling.runner=in_process",
        "training.max_epochs=3", "training.prev_rounds=3", "model.kwargs.hidden=16",
        "model.kwargs.attention_units=16", "data.max_steps=40",
    ]).base
    out = tmp_path_factory.mktemp("f0")
    return config, train(config, out=str(out)), out


@pytest.mark.slow
def test_f0_to_au_reports_token_and_intensity_metrics(trained) -> None:
    _, result, out = trained
    for row in result.history:
        assert {"train_loss", "val_loss", "val_uar", "val_accuracy", "val_mae", "val_ccc"} <= set(row)
    assert result.history[-1]["train_loss"] < result.history[0]["train_loss"]  # teacher-forced CE falls
    assert {"test_mae", "test_ccc", "test_uar", "baseline_mae"} <= set(result.test) | set(result.baseline)
    assert os.path.exists(out / "best_model.pt")


@pytest.mark.slow
def test_decoding_never_sees_the_targets(trained) -> None:
    config, _, out = trained
    prepared = prepare(config)
    model = build(config, prepared.model_kwargs)
    model.load_state_dict(torch.load(out / "best_model.pt", weights_only=True))
    vocab = prepared.info["vocab"]
    task = Seq2SeqTask(np.asarray(vocab["id_values"]), vocab["sos_id"], vocab["eos_id"])
    test = prepared.test
    scrambled = type(test)(test.x, np.random.default_rng(0).permutation(test.y.ravel()).reshape(test.y.shape),
                           test.mask, test.sample_id, test.subject)
    true = task.predict(model, batches(test, 8), "cpu")
    blind = task.predict(model, batches(scrambled, 8), "cpu")
    assert np.array_equal(true["pred"], blind["pred"])  # decoded tokens do not depend on y
    assert true["loss"] != blind["loss"]  # the teacher-forced loss does
    assert len(true["pred"]) == int(test.mask.sum())
    specials = {vocab["sos_id"], vocab["eos_id"]}
    assert not specials & set(true["pred"].tolist())  # fixed-length decoding: no SOS/EOS inside


def test_au_step_requantizes_the_stored_intensities(tmp_path_factory) -> None:
    from affectlab.data.labels import au_vocab, quantize_au
    from affectlab.features import io
    from affectlab.training.corpus import load_corpus

    pre = speech_au_preprocessed(tmp_path_factory)
    stored = load_experiment(F0_FILE, [f"data.features={pre}"]).base.data
    coarse = load_experiment(F0_FILE, [f"data.features={pre}", "data.au_step=0.5"]).base.data
    a, b = load_corpus(stored), load_corpus(coarse)
    assert len(a.vocab["id_values"]) == len(au_vocab(0.1)["ID_to_AU"])  # preprocessing's --au-step 0.1
    assert len(b.vocab["id_values"]) == len(au_vocab(0.5)["ID_to_AU"]) == 13
    labels = io.load_labels(pre, "au")
    k = io.label_names(labels).index("AU17")
    intensity = dict(zip(labels.column("sample_id").to_pylist(), io.column_arrays(labels, "intensity", np.float32),
                         strict=True))
    sid = b.sample_ids[0]
    steps = len(b.labels["AU17_id"][0])  # one per 25 Hz label frame k: LLD frames 4k-3 .. 4k (times 10t + 30 ms)
    held = intensity[sid][:, k][np.maximum(4 * np.arange(steps) - 3, 0)]
    np.testing.assert_array_equal(b.labels["AU17_id"][0], quantize_au(held, 0.5)[1])
    assert set(np.unique(b.labels["AU17_id"][0])) <= set(range(2, 13))
    assert not np.array_equal(a.labels["AU17_id"][0], b.labels["AU17_id"][0])  # the step changed the tokens
    assert b.features[0].tolist() == a.features[0].tolist()  # inputs untouched


def test_teacher_forcing_ratio_sets_the_sampling_probability() -> None:
    from affectlab.training.runners import task_for

    pre = "/not/read"  # the task is built from the config alone
    vocab = {"id_values": [float("nan"), float("nan"), 0.0, 0.1], "sos_id": 0, "eos_id": 1}
    for ratio in (1.0, 0.75, 0.0):
        config = load_experiment(F0_FILE, [f"data.features={pre}", f"training.teacher_forcing_ratio={ratio}"]).base
        assert task_for(config, np.ones(4), vocab).sampling_prob == pytest.approx(1.0 - ratio)
