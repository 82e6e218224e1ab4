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
    # Only words that start before the last token ends can overlap a token (the rest were cut off).
    reach = np.flatnonzero(word_spans[:, 0] < ends[usable].max())
    if not reach.size:
        return out
    near = word_spans[reach]
    overlap = np.minimum(ends[:, None], near[None, :, 1]) - np.maximum(starts[:, None], near[None, :, 0])
    best = overlap.argmax(axis=1)
    hit = usable & (overlap[np.arange(n), best] > 0)
    out[hit] = reach[best[hit]]
    return out


def word_attention(
    attention: NDArray[np.floating], token_word: NDArray[np.integer], n_words: int
) -> tuple[NDArray[np.float32], NDArray[np.float32]]:
    """Token attention [L, H, T, T] -> word attention [L, H, W, W] and special share [L, H, W].

    A word with no token gets all-zero rows, columns and share (callers skip it). The result grows with
    the square of ``n_words``; for long inputs use :func:`aligned_word_attention`, bounded by the tokens.
    """
    words, share, present = aligned_word_attention(attention, token_word, n_words)
    lead = words.shape[:2]
    full = np.zeros((*lead, n_words, n_words), dtype=np.float32)
    full[..., present[:, None], present[None, :]] = words
    full_share = np.zeros((*lead, n_words), dtype=np.float32)
    full_share[..., present] = share
    return full, full_share


def aligned_word_attention(
    attention: NDArray[np.floating], token_word: NDArray[np.integer], n_words: int
) -> tuple[NDArray[np.float32], NDArray[np.float32], NDArray[np.intp]]:
    """Word attention over only the words that have tokens: [L, H, K, K], share [L, H, K], and their word ids [K].

    K is at most the number of tokens, so memory is bounded by the model's maximum length however many
    words the text has (words cut off by truncation have no token and are left out).
    """
    att = np.asarray(attention, dtype=np.float32)
    tw = np.asarray(token_word)
    if att.ndim != 4 or att.shape[-1] != att.shape[-2]:
        raise InputError(f"attention must be [layers, heads, T, T], got shape {att.shape}")
    if tw.shape != (att.shape[-1],):
        raise InputError(f"token_word has {tw.shape[0] if tw.ndim else 0} entries for {att.shape[-1]} tokens")
    if n_words < 0 or (tw >= n_words).any():
        raise InputError(f"token_word names a word beyond n_words={n_words}")
    inside = tw >= 0
    present = np.unique(tw[inside]).astype(np.intp)
    t, k = att.shape[-1], present.size
    assign = np.zeros((t, k), dtype=np.float32)  # token -> word membership (present words only)
    assign[np.flatnonzero(inside), np.searchsorted(present, tw[inside])] = 1.0
    pieces = assign.sum(axis=0)
    mean_rows = (assign / np.maximum(pieces, 1.0)).T  # [K, T]: average over a word's pieces
    to_words = att @ assign  # [L, H, T, K]: attention to a word = sum over its pieces
    words = mean_rows @ to_words  # [L, H, K, K]
    outside = (~inside).astype(np.float32)
    share = (att @ outside) @ mean_rows.T  # [L, H, K]
    return np.ascontiguousarray(words, dtype=np.float32), np.ascontiguousarray(share, dtype=np.float32), present
