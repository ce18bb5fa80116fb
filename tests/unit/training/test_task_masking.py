"""Unlabelled steps (label -1) count in no loss and no metric, for every task; the f0_to_au model
and its constant baseline are scored on the same steps."""

from __future__ import annotations

import numpy as np
import torch

from affectlab.data.labels import au_vocab, vocab_values
from affectlab.models import build_model
from affectlab.training.tasks import FrameTask, Seq2SeqTask


def _seq2seq() -> tuple[Seq2SeqTask, torch.nn.Module]:
    vocab = au_vocab(1.0)  # SOS, EOS, 0..5
    values = vocab_values(vocab["ID_to_AU"])
    torch.manual_seed(0)
    model = build_model("f0_to_au", au_vocab_size=len(vocab["ID_to_AU"]), f0_vocab_size=10, hidden=8, embed_dim=4,
                        au_embed_dim=4, attention_units=4)
    return Seq2SeqTask(np.asarray(values, dtype=float), 0, 1), model


def _batch(y: np.ndarray) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(1)
    return {"x": rng.integers(3, 10, size=y.shape), "y": y, "mask": np.ones(y.shape, bool)}


def test_seq2seq_scores_only_labelled_steps_like_the_baseline() -> None:
    task, model = _seq2seq()
    y = np.full((2, 6), 4)
    y[0, 2], y[1, 4] = -1, -1  # two unlabelled steps inside the windows
    out = task.predict(model, [_batch(y)], "cpu")
    assert len(out["true"]) == 10  # 12 steps minus the 2 unlabelled: the baseline's count (true >= 0)
    assert (out["true"] == 4).all()
    # the loss ignores what an unlabelled step's target would have been
    other = y.copy()
    other[y == -1] = 7
    relabelled = task.predict(model, [_batch(other)], "cpu")
    assert len(relabelled["true"]) == 12 and relabelled["loss"] != out["loss"]
    forced = task.to_device(_batch(y), "cpu")
    assert forced["target_mask"].sum() == 10 and (forced["y"] >= 0).all()  # decoder input: a real token


def test_frame_task_masks_unlabelled_steps() -> None:
    task = FrameTask(None)
    torch.manual_seed(0)
    model = build_model("stacked", input_dim=3, hidden=4)
    x = np.random.default_rng(0).normal(size=(2, 5, 3)).astype(np.float32)
    y = np.array([[1, 0, -1, 1, 0], [0, -1, -1, 1, 1]])
    out = task.predict(model, [{"x": x, "y": y, "mask": np.ones((2, 5), bool)}], "cpu")
    assert len(out["true"]) == 7 and set(out["true"].tolist()) <= {0, 1}
