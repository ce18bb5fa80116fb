"""Streaming frame sequences from the store: split from small columns, parts read lazily with
Ray Data (local and S3), padded batches with masks, and a real training on them."""

from __future__ import annotations

import sys

import numpy as np
import pyarrow as pa
import pytest
import torch
from torch import nn

from affectlab import storage
from affectlab.errors import DatasetError
from affectlab.features import io
from affectlab.features.arrow import nested_list_array
from affectlab.training.config import DataConfig, ExperimentConfig
from affectlab.training.streaming import pad_sequences, sequence_datasets

SUBJECTS = ("s00", "s01", "s02", "s03")


def write_mouth_set(out: str, clips: int = 16, size: int = 12, seed: int = 0) -> dict[str, np.ndarray]:
    """Random ``T x size x size`` clips (T = 3..8), 4 per Parquet file; returns them by sample id."""
    rng = np.random.default_rng(seed)
    made = {}
    for part, start in enumerate(range(0, clips, 4)):
        ids = [f"clip{i:03d}" for i in range(start, min(start + 4, clips))]
        arrays = [rng.integers(0, 256, size=(int(rng.integers(3, 9)), size, size), dtype=np.uint8) for _ in ids]
        made.update(zip(ids, arrays, strict=True))
        table = pa.table({"sample_id": ids, "subject": [SUBJECTS[int(i[4:]) % 4] for i in ids],
                          "n_frames": [len(a) for a in arrays], "frame_rate_hz": [25.0] * len(ids),
                          "mouth": nested_list_array(arrays)})
        storage.write_parquet(table, storage.join(io.set_dir(out, "features", "mouth", "v1"), f"part-{part}.parquet"))
    return made


def _data(root: str, **kw) -> DataConfig:
    return DataConfig.model_validate({"features": root, "feature_set": "mouth", "test_subjects": ["s00"], **kw})


def test_pad_sequences_masks_the_real_steps() -> None:
    x, mask = pad_sequences([np.ones((2, 3)), np.full((4, 3), 2.0)])
    assert x.shape == (2, 4, 3) and mask.tolist() == [[True, True, False, False], [True] * 4]
    assert x[0, 2:].sum() == 0 and x[1].sum() == 24
    with pytest.raises(DatasetError, match=r"\(3,\) and \(5,\)"):
        pad_sequences([np.ones((2, 3)), np.ones((2, 5))])


@pytest.mark.parametrize("where", ["local", "s3"])
def test_parts_stream_the_right_clips_intact(where, tmp_path, ray_local, request) -> None:
    root = str(tmp_path) if where == "local" else request.getfixturevalue("s3_bucket") + "/pre"
    made = write_mouth_set(root)
    data = sequence_datasets(_data(root), "mouth")
    assert data.split.test == ("s00",) and "s00" not in data.split.train + data.split.val
    seen: dict[str, set[str]] = {}
    for part, ds in data.datasets.items():
        for batch in ds.iter_batches(batch_size=3, batch_format="numpy"):
            x, mask = pad_sequences(list(batch["mouth"]), np.uint8)
            for i, sid in enumerate(batch["sample_id"]):
                clip = made[str(sid)]
                assert np.array_equal(x[i, : len(clip)], clip) and mask[i].sum() == len(clip)
                seen.setdefault(part, set()).add(str(sid))
            assert set(batch["subject"]) <= set(getattr(data.split, part) if part != "train" else data.split.train)
    assert {p: len(s) for p, s in seen.items()} == data.counts
    assert set().union(*seen.values()) == set(made)  # every clip in exactly one part
    assert sum(data.counts.values()) == len(made)


def test_missing_column_and_empty_part_are_named(tmp_path, ray_local) -> None:
    write_mouth_set(str(tmp_path))
    with pytest.raises(DatasetError, match=r"no column 'face_112'.*mouth"):
        sequence_datasets(_data(str(tmp_path)), "face_112")
    with pytest.raises(Exception, match="s09"):
        sequence_datasets(_data(str(tmp_path), test_subjects=["s09"]), "mouth")


class TinyClipNet(nn.Module):
    """Mean brightness of the masked frames, scaled by one weight."""

    def __init__(self, input_dim: int = 1) -> None:
        super().__init__()
        self.scale = nn.Parameter(torch.zeros(1))

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        per_frame = x.mean(dim=(2, 3))
        return self.scale * (per_frame * mask).sum(1) / mask.sum(1)


def _register_runtime_task() -> None:
    from affectlab.models import MODELS
    from affectlab.training.tasks import TASKS, SingleModelTask, TaskSpec, register_task

    class ClipMean(SingleModelTask):
        """Learn y = 2 * mean brightness: the scale must approach 2."""

        metrics = ("loss", "scale")

        def to_device(self, batch, device):
            x, mask = pad_sequences(list(batch["mouth"]), np.float32)
            x, m = torch.as_tensor(x / 255.0), torch.as_tensor(mask).float()
            return {"x": x, "mask": m, "y": 2.0 * (x.mean(dim=(2, 3)) * m).sum(1) / m.sum(1)}

        def train_loss(self, model, batch):
            return ((model(batch["x"], batch["mask"]) - batch["y"]) ** 2).mean()

        def step_weight(self, batch):
            return float(batch["x"].shape[0])

        def evaluate(self, modules, batches, device, *, prefix):
            losses = [float(self.train_loss(modules["model"], self.to_device(b, device))) for b in batches]
            return {f"{prefix}loss": float(np.mean(losses)), f"{prefix}scale": float(modules["model"].scale)}

    if "test_clip_mean" not in TASKS:
        MODELS["test_tiny_clip_net"] = TinyClipNet
        register_task(TaskSpec("test_clip_mean", lambda config, info: ClipMean(config), ("test_tiny_clip_net",),
                               ClipMean.metrics, {"input_dim": 1}))


@pytest.mark.slow
def test_ray_train_on_streamed_clips_with_a_task_registered_at_run_time(tmp_path, ray_local, request) -> None:
    """A task and model registered only in this process train in Ray Train workers (the runner
    ships their registry entries) on clips streamed from Parquet."""
    import ray.cloudpickle

    from affectlab.training.runners import run_ray_train_datasets
    from affectlab.training.tasks import DataInfo

    from affectlab.models import MODELS
    from affectlab.training.tasks import TASKS

    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    _register_runtime_task()
    request.addfinalizer(lambda: (TASKS.pop("test_clip_mean", None), MODELS.pop("test_tiny_clip_net", None)))
    write_mouth_set(str(tmp_path / "pre"), clips=32)
    config = ExperimentConfig.model_validate({
        "name": "clips", "data": {"features": str(tmp_path / "pre"), "feature_set": "mouth", "task": "test_clip_mean",
                                  "test_subjects": ["s00"]},
        "model": {"name": "test_tiny_clip_net"},
        "training": {"max_epochs": 4, "batch_size": 2, "lr": 0.15, "monitor": "val_loss", "prev_rounds": 4,
                     "patience": 1, "last_top_results": 1},
        # one worker: the test cluster's other CPU reads Parquet for Ray Data. Two workers on
        # streamed Parquet hung on this 2-CPU machine (not yet diagnosed; see the issue-11 note)
        "scaling": {"num_workers": 1, "cpus_per_worker": 1},
    })
    data = sequence_datasets(config.data, "mouth")
    output, _ = run_ray_train_datasets(config, {"train": data.datasets["train"], "val": data.datasets["val"]},
                                       DataInfo(), out=str(tmp_path / "out"))
    assert len(output.history) == 4
    assert abs(output.history[-1]["val_scale"] - 2.0) < 0.3 < abs(output.history[0]["val_scale"] - 2.0)


def test_the_ray_train_runner_caches_lazy_parts_once_and_passes_cached_ones_through(tmp_path, ray_local) -> None:
    """``cache_datasets`` (what ``run_ray_train_datasets`` does unless a task streams): a lazy part read
    from Parquet becomes a materialised one with the same rows; an already materialised part is the
    same object (no second copy in the object store)."""
    from ray.data.dataset import MaterializedDataset

    from affectlab.training.runners import cache_datasets

    made = write_mouth_set(str(tmp_path))
    data = sequence_datasets(_data(str(tmp_path)), "mouth")
    lazy = data.datasets["train"]
    assert not isinstance(lazy, MaterializedDataset)
    cached = cache_datasets({"train": lazy})["train"]
    assert isinstance(cached, MaterializedDataset)
    rows = {str(r["sample_id"]): r["mouth"] for r in cached.iter_rows()}
    assert len(rows) == data.counts["train"]
    assert all(np.array_equal(np.stack(list(v)), made[k]) for k, v in rows.items())
    assert cache_datasets({"train": cached})["train"] is cached
