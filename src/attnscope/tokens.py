"""Token sequences as a trace keeps them: raw pieces, readable forms, segments, words and offsets."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

# Markers that tokenizers put on pieces: WordPiece continuation, byte-level BPE space, SentencePiece space.
_CONTINUATION = "##"
_SPACE_MARKERS = ("\u0120", "\u2581")  # 'Ġ' (GPT-2 byte-level BPE), '▁' (SentencePiece)
_BYTE_NEWLINE = "\u010a"  # 'Ċ' is GPT-2's byte-level form of '\n'
# The special tokens of common tokenizers (BERT, RoBERTa/BART, GPT-2, T5, XLNet, Llama, Gemma, Qwen, Phi),
# for token lists given as bare strings. A conservative list, not a shape: "<b>" or "[NOTE]" is text.
KNOWN_SPECIAL_TOKENS = frozenset(
    {
        "[CLS]", "[SEP]", "[PAD]", "[MASK]", "[UNK]",
        "<s>", "</s>", "<pad>", "<mask>", "<unk>", "<cls>", "<sep>", "<eod>", "<eop>", "<bos>", "<eos>",
        "<|endoftext|>", "<|begin_of_text|>", "<|end_of_text|>", "<|eot_id|>", "<|start_header_id|>",
        "<|end_header_id|>", "<|im_start|>", "<|im_end|>", "<|end|>", "<|user|>", "<|assistant|>",
        "<|system|>", "<start_of_turn>", "<end_of_turn>",
    }
)  # fmt: skip


def _bytes_to_unicode() -> dict[str, int]:
    """GPT-2's reversible map from bytes to printable characters, inverted (character -> byte)."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAC + 1)) + list(range(0xAE, 0xFF + 1))
    chars = list(printable)
    extra = 0
    for byte in range(256):
        if byte not in printable:
            printable.append(byte)
            chars.append(256 + extra)
            extra += 1
    return {chr(c): b for b, c in zip(printable, chars, strict=True)}


_BYTE_DECODER = _bytes_to_unicode()


def _decode_byte_level(piece: str) -> str | None:
    """Decode a GPT-2 byte-level piece to text, or None if it is not byte-level or not whole UTF-8."""
    if not piece or any(ch not in _BYTE_DECODER for ch in piece):
        return None
    try:
        return bytes(_BYTE_DECODER[ch] for ch in piece).decode("utf-8")
    except UnicodeDecodeError:
        return None


def display_form(raw: str, *, byte_level: bool = False) -> str:
    """A readable form of one raw token: markers removed, bytes decoded, whitespace made visible."""
    text = raw
    if text.startswith(_CONTINUATION) and len(text) > len(_CONTINUATION):
        text = text[len(_CONTINUATION) :]
    elif byte_level:
        decoded = _decode_byte_level(text)
        if decoded is not None:
            text = decoded
    else:
        text = text.replace(_BYTE_NEWLINE, "\n")
        for marker in _SPACE_MARKERS:
            text = text.replace(marker, " ")
    stripped = text.strip(" ")
    if stripped:
        text = stripped
    if not text:
        return raw
    if not text.strip():  # whitespace-only pieces are made visible rather than blank
        return text.replace("\n", "\u23ce").replace("\t", "\u21e5").replace(" ", "\u2423")
    return text


def looks_special(raw: str) -> bool:
    """True for the known special tokens of common models ([CLS], <s>, </s>, <pad>, <|endoftext|>...).

    Used only for token lists given as bare strings (a traced input knows its special tokens exactly);
    anything else shaped like markup, such as "<b>", is ordinary text.
    """
    return raw in KNOWN_SPECIAL_TOKENS


@dataclass(frozen=True, eq=False)
class Tokens:
    """One token sequence: raw pieces, display forms, and per-token special/segment/word/offset arrays.

    ``segment`` is 0 for sentence A and 1 for sentence B; ``word_ids`` numbers words across the whole
    sequence (-1 for special tokens); ``offsets`` are [start, end) character offsets into
    ``texts[segment]`` ((-1, -1) where a token covers no text).
    """

    raw: tuple[str, ...]
    display: tuple[str, ...]
    special: NDArray[np.bool_]
    segment: NDArray[np.int8]
    word_ids: NDArray[np.int32]
    offsets: NDArray[np.int32]
    texts: tuple[str, ...]

    def __post_init__(self) -> None:
        n = len(self.raw)
        shapes = {
            "display": len(self.display),
            "special": self.special.shape,
            "segment": self.segment.shape,
            "word_ids": self.word_ids.shape,
            "offsets": self.offsets.shape,
        }
        expected = {"display": n, "special": (n,), "segment": (n,), "word_ids": (n,), "offsets": (n, 2)}
        if shapes != expected:
            raise ValueError(f"token fields disagree in length: {shapes} for {n} tokens")

    def __len__(self) -> int:
        return len(self.raw)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Tokens):
            return NotImplemented
        return (
            self.raw == other.raw
            and self.display == other.display
            and self.texts == other.texts
            and all(
                np.array_equal(getattr(self, f), getattr(other, f))
                for f in ("special", "segment", "word_ids", "offsets")
            )
        )

    @property
    def labels(self) -> tuple[str, ...]:
        """Display forms with "##" before each piece that continues the word before it ("ship ##wr ##eck ##s").

        WordPiece's own continuation marker, as BertViz shows it, applied to every tokenizer through ``word_ids``;
        ``display`` stays marker-free because it is the text the piece covers.
        """
        out = []
        for i, text in enumerate(self.display):
            word = int(self.word_ids[i])
            continues = i > 0 and word >= 0 and word == int(self.word_ids[i - 1]) and not self.special[i]
            out.append(_CONTINUATION + text if continues and not text.startswith(_CONTINUATION) else text)
        return tuple(out)

    @property
    def sentence_b_start(self) -> int | None:
        """Index of the first token of sentence B (BertViz's ``sentence_b_start``), or None."""
        hits = np.flatnonzero(self.segment == 1)
        return int(hits[0]) if hits.size else None

    @property
    def num_words(self) -> int:
        return int(self.word_ids.max()) + 1 if (self.word_ids >= 0).any() else 0

    def words(self) -> list[str]:
        """The text of each word, cut from the input by character offsets (or joined displays)."""
        out: list[str] = []
        for word in range(self.num_words):
            idx = np.flatnonzero(self.word_ids == word)
            seg = int(self.segment[idx[0]])
            starts, ends = self.offsets[idx, 0], self.offsets[idx, 1]
            if seg < len(self.texts) and (starts >= 0).all():
                out.append(self.texts[seg][int(starts.min()) : int(ends.max())])
            else:
                out.append("".join(self.display[i] for i in idx))
        return out

    @classmethod
    def from_strings(
        cls, raw: Sequence[str], sentence_b_start: int | None = None, *, byte_level: bool | None = None
    ) -> Tokens:
        """Build token fields from bare strings (as BertViz receives them): markers decide words."""
        raw = tuple(str(t) for t in raw)
        n = len(raw)
        if byte_level is None:
            byte_level = any(t.startswith(_SPACE_MARKERS[0]) for t in raw)
        special = np.array([looks_special(t) for t in raw], dtype=bool)
        segment = np.zeros(n, dtype=np.int8)
        if sentence_b_start is not None:
            if not 0 <= sentence_b_start <= n:
                raise ValueError(f"sentence_b_start={sentence_b_start} is outside 0..{n}")
            segment[sentence_b_start:] = 1
        # WordPiece marks continuations ('##'); Ġ/▁ vocabularies mark word starts instead.
        marks_starts = any(t[:1] in _SPACE_MARKERS for t in raw)
        word_ids = np.full(n, -1, dtype=np.int32)
        word = -1
        for i, tok in enumerate(raw):
            if special[i]:
                continue
            after_boundary = i == 0 or bool(special[i - 1]) or segment[i] != segment[i - 1]
            begins = tok[:1] in _SPACE_MARKERS if marks_starts else not tok.startswith(_CONTINUATION)
            if word < 0 or after_boundary or begins:
                word += 1
            word_ids[i] = word
        return cls(
            raw=raw,
            display=tuple(display_form(t, byte_level=byte_level) for t in raw),
            special=special,
            segment=segment,
            word_ids=word_ids,
            offsets=np.full((n, 2), -1, dtype=np.int32),
            texts=(),
        )
