"""Experiment files: base validation (all errors at once), passthrough sections, overrides."""

from __future__ import annotations

import glob
import os

import pytest

from affectlab.errors import ConfigError
from affectlab.training.config import ExperimentConfig, load_experiment, parse_experiment, with_updates

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(__file__))))


def _base(**over) -> dict:
    base = {"data": {"features": "/data/pre"}, "model": {"name": "stacked"}}
    base.update(over)
    return base


def test_defaults_follow_the_paper() -> None:
    cfg = parse_experiment({"base": _base()}).base
    t = cfg.training
    assert (t.lr, t.batch_size, t.max_epochs, t.patience, t.prev_rounds, t.last_top_results) == (1e-4, 32, 100, 5, 15, 10)
    assert cfg.data.max_steps == 100 and cfg.data.normalisation == "per_speaker"
    assert (cfg.scaling.num_workers, cfg.scaling.use_gpu, cfg.scaling.cpus_per_worker) == (1, False, 1)


def test_space_and_tune_pass_through_other_top_level_keys_fail() -> None:
    exp = parse_experiment({"base": _base(), "space": {"training.lr": {"loguniform": [1e-4, 1e-2]}}, "tune": {"num_samples": 4}})
    assert exp.space == {"training.lr": {"loguniform": [1e-4, 1e-2]}} and exp.tune == {"num_samples": 4}
    with pytest.raises(ConfigError, match="sweep: unknown top-level key; allowed: base, space, tune"):
        parse_experiment({"base": _base(), "sweep": {}})


def test_every_problem_in_base_reported_at_once() -> None:
    data = {"base": {"data": {"features": "/d", "normalisation": "zscore", "max_steps": 1},
                     "model": {"name": "stackd"}, "training": {"lr": -1, "batchsize": 3}}, "extra": 1}
    with pytest.raises(ConfigError) as info:
        parse_experiment(data, source="exp.yaml")
    msg = str(info.value)
    assert msg.startswith("exp.yaml:")
    for needle in ("extra: unknown top-level key", "base.data.normalisation", "'zscore'", "base.data.max_steps",
                   "unknown model 'stackd'", "enc_interatt_dec", "base.training.lr", "base.training.batchsize: unknown key"):
        assert needle in msg, needle


def test_model_kwargs_are_validated_by_the_builder() -> None:
    with pytest.raises(ConfigError, match="hiden"):
        parse_experiment({"base": _base(model={"name": "stacked", "kwargs": {"hiden": 3}})})
    with pytest.raises(ConfigError, match="dropout"):
        parse_experiment({"base": _base(model={"name": "stacked", "kwargs": {"dropout": 1.5}})})
    with pytest.raises(ConfigError, match="filled in from the data"):
        parse_experiment({"base": _base(model={"name": "stacked", "kwargs": {"input_dim": 3}})})
    ok = parse_experiment({"base": _base(model={"name": "enc_interatt_dec", "kwargs": {"hidden": 8}})})
    assert ok.base.model.kwargs == {"hidden": 8}


def test_task_and_model_must_fit() -> None:
    with pytest.raises(ConfigError, match=r"data\.task='f0_to_au' does not fit model\.name='stacked'.*trains \['f0_to_au'\]"):
        parse_experiment({"base": _base(data={"features": "/d", "task": "f0_to_au"})})
    with pytest.raises(ConfigError, match="task='au' does not fit"):
        parse_experiment({"base": _base(model={"name": "f0_to_au"})})


def test_au_step_must_divide_the_range_and_fits_f0_to_au_only() -> None:
    f0 = {"data": {"features": "/d", "task": "f0_to_au", "au_step": 0.5}, "model": {"name": "f0_to_au"}}
    assert parse_experiment({"base": f0}).base.data.au_step == 0.5
    with pytest.raises(ConfigError, match=r"base\.data\.au_step.*divide"):
        parse_experiment({"base": {**f0, "data": {**f0["data"], "au_step": 0.3}}})
    with pytest.raises(ConfigError, match="preprocess --au-step"):
        parse_experiment({"base": _base(data={"features": "/d", "au_step": 0.5})})


def test_teacher_forcing_ratio_is_a_probability() -> None:
    f0 = {"data": {"features": "/d", "task": "f0_to_au"}, "model": {"name": "f0_to_au"}}
    assert parse_experiment({"base": f0}).base.training.teacher_forcing_ratio == 1.0
    with pytest.raises(ConfigError, match="teacher_forcing_ratio"):
        parse_experiment({"base": {**f0, "training": {"teacher_forcing_ratio": 1.5}}})


def test_overrides_address_base_by_default(tmp_path) -> None:
    path = tmp_path / "exp.yaml"
    path.write_text("base:\n  data: {features: /d}\n  model: {name: stacked}\ntune: {num_samples: 2}\n")
    exp = load_experiment(str(path), ["training.lr=1e-3", "base.scaling.num_workers=2", "tune.num_samples=5"])
    assert exp.base.training.lr == 1e-3 and isinstance(exp.base.training.lr, float)
    assert exp.base.scaling.num_workers == 2 and exp.tune == {"num_samples": 5}
    with pytest.raises(ConfigError, match="base.training.lr"):
        load_experiment(str(path), ["training.lr=2"])


def test_with_updates_revalidates() -> None:
    cfg = parse_experiment({"base": _base()}).base
    new = with_updates(cfg, {"data.test_subjects": ["s01"], "model.name": "encdec", "training.lr": 1e-3})
    assert new.data.test_subjects == ("s01",) and new.model.name == "encdec" and new.training.lr == 1e-3
    assert cfg.data.test_subjects == ()
    with pytest.raises(ConfigError):
        with_updates(cfg, {"model.name": "nope"})


@pytest.mark.parametrize("path", sorted(p for p in glob.glob(os.path.join(ROOT, "search_spaces", "*.yaml"))
                                         if os.path.basename(p) != "vsr.yaml"))  # a pipeline: test_vsr_pipeline
def test_every_experiment_file_validates(path: str) -> None:
    exp = load_experiment(path)
    assert isinstance(exp.base, ExperimentConfig)
