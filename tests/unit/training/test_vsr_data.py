"""The lip reading data helpers, without a Ray cluster or a corpus: transcript encoding and its
errors, padding and masks of a batch, the seed's frame-wise targets, frame stretching, ROI resizing
(grey and colour, empty blocks), the seeded speaker draw and the word curriculum's segments."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from affectlab.errors import DatasetError
from affectlab.models.vsr_vocab import EOS_ID, PAD_ID, CharVocab
from affectlab.training.vsr_data import (Clip, MouthRows, _drawn_split, collate, encode_transcript, frame_targets,
                                         resize_clip, stretch_indices, word_segments)

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


WORDS = [{"word": "MAMA", "start": 0.2, "end": 0.6}, {"word": "HAS", "start": 0.72, "end": 1.0},
         {"word": "A", "start": 1.08, "end": 1.2}, {"word": "BAT", "start": 1.32, "end": 1.8}]


def _clip(text: str = "mama has a bat", n_frames: int = 50) -> Clip:
    return Clip("s01/00003", "s01", text, tuple(VOCAB.encode(text)), n_frames)


def test_word_segments_cut_every_run_of_words_at_its_timings() -> None:
    singles, outside = word_segments(_clip(), WORDS, 25.0, 1, VOCAB)
    assert outside == {}
    assert [c.sample_id for c in singles] == [f"s01/00003@w{i}-{i}" for i in range(4)]
    assert [c.text for c in singles] == ["mama", "has", "a", "bat"]
    assert [c.span for c in singles] == [(5, 15), (18, 25), (27, 30), (33, 45)]  # seconds x 25 fps
    assert all(c.source == "s01/00003" and c.row_id == "s01/00003" and c.subject == "s01" for c in singles)
    assert [c.n_frames for c in singles] == [10, 7, 3, 12] and VOCAB.decode(singles[3].tokens) == "bat"
    pairs, _ = word_segments(_clip(), WORDS, 25.0, 2, VOCAB)
    assert [(c.text, c.span) for c in pairs] == [("mama has", (5, 25)), ("has a", (18, 30)), ("a bat", (27, 45))]
    whole = _clip()
    assert word_segments(whole, WORDS, 25.0, 4, VOCAB) == ([whole], {})  # no more words than max_words: kept whole
    assert whole.row_id == whole.sample_id and whole.span is None


def test_word_segments_refuse_other_words_and_leave_out_runs_outside_the_clip() -> None:
    with pytest.raises(DatasetError, match=r"clip s01/00003: the timed words \['MAMA', 'HAS', 'A', 'BAT'\] differ "
                                           r"from its transcript 'mama has a cat'"):
        word_segments(_clip("mama has a cat"), WORDS, 25.0, 1, VOCAB)
    kept, outside = word_segments(_clip(n_frames=30), WORDS, 25.0, 1, VOCAB)  # e.g. another clip's timings
    assert [c.text for c in kept] == ["mama", "has", "a"] and kept[2].span == (27, 30)  # cut at the clip's end
    assert outside == {"s01/00003@w3-3": "words ['BAT'] at 1.32-1.8 s fall outside the clip's 30 frames at 25.0 fps"}


def test_mouth_rows_emit_each_word_segment_of_a_row_with_its_own_frames() -> None:
    segments, _ = word_segments(_clip(), WORDS, 25.0, 1, VOCAB)
    video = np.repeat(np.arange(50, dtype=np.uint8)[:, None, None], 96, axis=1).repeat(96, axis=2)  # frame i = i
    row = _rois([video]).set_column(0, "sample_id", pa.array(["s01/00003"]))
    table = MouthRows(segments, 8, None, stretch=False)(row)
    assert table.column("sample_id").to_pylist() == [c.sample_id for c in segments]
    videos = table.column("video").combine_chunks().to_numpy()
    assert [v[:, 0, 0].tolist() for v in videos] == [list(range(a, b)) for a, b in (c.span for c in segments)]
    assert [t.tolist() for t in table.column("tokens").combine_chunks().to_numpy()] == [list(c.tokens) for c in segments]
    assert MouthRows(segments, 8, None, stretch=False)(_rois([video])).num_rows == 0  # another row: no segment
