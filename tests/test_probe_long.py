"""probe deps on a sentence far longer than the model accepts: memory bounded by the tokens, cut words counted."""

from __future__ import annotations

import tracemalloc

import numpy as np

from attnscope.probe.data import Sentence
from attnscope.probe.deps import DepsCounts, sentence_attention
from attnscope.probe.words import word_attention
from attnscope.tokens import Tokens

LAYERS, HEADS, TOKENS = 2, 4, 130


def _long_sentence(n: int) -> Sentence:
    words = tuple(f"w{i}" for i in range(n))
    spans, pos = [], 0
    for w in words:
        spans.append((pos, pos + len(w)))
        pos += len(w) + 1
    heads = (*range(1, n), -1)  # a chain: every word's head is the next word
    return Sentence(words, heads, ("dep",) * n, " ".join(words), tuple(spans))


def _truncated_trace(sentence: Sentence) -> tuple[Tokens, np.ndarray]:
    """[CLS], one token per word for the first TOKENS - 2 words, [SEP]: what truncation leaves."""
    kept = TOKENS - 2
    raw = ("[CLS]", *sentence.words[:kept], "[SEP]")
    offsets = np.array([(-1, -1), *sentence.spans[:kept], (-1, -1)], dtype=np.int32)
    tokens = Tokens(
        raw=raw,
        display=raw,
        special=np.array([True, *[False] * kept, True]),
        segment=np.zeros(TOKENS, dtype=np.int8),
        word_ids=np.array([-1, *range(kept), -1], dtype=np.int32),
        offsets=offsets,
        texts=(sentence.text,),
    )
    rng = np.random.default_rng(0)
    att = rng.random((LAYERS, HEADS, TOKENS, TOKENS)).astype(np.float32)
    return tokens, att / att.sum(-1, keepdims=True)


def test_memory_is_bounded_by_the_tokens_not_the_words() -> None:
    sentence = _long_sentence(5000)
    tokens, att = _truncated_trace(sentence)
    counts = DepsCounts(LAYERS, HEADS)
    tracemalloc.start()
    try:
        words, share, aligned = sentence_attention(tokens, att, sentence)
        counts.add(sentence, words, share, aligned)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # Word attention over all 5,000 words would be 2 x 4 x 5000^2 x 4 bytes = 800 MB, twice over.
    assert peak < 8 * 1024 * 1024, f"peak {peak / 2**20:.1f} MiB"  # 1565 MiB before the fix, 3.2 after
    assert words.shape == (LAYERS, HEADS, TOKENS - 2, TOKENS - 2)
    assert counts.skipped_words == 5000 - (TOKENS - 2)
    assert counts.words == TOKENS - 2
    assert counts.skipped_arcs == 5000 - (TOKENS - 2)  # the last kept word's head was cut off, and every later arc
    assert int(counts.relation("dep").count) == TOKENS - 3


def test_counts_equal_those_from_full_word_attention() -> None:
    sentence = _long_sentence(300)
    tokens, att = _truncated_trace(sentence)
    compact, compact_share, aligned = sentence_attention(tokens, att, sentence)
    from attnscope.probe.words import token_to_word

    full, full_share = word_attention(att, token_to_word(tokens, sentence.spans), len(sentence.words))
    a, b = DepsCounts(LAYERS, HEADS), DepsCounts(LAYERS, HEADS)
    a.add(sentence, compact, compact_share, aligned)
    b.add(sentence, full, full_share, aligned)
    ra, rb = a.relation("dep"), b.relation("dep")
    assert ra.count == rb.count == TOKENS - 3
    np.testing.assert_array_equal(ra.accuracy, rb.accuracy)
    np.testing.assert_allclose(a.special_share, b.special_share)
    assert a.skipped_words == b.skipped_words == 300 - (TOKENS - 2)
