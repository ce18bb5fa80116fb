"""``lma``: Laban-movement feature vectors made from PAD values by a planted map (lma adapter).

One CSV ``lma_features.csv``: ``clip_id, subject``, the 27 features of
:data:`affectlab.data.adapters.lma.LMA_FEATURES` (in that order), ``pleasure, arousal,
dominance``. PAD values are drawn uniformly in [-1, 1]; each feature belongs to a group whose
fixed nonlinear function of (P, A, D) (:data:`GROUP_RULES`) is added to the feature's base value
and a per-subject body offset, plus Gaussian noise.
"""

from __future__ import annotations

import csv

import numpy as np

from affectlab.config import StrictModel
from affectlab.data.adapters.lma import LMA_FEATURES
from affectlab.data.synth.base import Progress, SynthRequest, partner_indices, rng_for, subject_id

__all__ = ["FEATURE_GROUPS", "GROUP_RULES", "LmaSynthOptions", "features_from_pad", "write"]

# feature -> (group, base value)
FEATURE_GROUPS: dict[str, tuple[str, float]] = {
    "avg_chest_pelvis_distance": ("body", 0.29),
    "avg_l_elbow_hip_distance": ("reach", 0.34),
    "avg_l_hand_chest_distance": ("reach", 0.42),
    "avg_l_hand_hip_distance": ("reach", 0.40),
    "avg_neck_cnest_distance": ("body", 0.28),
    "avg_neck_rotation_w": ("neck_w", 0.0),
    "avg_neck_rotation_x": ("neck_x", 0.0),
    "avg_neck_rotation_y": ("neck_y", 0.0),
    "avg_neck_rotation_z": ("neck_z", 0.0),
    "avg_r_elbow_hip_distance": ("reach", 0.33),
    "avg_r_hand_chest_distance": ("reach", 0.41),
    "avg_r_hand_hip_distance": ("reach", 0.42),
    "avg_total_body_volume": ("volume", 0.35),
    "avg_triangle_area_feet_hips": ("volume", 0.22),
    "avg_triangle_area_hands_neck": ("volume", 0.18),
    "l_foot_acceleration_magnitude": ("acceleration", 0.20),
    "l_foot_speed": ("speed", 0.25),
    "l_hand_acceleration_magnitude": ("acceleration", 0.30),
    "l_hand_speed": ("speed", 0.32),
    "max_hand_distance": ("reach", 0.48),
    "max_stride_length": ("stride", 0.40),
    "neck_acceleration_magnitude": ("acceleration", 0.12),
    "neck_speed": ("speed", 0.15),
    "r_foot_acceleration_magnitude": ("acceleration", 0.21),
    "r_foot_speed": ("speed", 0.26),
    "r_hand_acceleration_magnitude": ("acceleration", 0.31),
    "r_hand_speed": ("speed", 0.33),
}

# group -> (formula shown in the card, function of (base, P, A, D), noise std)
GROUP_RULES = {
    "speed": ("base * exp(0.9 A + 0.2 P)", lambda b, p, a, d: b * np.exp(0.9 * a + 0.2 * p), 0.02),
    "acceleration": ("base * exp(1.1 A + 0.15 D)", lambda b, p, a, d: b * np.exp(1.1 * a + 0.15 * d), 0.02),
    "reach": (
        "base + 0.10 tanh(1.5 D) + 0.07 tanh(1.5 P) + 0.05 A^2",
        lambda b, p, a, d: b + 0.10 * np.tanh(1.5 * d) + 0.07 * np.tanh(1.5 * p) + 0.05 * a**2,
        0.015,
    ),
    "volume": (
        "base + 0.12 tanh(2 D) + 0.04 A + 0.04 P D",
        lambda b, p, a, d: b + 0.12 * np.tanh(2 * d) + 0.04 * a + 0.04 * p * d,
        0.015,
    ),
    "stride": (
        "base + 0.15 / (1 + exp(-3 A)) + 0.06 D",
        lambda b, p, a, d: b + 0.15 / (1 + np.exp(-3 * a)) + 0.06 * d,
        0.02,
    ),
    "body": ("base + 0.01 D (posture; mostly the subject's body size)", lambda b, p, a, d: b + 0.01 * d, 0.003),
    "neck_x": (
        "-0.15 + 0.12 tanh(1.2 P + 0.8 D) (head raised)",
        lambda b, p, a, d: -0.15 + 0.12 * np.tanh(1.2 * p + 0.8 * d),
        0.02,
    ),
    "neck_y": ("0.08 sin(2 A) (head turning)", lambda b, p, a, d: 0.08 * np.sin(2 * a), 0.02),
    "neck_z": ("0.05 P A (tilt)", lambda b, p, a, d: 0.05 * p * a, 0.02),
    "neck_w": ("sqrt(1 - x^2 - y^2 - z^2) of the noisy x, y, z (unit quaternion)", None, 0.0),
}


class LmaSynthOptions(StrictModel):
    """Options of ``lma`` (none yet)."""


def features_from_pad(pad: np.ndarray, body: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Features (n, 27) in :data:`LMA_FEATURES` order from PAD (n, 3) and subject offsets (n, 27)."""
    p, a, d = pad.T
    out = np.zeros((len(pad), len(LMA_FEATURES)))
    for j, name in enumerate(LMA_FEATURES):
        group, base = FEATURE_GROUPS[name]
        _, func, noise = GROUP_RULES[group]
        if func is not None:
            out[:, j] = func(base, p, a, d) + body[:, j] + rng.normal(0, noise, len(pad))
    x, y, z = (out[:, LMA_FEATURES.index(f"avg_neck_rotation_{c}")] for c in "xyz")
    out[:, LMA_FEATURES.index("avg_neck_rotation_w")] = np.sqrt(np.clip(1 - x**2 - y**2 - z**2, 0, 1))
    return out


def _body_offsets(rng: np.random.Generator) -> np.ndarray:
    """Per-subject offsets: body size scales distances and volumes; none on the neck rotation."""
    size = rng.normal(0, 1)
    offsets = np.zeros(len(LMA_FEATURES))
    for j, name in enumerate(LMA_FEATURES):
        group = FEATURE_GROUPS[name][0]
        if group in ("reach", "volume", "stride", "body"):
            offsets[j] = 0.02 * size + rng.normal(0, 0.005)
    return offsets


def planted(req: SynthRequest) -> dict[str, object]:
    """The card's ``planted:`` mapping."""
    return {
        **req.planted_base(),
        "pad": "pleasure, arousal, dominance each U(-1, 1), independent",
        "feature_rule": "feature = group function of (P, A, D) + subject body offset + N(0, noise)",
        "groups": {g: {"formula": f, "noise_std": n} for g, (f, _, n) in GROUP_RULES.items()},
        "features": {name: {"group": g, "base": b} for name, (g, b) in FEATURE_GROUPS.items()},
        "subject_offsets": "per subject 0.02 * N(0, 1) body size (+ N(0, 0.005)) on distances, volumes, stride",
        "shuffled_control": "with relation=shuffled each clip's PAD labels are those of another clip",
    }


def write(req: SynthRequest, opts: LmaSynthOptions, progress: Progress = None) -> dict[str, object]:
    """Generate the corpus under ``req.out``; return the dataset card (a dict)."""
    rows_pad, rows_feat, ids, subjects = [], [], [], []
    for s in range(req.subjects):
        body = _body_offsets(rng_for(req, s, 0))
        rng = rng_for(req, s, 1)
        pad = rng.uniform(-1, 1, (req.items, 3))
        rows_feat.append(features_from_pad(pad, np.tile(body, (req.items, 1)), rng))
        rows_pad.append(pad)
        ids += [f"{subject_id(s)}_c{k + 1:03d}" for k in range(req.items)]
        subjects += [subject_id(s)] * req.items
        if progress:
            progress(req.items)
    feats, pad = np.concatenate(rows_feat), np.concatenate(rows_pad)
    if req.shuffled:
        pad = pad[partner_indices(len(pad), rng_for(req, 999_999))]
    with open(req.path("lma_features.csv"), "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(["clip_id", "subject", *LMA_FEATURES, "pleasure", "arousal", "dominance"])
        for i, clip in enumerate(ids):
            writer.writerow([clip, subjects[i], *(f"{v:.6f}" for v in feats[i]), *(f"{v:.4f}" for v in pad[i])])
    card = req.card_base("lma", "synthetic LMA body-motion features with PAD labels", {"file": "lma_features.csv"})
    card["planted"] = planted(req)
    return card
