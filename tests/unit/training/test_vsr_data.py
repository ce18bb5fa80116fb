"""The lip reading data helpers, without a Ray cluster or a corpus: transcript encoding and its
errors, padding and masks of a batch, the seed's frame-wise targets, frame stretching, ROI resizing
(grey and colour, empty blocks) and the seeded speaker draw."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from affectlab.errors import DatasetError
from affectlab.models.vsr_vocab import EOS_ID, PAD_ID, CharVocab
from affectlab.training.vsr_data import (Clip, MouthRows, _drawn_split, collate, encode_transcript, frame_targets,
                                         resize_clip, stretch_indices)

VOCAB = CharVocab()


def test_transcripts_are_normalised_and_an_unknown_character_names_the_clip() -> None:
    text, ids = encode_transcript(VOCAB, "  Mama  HAS a bat ", "s01/00002")
    assert text == "mama has a bat" and VOCAB.decode(ids) == text and len(ids) == len(text)
    with pytest.raises(DatasetError, match=r"clip s02/00007: transcript 'caf\u00e9'.*character '\u00e9'"):
        encode_transcript(VOCAB, "CAF\u00c9", "s02/00007")
    with pytest.raises(DatasetError, match=r"clip s03/00001: empty transcript"):
        encode_transcript(VOCAB, "   ", "s03/00001")


def test_collate_pads_videos_and_tokens_and_marks_the_real_frames() -> None:
    videos = [np.full((3, 4, 4), 7, np.uint8), np.full((5, 4, 4), 9, np.uint8)]
    tokens = [np.array([10, 11]), np.array([12, 13, 14, 15])]
    out = collate({"video": videos, "tokens": tokens})
    assert out["video"].shape == (2, 5, 4, 4) and out["video"].dtype == np.uint8
    assert out["mask"].tolist() == [[True] * 3 + [False] * 2, [True] * 5]
    assert out["frames"].tolist() == [3, 5] and out["token_lengths"].tolist() == [2, 4]
    assert (out["video"][0, 3:] == 0).all() and (out["video"][0, :3] == 7).all()
    assert out["tokens"].tolist() == [[10, 11, PAD_ID, PAD_ID], [12, 13, 14, 15]]
    assert set(collate({"tokens": tokens})) == {"tokens", "token_lengths"}  # stage 1: transcripts only
    with pytest.raises(DatasetError, match="different frame sizes"):
        collate({"video": [videos[0], np.zeros((2, 8, 8), np.uint8)], "tokens": tokens})


def test_frame_targets_follow_the_seeds_right_padding_to_the_frame_count() -> None:
    # the seed's logged example: 9 characters padded to 12 frames
    chars = np.array([VOCAB.encode("newcastle") + [PAD_ID] * 3])
    target = frame_targets(chars, np.array([9]), np.array([12]), 14)
    assert target[0].tolist() == VOCAB.encode("newcastle") + [EOS_ID] * 3 + [PAD_ID] * 2  # 2 batch-padding frames
    ignored = frame_targets(chars, np.array([9]), np.array([12]), 12, pad="ignore")
    assert ignored[0].tolist() == VOCAB.encode("newcastle") + [PAD_ID] * 3
    batch = frame_targets(np.array([[20, 21, 22], [23, PAD_ID, PAD_ID]]), np.array([3, 1]), np.array([4, 2]), 4)
    assert batch.tolist() == [[20, 21, 22, EOS_ID], [23, EOS_ID, PAD_ID, PAD_ID]]
    with pytest.raises(ValueError, match=r"fewer frames than characters \(\[2\] < \[3\]\); stretch them first"):
        frame_targets(np.array([[20, 21, 22]]), np.array([3]), np.array([2]), 3)


def test_a_clip_shorter_than_its_transcript_is_stretched_to_one_frame_per_character() -> None:
    idx = stretch_indices(5, 8)
    assert len(idx) == 8 and sorted(set(idx.tolist())) == [0, 1, 2, 3, 4] and (np.diff(idx) >= 0).all()
    assert stretch_indices(6, 4).tolist() == [0, 1, 2, 3, 4, 5]  # enough frames: unchanged


def test_mouth_rois_are_centre_cropped_and_resized_by_area() -> None:
    video = np.zeros((2, 96, 96), np.uint8)
    video[:, 48:, :] = 200  # bottom half bright
    small = resize_clip(video, 32)
    assert small.shape == (2, 32, 32) and small.dtype == np.uint8
    assert (small[:, :16] == 0).all() and (small[:, 16:] == 200).all()
    cropped = resize_clip(video, 44, crop=88)
    assert cropped.shape == (2, 44, 44) and (cropped[:, 22:] == 200).all() and (cropped[:, :22] == 0).all()
    rgb = resize_clip(np.full((1, 96, 96, 3), 50, np.uint8), 24)
    assert rgb.shape == (1, 24, 24, 3) and (rgb == 50).all()


def test_the_seeded_speaker_draw_is_disjoint_reproducible_and_refuses_too_few_speakers() -> None:
    speakers = [f"s{i:02d}" for i in range(1, 13)]
    a, b = _drawn_split(speakers, 0.15, 0.15, 3), _drawn_split(speakers, 0.15, 0.15, 3)
    assert a == b and (len(a.train), len(a.val), len(a.test)) == (8, 2, 2)
    assert sorted(a.train + a.val + a.test) == speakers
    assert _drawn_split(speakers, 0.15, 0.15, 4) != a
    assert _drawn_split(speakers, 0.2, 0.0, 0).test == ()
    with pytest.raises(DatasetError, match=r"2 speaker\(s\).*too few"):
        _drawn_split(["s01", "s02"], 0.3, 0.3, 0)


def _rois(cells: list[np.ndarray]) -> pa.Table:
    kind = pa.list_(pa.list_(pa.list_(pa.uint8()))) if not cells or cells[0].ndim == 3 else \
        pa.list_(pa.list_(pa.list_(pa.list_(pa.uint8()))))
    return pa.table({"sample_id": pa.array([f"s01/{i:05d}" for i in range(len(cells))], pa.string()),
                     "mouth": pa.array([c.tolist() for c in cells], kind)})


def test_mouth_rows_resize_grey_or_colour_rois_and_keep_their_schema_when_empty() -> None:
    clips = [Clip("s01/00000", "s01", "ab", (5, 6), 3), Clip("s01/00001", "s01", "abcdef", tuple(range(6, 12)), 4)]
    rows = MouthRows(clips, 16, None, stretch=True)
    grey = rows(_rois([np.full((3, 96, 96), 80, np.uint8), np.full((4, 96, 96), 10, np.uint8)]))
    videos = grey.column("video").combine_chunks().to_numpy()
    assert [v.shape for v in videos] == [(3, 16, 16), (6, 16, 16)]  # 4 frames stretched to the 6 characters
    assert grey.column("n_frames").to_pylist() == [3, 6] and (videos[0] == 80).all()
    colour = rows(_rois([np.full((3, 96, 96, 3), (255, 0, 0), np.uint8)]))
    assert (colour.column("video").combine_chunks().to_numpy()[0] == 76).all()  # luma of pure red
    assert rows(_rois([])).schema.equals(grey.schema)
