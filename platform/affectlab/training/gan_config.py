"""``data.gan``: the settings of ``data.task: gan_au | gan_va | gan_au_va`` (seed 002's categorical GAN).

The training schedule uses the shared ``training`` section: ``training.lr`` is the generator's
learning rate (the discriminator gets half), ``training.update_rate`` the D/G schedule,
``training.batch_size`` (the seed: 64), ``training.max_iterations`` the iteration budget and
``training.eval_every`` the checkpoint period K (the seed: 1000); ``training.grad_clip`` overrides
:attr:`GanSettings.grad_clip`.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from affectlab.config import StrictModel

__all__ = ["SEED_AUS", "GanSettings"]

SEED_AUS = ("AU01", "AU02", "AU04", "AU06", "AU12", "AU15", "AU20", "AU25")
"""The 8 Aff-Wild AUs of seed 002 (Table 3.10 column order)."""


class GanSettings(StrictModel):
    """Data and loss settings of the categorical GAN tasks."""

    aus: tuple[str, ...] = Field(default=SEED_AUS, min_length=1, description="AU label columns, in output order")
    au_threshold: float = Field(default=0.0, ge=0,
                                description="an AU occurs in a frame when its label is above this: 0 = any trace "
                                            "(binary labels); 2 = above B on 0-5 intensities (the DISFA convention)")
    image_size: Literal[28, 32] = Field(default=28, description="side of the face crops (face_<S> column)")
    label_smoothing: float = Field(default=0.9, ge=0, le=1,
                                   description="alpha of the fake targets [(1-alpha)/n ..., alpha]")
    va_loss: Literal["mse", "ccc"] = Field(default="mse", description="V/A loss: mse or ccc (1 - CCC)")
    loss_weights: Literal["equal", "ponderated"] = Field(
        default="equal", description="gan_au_va: equal 1/3 weights or the seed's ponderated VA 0.27 / AU 0.40 / RF 0.33")
    recon_steps: int = Field(default=1500, ge=1, description="iterations over which the Huber weight falls to 0")
    recon_weight: float = Field(default=10.0, ge=0, description="Huber reconstruction weight at iteration 0")
    grad_clip: float = Field(default=20.0, gt=0, description="gradient norm clip when training.grad_clip is unset")
    fake_va_target: Literal["smoothed", "real_batch_labels"] = Field(
        default="smoothed", description="V/A targets of generated images: smoothed (1-alpha)/n like the AU nodes "
                                        "(the seed's text), or the real batch's V/A labels (its Table 3.18 code)")
    supervised_only: bool = Field(default=False, description="train the discriminator on the real images' labels "
                                                             "only, no generator (the reference row of the tables)")
    save_checkpoints: bool = Field(default=True, description="write both networks every training.eval_every "
                                                             "iterations to <out>/checkpoints/ (affectlab evaluate)")
    drop_frames_without_au: bool = Field(default=False,
                                         description="drop frames with no AU occurring before the split")
    test_fraction: float = Field(default=0.2, gt=0, lt=1, description="share of frames in the held-out part")
    n_draws: int = Field(default=20, ge=1, description="identity draws of the balanced split; the most alike is kept")
    frame_step: int = Field(default=1, ge=1, description="keep every n-th frame of each video")
    card: str | None = Field(default=None,
                             description="dataset card for the per-frame labels; default: the card of the "
                                         "preprocess run (provenance)")
