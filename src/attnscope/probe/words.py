"""Word-level attention from token attention, aligned through character offsets (any tokenizer).

Clark et al. (2019): attention *to* a word split into pieces is the sum over its pieces; attention
*from* a split word is the mean over its pieces. Tokens outside every word (special tokens such as
[CLS]/[SEP], and the rare piece that covers only whitespace) are left out of word attention; the mass
each word sends to them is returned as ``special_share``, so each word's row plus its share sums to 1.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import NDArray

from attnscope.errors import InputError
from attnscope.tokens import Tokens


def token_to_word(tokens: Tokens, spans: Sequence[tuple[int, int]], segment: int = 0) -> NDArray[np.int32]:
    """Index of the word each token belongs to (-1: special or outside every word), by character overlap.

    ``spans`` are [start, end) offsets of the words in ``tokens.texts[segment]``; a token belongs to the
    word its offsets overlap most (a zero-width token counts as one character wide).
    """
    n = len(tokens)
    out = np.full(n, -1, dtype=np.int32)
    if not len(spans):
        return out
    word_spans = np.asarray(spans, dtype=np.int64).reshape(-1, 2)
    if (word_spans[:, 1] < word_spans[:, 0]).any():
        raise InputError("word spans must have end >= start")
    starts = tokens.offsets[:, 0].astype(np.int64)
    ends = np.maximum(tokens.offsets[:, 1].astype(np.int64), starts + 1)
    usable = (~tokens.special) & (tokens.segment == segment) & (starts >= 0)
    if not usable.any():
        return out
    overlap = np.minimum(ends[:, None], word_spans[None, :, 1]) - np.maximum(starts[:, None], word_spans[None, :, 0])
    best = overlap.argmax(axis=1)
    hit = usable & (overlap[np.arange(n), best] > 0)
    out[hit] = best[hit]
    return out


def word_attention(
    attention: NDArray[np.floating], token_word: NDArray[np.integer], n_words: int
) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
    """Token attention [L, H, T, T] -> word attention [L, H, W, W] and special share [L, H, W].

    A word with no token gets all-zero rows, columns and share (callers skip it).
    """
    att = np.asarray(attention, dtype=np.float32)
    tw = np.asarray(token_word)
    if att.ndim != 4 or att.shape[-1] != att.shape[-2]:
        raise InputError(f"attention must be [layers, heads, T, T], got shape {att.shape}")
    if tw.shape != (att.shape[-1],):
        raise InputError(f"token_word has {tw.shape[0] if tw.ndim else 0} entries for {att.shape[-1]} tokens")
    if n_words < 0 or (tw >= n_words).any():
        raise InputError(f"token_word names a word beyond n_words={n_words}")
    t = att.shape[-1]
    assign = np.zeros((t, n_words), dtype=np.float32)  # token -> word membership
    inside = tw >= 0
    assign[np.flatnonzero(inside), tw[inside]] = 1.0
    pieces = assign.sum(axis=0)
    mean_rows = (assign / np.maximum(pieces, 1.0)).T  # [W, T]: average over a word's pieces
    to_words = att @ assign  # [L, H, T, W]: attention to a word = sum over its pieces
    words = mean_rows @ to_words  # [L, H, W, W]
    outside = (~inside).astype(np.float32)
    share = (att @ outside) @ mean_rows.T  # [L, H, W]
    return np.ascontiguousarray(words, dtype=np.float32), np.ascontiguousarray(share, dtype=np.float32)
