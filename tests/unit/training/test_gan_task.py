"""Unit tests of the categorical-GAN task (``data.task: gan_*``): labels, schedule, losses, metrics, config errors."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from affectlab.errors import ConfigError
from affectlab.models import build_model
from affectlab.training.config import ExperimentConfig
from affectlab.training.tasks import TASKS
from affectlab.training.tasks.base import StepContext
from affectlab.training.tasks.gan import (PONDERATED, GanTask, ccc, ccc_loss, d_label_loss, fake_targets,
                                          generator_loss, real_targets, recon_weight, steps_discriminator)

AUS = ("AU01", "AU02", "AU04")


def test_real_targets_append_a_zero_rf_column() -> None:
    y = torch.tensor([[1.0, 0.0, 1.0], [0.0, 0.0, 1.0]])
    assert torch.equal(real_targets(y), torch.tensor([[1.0, 0.0, 1.0, 0.0], [0.0, 0.0, 1.0, 0.0]]))


@pytest.mark.parametrize(("n", "alpha"), [(8, 0.9), (2, 1.0), (10, 0.0)])
def test_fake_targets_spread_one_minus_alpha_over_the_labels(n: int, alpha: float) -> None:
    t = fake_targets(3, n, alpha)
    assert t.shape == (3, n + 1)
    assert torch.allclose(t[:, :n], torch.full((3, n), (1 - alpha) / n))
    assert torch.allclose(t[:, -1], torch.full((3,), alpha))
    assert torch.allclose(t.sum(dim=1), torch.full((3,), (1 - alpha) + alpha))


def test_fake_targets_reject_alpha_outside_unit_interval() -> None:
    with pytest.raises(ConfigError, match="data.gan.label_smoothing"):
        fake_targets(1, 8, 1.5)


@pytest.mark.parametrize(("rate", "d_steps"), [
    (0, list(range(16))),
    (2, [0, 3, 6, 9, 12, 15]),
    (7, [0, 8]),
])
def test_update_schedule(rate: int, d_steps: list[int]) -> None:
    assert [i for i in range(16) if steps_discriminator(i, rate)] == d_steps


def test_update_schedule_rejects_negative_rate() -> None:
    with pytest.raises(ConfigError, match="training.update_rate"):
        steps_discriminator(0, -1)


def test_recon_weight_anneals_linearly_to_zero() -> None:
    assert recon_weight(0) == 10.0
    assert recon_weight(750) == pytest.approx(5.0)
    assert recon_weight(1499) == pytest.approx(10 / 1500)
    assert recon_weight(1500) == 0.0
    assert recon_weight(10_000) == 0.0


def test_stable_generator_loss_matches_the_naive_formula() -> None:
    logits = torch.linspace(-8, 8, 33, dtype=torch.float64)
    naive = torch.log(torch.sigmoid(logits)).mean()
    assert torch.allclose(generator_loss(logits), naive, atol=1e-12)


def test_stable_generator_loss_is_finite_where_the_naive_one_is_not() -> None:
    logits = torch.tensor([-200.0, 200.0])
    assert torch.isinf(torch.log(torch.sigmoid(logits))).any()
    assert torch.isfinite(generator_loss(logits))
    assert generator_loss(logits).item() == pytest.approx(-100.0)


def test_ccc_and_its_loss() -> None:
    x = torch.tensor([0.1, -0.4, 0.3, 0.8, -0.2], dtype=torch.float64)
    assert ccc(x, x).item() == pytest.approx(1.0)
    assert ccc_loss(x, x).item() == pytest.approx(0.0, abs=1e-9)
    centred = x - x.mean()
    assert ccc(-centred, centred).item() == pytest.approx(-1.0)
    y = x + 0.5  # a shift lowers the CCC but not the Pearson correlation
    mx, my = x.mean(), y.mean()
    expected = 2 * ((x - mx) * (y - my)).mean() / (x.var(unbiased=False) + y.var(unbiased=False) + (mx - my) ** 2)
    assert ccc(x, y).item() == pytest.approx(expected.item())
    assert 0 < ccc_loss(x, y).item() < 1


def _parts(b: int, n_aus: int) -> tuple[dict, dict, dict]:
    g = torch.Generator().manual_seed(0)
    parts = {"va": torch.randn(b, 2, generator=g), "au": torch.randn(b, n_aus, generator=g),
             "rf": torch.randn(b, generator=g)}
    targets = {"va": torch.rand(b, 2, generator=g) * 2 - 1, "au": (torch.rand(b, n_aus, generator=g) > 0.5).float(),
               "rf": torch.zeros(b)}
    masks = {"va": torch.ones(b, 2, dtype=torch.bool), "au": torch.ones(b, n_aus, dtype=torch.bool)}
    return parts, targets, masks


def test_ponderated_weights_combine_the_three_terms() -> None:
    assert PONDERATED == {"va": 0.27, "au": 0.40, "rf": 0.33}
    assert sum(PONDERATED.values()) == pytest.approx(1.0)
    parts, targets, masks = _parts(6, 3)
    total = d_label_loss(parts, targets, masks, va_loss="mse", weights=PONDERATED)
    va = ((parts["va"] - targets["va"]) ** 2).mean(dim=0).mean()
    au = torch.nn.functional.binary_cross_entropy_with_logits(parts["au"], targets["au"])
    rf = torch.nn.functional.binary_cross_entropy_with_logits(parts["rf"], targets["rf"])
    assert total.item() == pytest.approx((0.27 * va + 0.40 * au + 0.33 * rf).item(), rel=1e-6)
    equal = d_label_loss(parts, targets, masks, va_loss="mse", weights={"va": 1 / 3, "au": 1 / 3, "rf": 1 / 3})
    assert equal.item() == pytest.approx(((va + au + rf) / 3).item(), rel=1e-6)


def test_ccc_va_loss_is_the_mean_of_one_minus_ccc_per_axis() -> None:
    parts, targets, masks = _parts(8, 3)
    only_va = {"va": parts["va"], "rf": parts["rf"]}
    loss = d_label_loss(only_va, targets, masks, va_loss="ccc", weights={})
    rf = torch.nn.functional.binary_cross_entropy_with_logits(parts["rf"], targets["rf"])
    va = (ccc_loss(parts["va"][:, 0], targets["va"][:, 0]) + ccc_loss(parts["va"][:, 1], targets["va"][:, 1])) / 2
    assert loss.item() == pytest.approx((va + rf).item(), rel=1e-6)


def test_masked_au_labels_do_not_count() -> None:
    parts, targets, masks = _parts(4, 3)
    masks["au"][:, 0] = False
    changed = dict(targets, au=targets["au"].clone())
    changed["au"][:, 0] = 1 - changed["au"][:, 0]
    only_au = {"au": parts["au"], "rf": parts["rf"]}
    a = d_label_loss(only_au, targets, masks, va_loss="mse", weights={})
    b = d_label_loss(only_au, changed, masks, va_loss="mse", weights={})
    assert a.item() == pytest.approx(b.item())


def _config(**gan: object) -> ExperimentConfig:
    return ExperimentConfig.model_validate({"data": {"features": "/nowhere", "task": "gan_au_va", "gan": gan},
                                            "model": {"name": "categorical_gan"},
                                            "training": {"monitor": "val_au_mean_f1", "update_rate": 2}})


@pytest.mark.parametrize(("key", "value"), [("va_loss", "mae"), ("loss_weights", "heavy"), ("image_size", 30),
                                            ("label_smoothing", 1.5)])
def test_config_errors_name_the_key(key: str, value: object) -> None:
    with pytest.raises(Exception, match=key) as info:
        _config(**{key: value})
    assert "gan" in str(info.value)


def test_task_errors_name_the_key() -> None:
    with pytest.raises(ConfigError, match="data.gan.va_loss='mae'.*mse, ccc"):
        GanTask("va", va_loss="mae")
    with pytest.raises(ConfigError, match="head='xy'"):
        GanTask("xy")
    with pytest.raises(ConfigError, match="data.gan.aus"):
        GanTask("au", ())


def test_registry_and_optimizers() -> None:
    assert {"gan_au", "gan_va", "gan_au_va"} <= set(TASKS)
    config = _config(loss_weights="ponderated")
    task = GanTask("au_va", AUS, config)
    assert task.update_rate == 2 and task.weights == PONDERATED and task.grad_clip == 20.0
    modules = dict(build_model("categorical_gan", head="au_va", n_aus=3, image_size=28).items())
    opts = task.configure_optimizers(modules, 1e-4)
    assert opts["generator"].param_groups[0]["lr"] == pytest.approx(1e-4)
    assert opts["discriminator"].param_groups[0]["lr"] == pytest.approx(5e-5)
    assert opts["discriminator"].param_groups[0]["betas"] == (0.5, 0.999)


def _batch(b: int, rng: np.random.Generator) -> dict[str, np.ndarray]:
    return {"image": rng.integers(0, 256, (b, 28, 28, 3), dtype=np.uint8),
            "au": rng.integers(0, 2, (b, 3)).astype(np.int8), "va": rng.uniform(-1, 1, (b, 2)).astype(np.float32)}


def test_steps_alternate_and_only_the_stepped_network_changes() -> None:
    torch.manual_seed(0)
    task = GanTask("au_va", AUS, update_rate=2)
    modules = dict(build_model("categorical_gan", head="au_va", n_aus=3, image_size=28).items())
    ctx = StepContext(modules, task.configure_optimizers(modules, 1e-3), device="cpu")
    batch = task.to_device(_batch(8, np.random.default_rng(0)), "cpu")
    assert batch["image"].shape == (8, 3, 28, 28) and -1 <= batch["image"].min() and batch["image"].max() <= 1
    seen = []
    for it in range(4):
        ctx.iteration = it
        before = {n: [p.detach().clone() for p in m.parameters()] for n, m in modules.items()}
        out = task.train_step(ctx, batch)
        changed = {n for n, m in modules.items()
                   if any(not torch.equal(a, p) for a, p in zip(before[n], m.parameters(), strict=True))}
        seen.append((sorted(out.losses), changed))
        assert all(math.isfinite(v) for v in out.losses.values())
    assert seen[0] == (["d_loss"], {"discriminator"})
    assert seen[1] == (["g_adv", "g_loss"], {"generator"})
    assert seen[2][1] == {"generator"} and seen[3][1] == {"discriminator"}
    assert ctx.grad_clip == 20.0


def test_scores_from_known_outputs() -> None:
    task = GanTask("au_va", ("AU01", "AU02"))
    out = {"loss": np.asarray(0.5), "rf": np.array([0.1, 0.2, 0.9, 0.3]),
           "au": np.array([[0.9, 0.1], [0.8, 0.7], [0.2, 0.6], [0.1, 0.2]]),
           "au_true": np.array([[1, 0], [1, 0], [0, 1], [-1, 1]]),
           "va": np.array([[0.1, 0.2], [0.3, 0.1], [0.5, 0.0], [0.7, -0.1]]),
           "va_true": np.array([[0.1, 0.2], [0.3, 0.1], [0.5, 0.0], [np.nan, -0.1]])}
    m = task.scores(out, "val_")
    assert m["val_real_pct"] == 0.75
    assert m["val_au_f1_AU01"] == 1.0 and m["val_au_accuracy_AU01"] == 1.0  # the -1 row is left out
    assert m["val_au_precision_AU02"] == 0.5 and m["val_au_recall_AU02"] == 0.5
    assert m["val_au_accuracy_AU02"] == 0.5
    assert m["val_au_mean_f1"] == pytest.approx(0.75)
    assert m["val_au_score"] == pytest.approx((0.75 + 0.75) / 2)
    assert m["val_ccc_valence"] == pytest.approx(1.0) and m["val_mse_valence"] == pytest.approx(0.0)
    assert m["val_ccc_arousal"] == pytest.approx(1.0)


def test_noise_depends_on_the_iteration_only_so_a_resumed_run_draws_the_same() -> None:
    task = GanTask("au", AUS)
    other_seed = GanTask("au", AUS, ExperimentConfig.model_validate({
        "data": {"features": "/nowhere", "task": "gan_au"}, "model": {"name": "categorical_gan"},
        "training": {"monitor": "val_au_mean_f1", "seed": 1}}))
    first = task._noise_batch(4, "cpu", 7)
    assert torch.equal(first, GanTask("au", AUS)._noise_batch(4, "cpu", 7))  # a fresh task (a resume) draws it again
    assert not torch.equal(first, task._noise_batch(4, "cpu", 8))
    assert not torch.equal(first, other_seed._noise_batch(4, "cpu", 7))
    assert float(first.min()) >= -1 and float(first.max()) <= 1


def test_supervised_only_steps_the_discriminator_on_real_images_every_iteration() -> None:
    torch.manual_seed(0)
    task = GanTask("au_va", AUS, _config(supervised_only=True))
    modules = dict(build_model("categorical_gan", head="au_va", n_aus=3, image_size=28).items())
    ctx = StepContext(modules, task.configure_optimizers(modules, 1e-3), device="cpu")
    batch = task.to_device(_batch(8, np.random.default_rng(0)), "cpu")
    generator = [p.detach().clone() for p in modules["generator"].parameters()]
    for it in range(3):  # update_rate 2 would make iterations 1 and 2 generator steps
        ctx.iteration = it
        before = [p.detach().clone() for p in modules["discriminator"].parameters()]
        out = task.train_step(ctx, batch)
        assert sorted(out.losses) == ["d_loss"]
        assert any(not torch.equal(a, p) for a, p in zip(before, modules["discriminator"].parameters(), strict=True))
    assert all(torch.equal(a, p) for a, p in zip(generator, modules["generator"].parameters(), strict=True))


def test_fake_va_targets_smoothed_or_the_real_batch_labels() -> None:
    batch = {"va": torch.tensor([[0.5, -0.2], [float("nan"), 0.1]])}
    smoothed, _ = GanTask("va", (), label_smoothing=0.8)._fake_parts(2, "cpu", batch)
    assert torch.allclose(smoothed["va"], torch.full((2, 2), 0.1)) and torch.allclose(smoothed["rf"], torch.full((2,), 0.8))
    literal, masks = GanTask("va", (), _config(fake_va_target="real_batch_labels"))._fake_parts(2, "cpu", batch)
    assert literal["va"][0].tolist() == pytest.approx([0.5, -0.2])
    assert masks["va"].tolist() == [[True, True], [False, True]]  # a missing label stays masked
