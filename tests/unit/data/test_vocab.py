"""AU / F0 token vocabularies (seed 000): ids <-> values through :mod:`affectlab.data.labels`.

The vocabularies are the dicts preprocessing writes to ``vocab.json`` (``au_vocab`` /
``f0_vocab``); ``quantize_*`` encode, ``vocab_values`` / ``decode_ids`` / ``special_id`` read them.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from affectlab.data.labels import (
    IGNORE_ID,
    au_vocab,
    decode_ids,
    f0_vocab,
    quantize_au,
    quantize_f0,
    special_id,
    vocab_values,
)
from affectlab.errors import ConfigError, DatasetError


def test_au_vocab_matches_the_seed_example() -> None:
    ids = au_vocab(0.1)["ID_to_AU"]
    values = vocab_values(ids)
    assert len(values) == 53 and (special_id(ids, "SOS"), special_id(ids, "EOS")) == (0, 1)
    assert values[2] == 0.0 and values[17] == 1.5 and values[52] == 5.0


def test_encode_decode_round_trip_and_clipping() -> None:
    values = vocab_values(au_vocab(0.5)["ID_to_AU"])
    ids = quantize_au(np.array([[0.2, 0.26, 4.9], [-1.0, 7.0, 2.5]]), 0.5)[1]
    assert ids.tolist() == [[2, 3, 12], [2, 12, 7]]
    decoded = decode_ids(ids, values)
    np.testing.assert_allclose(decoded, [[0.0, 0.5, 5.0], [0.0, 5.0, 2.5]])
    assert np.isnan(decode_ids([0, 1], values)).all()  # SOS, EOS
    rng = np.random.default_rng(0)
    x = rng.uniform(0, 5, size=200)
    assert np.abs(decode_ids(quantize_au(x, 0.5)[1], values) - x).max() <= 0.25 + 1e-9


def test_from_json_mapping_with_string_keys() -> None:
    source = au_vocab(1.0)["ID_to_AU"]
    mapping = json.loads(json.dumps(source))  # keys become "0", "1", ...
    assert all(isinstance(k, str) for k in mapping)
    np.testing.assert_array_equal(vocab_values(mapping), vocab_values(source))
    assert special_id(mapping, "EOS") == 1
    np.testing.assert_array_equal(decode_ids(quantize_au(np.array([0.4, 3.6]), 1.0)[1], vocab_values(mapping)),
                                  [0.0, 4.0])


def test_f0_vocab_clips_to_50_550() -> None:
    ids = f0_vocab(50.0)["ID_to_F0"]
    values = vocab_values(ids)
    assert len(values) == 3 + 11 and (np.nanmin(values), np.nanmax(values)) == (50.0, 550.0)
    assert special_id(ids, "UNVOICED") == 2
    decoded = decode_ids(quantize_f0(np.array([30.0, 120.0, 900.0, 0.0]), 50.0), values)
    assert decoded[:3].tolist() == [50.0, 100.0, 550.0] and np.isnan(decoded[3])  # 0 Hz: unvoiced
    with pytest.raises(ConfigError, match="no special token 'PAD'"):
        special_id(ids, "PAD")


def test_invalid_vocabularies_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="without gaps"):
        vocab_values({0: "SOS", 2: 0.0})
    with pytest.raises(ConfigError, match="id 1 maps to None"):
        vocab_values({0: 0.0, 1: None})
    with pytest.raises(ConfigError, match="no numeric values"):
        vocab_values({0: "SOS"})
    with pytest.raises(ConfigError, match="ids must be integers"):
        vocab_values({"a": 0.0})
    with pytest.raises(ConfigError, match="au_step"):
        au_vocab(0.0)


def test_missing_labels_and_bad_ids() -> None:
    values = vocab_values(au_vocab(1.0)["ID_to_AU"])
    # a missing label (NaN) is no token: IGNORE_ID, which decodes back to NaN
    ids = quantize_au(np.array([np.nan, 2.0]), 1.0)[1]
    assert ids.tolist() == [IGNORE_ID, 4]
    assert np.isnan(decode_ids(ids, values)[0]) and decode_ids(ids, values)[1] == 2.0
    with pytest.raises(DatasetError, match=r"0\.\.7 .*got \[8\]"):
        decode_ids([8], values)
    with pytest.raises(DatasetError, match=r"got \[-3\]"):
        decode_ids([-3], values)
