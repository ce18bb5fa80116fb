"""Character vocabulary of the lip reader (seed 001): characters plus dedicated special ids.

The seed builds its vocabulary as ``sorted(set(corpus))`` over LRS2 transcripts joined with
``"\\n"``: 39 symbols (``'\\n'``, space, apostrophe, digits, A-Z), and then *overloads* ids:
0 (``'\\n'``, a real character) is also the padding value of the frame-wise labels and the CTC
blank (``nn.CTCLoss(blank=0)``), and 39 (one past the 39-way softmax, so it cannot even be
embedded) is the start token (SEED-NOTES A.5.9, A.5.10). Here every role has its own id:

====  =======  ==================================================================
id    name     role
====  =======  ==================================================================
0     PAD      padding of token and frame-label tensors (``ignore_index`` of losses)
1     SOS      fed to the decoder first; never predicted
2     EOS      ends a transcript (replaces the seed's ``'\\n'`` separator)
3     BLANK    the CTC blank of the optional CTC objectives
4...  chars    the characters, in sorted order (as the seed's ``sorted(set(text))``)
====  =======  ==================================================================

The decoder's output ("softmax") layer has one row per id, so cross-entropy, CTC and the
frame-wise objective share one id space; decoding never emits PAD, SOS or BLANK.

The default characters are space, apostrophe, ``0-9`` and ``a-z`` (38): the seed's 39 symbols
minus ``'\\n'`` (EOS does its job), lower-cased (our corpora write lower-case transcripts;
:meth:`CharVocab.normalize` lower-cases and collapses whitespace).
"""

from __future__ import annotations

import re
import string
from collections.abc import Iterable, Sequence

from affectlab.errors import ConfigError, DatasetError

__all__ = ["BLANK_ID", "DEFAULT_CHARS", "EOS_ID", "PAD_ID", "SOS_ID", "SPECIALS", "CharVocab"]

PAD_ID, SOS_ID, EOS_ID, BLANK_ID = 0, 1, 2, 3
SPECIALS = ("<pad>", "<sos>", "<eos>", "<blank>")
DEFAULT_CHARS = "".join(sorted(" '" + string.digits + string.ascii_lowercase))
"""``" '0123456789abcdefghijklmnopqrstuvwxyz"`` (sorted, as the seed sorts its symbol set)."""

_SPACES = re.compile(r"\s+")


class CharVocab:
    """Characters with dedicated PAD / SOS / EOS / BLANK ids (see the module docstring).

    Args:
        chars: The characters, each once; they get ids ``4, 5, ...`` in the given order.

    Raises:
        ConfigError: ``chars`` is empty, repeats a character or holds a non-printable one.
    """

    pad_id = PAD_ID
    sos_id = SOS_ID
    eos_id = EOS_ID
    blank_id = BLANK_ID

    def __init__(self, chars: str = DEFAULT_CHARS) -> None:
        problems = []
        if not isinstance(chars, str) or not chars:
            raise ConfigError(f"vocabulary chars={chars!r}: must be a non-empty string")
        repeated = sorted({c for c in chars if chars.count(c) > 1})
        if repeated:
            problems.append(f"repeated character(s) {repeated!r}")
        bad = sorted({c for c in chars if not c.isprintable() or (c.isspace() and c != " ")})
        if bad:
            problems.append(f"non-printable character(s) {bad!r} (only the plain space may be whitespace)")
        if problems:
            raise ConfigError(f"vocabulary chars={chars!r}: {'; '.join(problems)}")
        self.chars = chars
        self._stoi = {c: i + len(SPECIALS) for i, c in enumerate(chars)}

    @property
    def size(self) -> int:
        """Number of ids: 4 specials plus the characters (42 for the default characters)."""
        return len(SPECIALS) + len(self.chars)

    def __len__(self) -> int:
        return self.size

    def __repr__(self) -> str:
        return f"CharVocab({self.chars!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, CharVocab) and other.chars == self.chars

    def __hash__(self) -> int:
        return hash(self.chars)

    @property
    def special_ids(self) -> tuple[int, ...]:
        """``(PAD, SOS, EOS, BLANK)`` ids."""
        return (PAD_ID, SOS_ID, EOS_ID, BLANK_ID)

    def normalize(self, text: str) -> str:
        """Lower-case (when every vocabulary letter is lower-case), collapse whitespace, strip."""
        if not any(c.isupper() for c in self.chars):
            text = text.lower()
        return _SPACES.sub(" ", text).strip()

    def encode(self, text: str, *, sos: bool = False, eos: bool = False) -> list[int]:
        """Character ids of ``text`` (no normalisation), optionally framed by SOS / EOS.

        Raises:
            DatasetError: ``text`` holds a character outside the vocabulary (the message names
                it, its position and the known characters).
        """
        ids = []
        for pos, char in enumerate(text):
            index = self._stoi.get(char)
            if index is None:
                raise DatasetError(
                    f"transcript {text!r}: character {char!r} (U+{ord(char):04X}) at position {pos} is not "
                    f"in the vocabulary; known characters: {self.chars!r}"
                )
            ids.append(index)
        return ([SOS_ID] if sos else []) + ids + ([EOS_ID] if eos else [])

    def decode(self, ids: Iterable[int], *, stop_at_eos: bool = True) -> str:
        """Text of ``ids``: PAD / SOS / BLANK are skipped; reading stops at the first EOS.

        Raises:
            DatasetError: An id outside ``[0, size)``.
        """
        out = []
        for index in ids:
            index = int(index)
            if index == EOS_ID and stop_at_eos:
                break
            if not 0 <= index < self.size:
                raise DatasetError(f"token id {index} is outside the vocabulary ids 0..{self.size - 1}")
            if index >= len(SPECIALS):
                out.append(self.chars[index - len(SPECIALS)])
        return "".join(out)

    def decode_batch(self, rows: Sequence[Iterable[int]]) -> list[str]:
        """:meth:`decode` of every row (e.g. of a (B, L) tensor's ``tolist()``)."""
        return [self.decode(row) for row in rows]
