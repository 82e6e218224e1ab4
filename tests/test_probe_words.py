"""Word-level attention: offset alignment for any tokenizer, Clark et al.'s sum-to / mean-from rule."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import attnscope
from attnscope.errors import InputError
from attnscope.probe.words import token_to_word, word_attention
from attnscope.tokens import Tokens


def _tokens(offsets: list[tuple[int, int]], special: list[bool], text: str) -> Tokens:
    n = len(offsets)
    return Tokens(
        raw=tuple(f"t{i}" for i in range(n)),
        display=tuple(f"t{i}" for i in range(n)),
        special=np.array(special, dtype=bool),
        segment=np.zeros(n, dtype=np.int8),
        word_ids=np.zeros(n, dtype=np.int32),
        offsets=np.array(offsets, dtype=np.int32),
        texts=(text,),
    )


def test_token_to_word_by_offsets() -> None:
    text = "un believable cat"
    # [CLS] un ' ' bel ##iev ##able ' ' cat [SEP]: whitespace-only pieces and special tokens map to -1.
    toks = _tokens(
        [(-1, -1), (0, 2), (2, 3), (3, 6), (6, 9), (9, 13), (13, 14), (14, 17), (-1, -1)],
        [True, False, False, False, False, False, False, False, True],
        text,
    )
    got = token_to_word(toks, [(0, 2), (3, 13), (14, 17)])
    np.testing.assert_array_equal(got, [-1, 0, -1, 1, 1, 1, -1, 2, -1])
    assert got.dtype == np.int32


def test_word_attention_split_rule_and_sums() -> None:
    rng = np.random.default_rng(0)
    att = rng.random((2, 3, 5, 5)).astype(np.float32)
    att /= att.sum(-1, keepdims=True)
    token_word = np.array([-1, 0, 1, 1, -1])  # [CLS] w0 w1a w1b [SEP]
    words, share = word_attention(att, token_word, 2)
    assert words.shape == (2, 3, 2, 2)
    assert share.shape == (2, 3, 2)
    # to a split word: summed over its pieces; from a split word: averaged over its pieces
    np.testing.assert_allclose(words[..., 0, 1], att[..., 1, 2] + att[..., 1, 3], rtol=1e-6)
    np.testing.assert_allclose(words[..., 1, 0], (att[..., 2, 1] + att[..., 3, 1]) / 2, rtol=1e-6)
    np.testing.assert_allclose(
        words[..., 1, 1], (att[..., 2, 2] + att[..., 2, 3] + att[..., 3, 2] + att[..., 3, 3]) / 2, rtol=1e-6
    )
    np.testing.assert_allclose(
        share[..., 1], (att[..., 2, [0, 4]].sum(-1) + att[..., 3, [0, 4]].sum(-1)) / 2, rtol=1e-6
    )
    np.testing.assert_allclose(words.sum(-1) + share, 1.0, atol=1e-6)


def test_word_attention_rejects_bad_shapes() -> None:
    att = np.full((1, 1, 3, 3), 1 / 3, dtype=np.float32)
    with pytest.raises(InputError, match="entries for 3 tokens"):
        word_attention(att, np.array([0, 1]), 2)
    with pytest.raises(InputError, match="beyond n_words"):
        word_attention(att, np.array([0, 1, 2]), 2)
    with pytest.raises(InputError, match="layers, heads"):
        word_attention(att[0], np.array([0, 1, 2]), 3)


@pytest.mark.integration
def test_minilm_words_align_and_rows_sum_to_one(minilm: Any) -> None:
    words = ["Bush", "nominated", "Jennifer", "M.", "Anderson", "for", "a", "15-year", "term", ",", "unbelievably"]
    text = " ".join(words)
    spans, pos = [], 0
    for w in words:
        spans.append((pos, pos + len(w)))
        pos += len(w) + 1
    result = attnscope.trace(minilm, text)
    tw = token_to_word(result.tokens, spans)
    assert (tw[0], tw[-1]) == (-1, -1)  # [CLS], [SEP]
    assert set(tw[1:-1].tolist()) == set(range(len(words)))
    assert np.all(np.diff(tw[1:-1]) >= 0)
    pieces = [result.tokens.display[i] for i in np.flatnonzero(tw == len(words) - 1)]
    assert "".join(pieces) == "unbelievably"
    att, share = word_attention(result.attention["encoder"], tw, len(words))
    assert att.shape == (6, 12, len(words), len(words))
    np.testing.assert_allclose(att.sum(-1) + share, 1.0, atol=1e-5)
    assert (share > 0).all()


def test_pieces_whose_offsets_include_the_space() -> None:
    # Offsets, not '##' markers, decide words; a byte-level or SentencePiece piece may cover its leading space.
    toks = _tokens([(0, 3), (3, 7), (7, 7)], [False, False, False], "the cat")  # 'the', 'Ġcat', zero-width
    np.testing.assert_array_equal(token_to_word(toks, [(0, 3), (4, 7)]), [0, 1, -1])
