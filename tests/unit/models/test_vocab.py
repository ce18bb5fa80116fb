"""AU / F0 token vocabularies (seed 000)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from affectlab.errors import ConfigError, DatasetError
from affectlab.models.vocab import AUVocab, F0Vocab, TokenVocab


def test_au_vocab_matches_the_seed_example() -> None:
    vocab = AUVocab.from_step(0.1)
    assert vocab.size == 53 and (vocab.sos_id, vocab.eos_id) == (0, 1)
    assert vocab.id_to_token[2] == 0.0 and vocab.id_to_token[17] == 1.5 and vocab.id_to_token[52] == 5.0


def test_encode_decode_round_trip_and_clipping() -> None:
    vocab = AUVocab.from_step(0.5)
    ids = vocab.encode([[0.2, 0.26, 4.9], [-1.0, 7.0, 2.5]])
    assert ids.tolist() == [[2, 3, 12], [2, 12, 7]]
    decoded = vocab.decode(ids)
    np.testing.assert_allclose(decoded, [[0.0, 0.5, 5.0], [0.0, 5.0, 2.5]])
    assert np.isnan(vocab.decode([0, 1])).all()
    rng = np.random.default_rng(0)
    values = rng.uniform(0, 5, size=200)
    assert np.abs(vocab.decode(vocab.encode(values)) - values).max() <= 0.25 + 1e-9


def test_from_json_mapping_with_string_keys() -> None:
    source = AUVocab.from_step(1.0)
    mapping = json.loads(json.dumps(source.to_mapping()))
    loaded = AUVocab(mapping)
    assert loaded.id_to_token == source.id_to_token and loaded.eos_id == 1
    np.testing.assert_array_equal(loaded.encode([0.4, 3.6]), [2, 6])


def test_f0_vocab_clips_to_50_550() -> None:
    vocab = F0Vocab.from_step(50)
    assert vocab.size == 11 and (vocab.low, vocab.high) == (50.0, 550.0)
    assert vocab.decode(vocab.encode([0.0, 120.0, 900.0])).tolist() == [50.0, 100.0, 550.0]
    with pytest.raises(ConfigError, match="no special token 'SOS'"):
        vocab.special_id("SOS")


def test_invalid_vocabularies_are_config_errors() -> None:
    with pytest.raises(ConfigError, match="without gaps"):
        TokenVocab({0: "SOS", 2: 0.0})
    with pytest.raises(ConfigError, match="id 1 maps to None"):
        TokenVocab({0: 0.0, 1: None})
    with pytest.raises(ConfigError, match="no numeric values"):
        TokenVocab({0: "SOS"})
    with pytest.raises(ConfigError, match="step"):
        AUVocab.from_step(0.0)


def test_bad_values_are_dataset_errors() -> None:
    vocab = AUVocab.from_step(1.0)
    with pytest.raises(DatasetError, match="NaN"):
        vocab.encode([np.nan])
    with pytest.raises(DatasetError, match="0..7"):
        vocab.decode([8])
