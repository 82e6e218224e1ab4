"""Rank heads by example pairs: attention from one word to another (the book's "it -> cat").

Words are cut from each text by the regex ``WORD_PATTERN`` (runs of letters/digits, or one other
non-space character), with the from- and to-spans taken as words whatever they cover; token attention
becomes word attention as in :mod:`attnscope.probe.words` (attention to a word: sum over its tokens;
from a word: mean over its tokens). Per head:

- ``score``: the mean attention from the from-word to the to-word over all examples;
- ``ratio``: that mean divided by the mean, over the same examples, of the head's average attention
  from any word to a word at the same signed distance (to - from, in words) in the sentences seen;
- ``ci``: a seeded percentile bootstrap 95 % interval of ``score`` (resampling examples).

``--from W --to V``: every sentence holding both words (whole words, any case) gives an example per
(from occurrence, to occurrence) pair. The per-example values are kept (one [L, H] array each), so
memory grows with the number of examples, not with the corpus.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from attnscope.errors import InputError
from attnscope.heads.exact import from_units, to_units, zeros
from attnscope.heads.find import FindResult
from attnscope.probe.words import token_to_word, word_attention
from attnscope.traces import Trace

WORD_PATTERN = re.compile(r"\w+|[^\w\s]")
Span = tuple[int, int]
F64 = NDArray[np.float64]


def word_occurrences(text: str, word: str) -> list[Span]:
    """[start, end) spans of ``word`` in ``text`` as a whole word, case-insensitive."""
    if not word.strip():
        raise InputError("the word to look for is empty")
    pattern = re.compile(rf"(?<!\w){re.escape(word.strip())}(?!\w)", re.IGNORECASE)
    return [(m.start(), m.end()) for m in pattern.finditer(text)]


def word_pairs(text: str, from_word: str, to_word: str) -> list[tuple[Span, Span]]:
    """Every (from occurrence, to occurrence) pair of two words in ``text`` that do not overlap."""
    froms, tos = word_occurrences(text, from_word), word_occurrences(text, to_word)
    return [(f, t) for f in froms for t in tos if not overlap(f, t)]


def overlap(a: Span, b: Span) -> bool:
    """True if two [start, end) spans share a character."""
    return a[0] < b[1] and b[0] < a[1]


def sentence_words(text: str, keep: list[Span]) -> list[Span]:
    """Word spans of ``text``: the regex words that do not overlap ``keep``, plus ``keep``, in order."""
    words = [(m.start(), m.end()) for m in WORD_PATTERN.finditer(text)]
    free = [w for w in words if all(w[1] <= s or w[0] >= e for s, e in keep)]
    return sorted(set(free) | set(keep))


@dataclass
class PairScores:
    """Mergeable partial state of the from->to finder (per-example values and distance baselines)."""

    num_layers: int
    num_heads: int
    stack: str
    max_distance: int = 64
    values: list[F64] = field(default_factory=list)
    meta: list[dict[str, Any]] = field(default_factory=list)
    base_sum: NDArray[np.int64] = field(default_factory=lambda: zeros(0))
    base_count: NDArray[np.int64] = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    sentences: int = 0
    skipped_long: int = 0

    def __post_init__(self) -> None:
        width = 2 * self.max_distance + 1
        if self.base_sum.shape != (self.num_layers, self.num_heads, width):
            self.base_sum = zeros(self.num_layers, self.num_heads, width)
            self.base_count = np.zeros(width, dtype=np.int64)

    def update(self, trace: Trace, pairs: list[tuple[Span, Span]], index: int | None = None) -> None:
        """Add one traced sentence and its (from span, to span) examples (character spans in its text)."""
        if self.stack not in trace.attention:
            raise InputError(f"this trace has no {self.stack} attention (its stacks: {', '.join(trace.stacks)})")
        index = self.sentences if index is None else int(index)
        self.sentences += 1
        tokens, _ = trace.sides(self.stack)
        text = tokens.texts[0] if tokens.texts else ""
        keep = sorted({s for pair in pairs for s in pair})
        spans = sentence_words(text, keep)
        tw = token_to_word(tokens, spans)
        words, _ = word_attention(trace.attention[self.stack], tw, len(spans))
        present = np.isin(np.arange(len(spans)), tw)
        self._add_baseline(words.astype(np.float64), present)
        where = {s: i for i, s in enumerate(spans)}
        for k, (f_span, t_span) in enumerate(pairs):
            f, t = where[f_span], where[t_span]
            if not (present[f] and present[t]):
                continue  # a word cut off by truncation
            self.values.append(words[:, :, f, t].astype(np.float64))
            self.meta.append(
                {"index": index, "pair": k, "text": text, "from": list(f_span), "to": list(t_span), "distance": t - f}
            )

    def _add_baseline(self, words: F64, present: NDArray[np.bool_]) -> None:
        idx = np.flatnonzero(present)
        if idx.size < 2:
            return
        d = np.clip(idx[None, :] - idx[:, None], -self.max_distance, self.max_distance) + self.max_distance
        sub = words[:, :, idx[:, None], idx[None, :]]  # [L, H, W, W]
        off = ~np.eye(idx.size, dtype=bool)
        flat_d = d[off]
        self.base_count += np.bincount(flat_d, minlength=self.base_count.size)
        for layer in range(self.num_layers):
            for head in range(self.num_heads):
                sums = np.asarray(np.bincount(flat_d, sub[layer, head][off], self.base_count.size), dtype=np.float64)
                self.base_sum[layer, head] += to_units(sums)

    def merge(self, other: PairScores) -> PairScores:
        """Add another partial state of the same model and stack into this one (returns self)."""
        if (other.num_layers, other.num_heads, other.stack, other.max_distance) != (
            self.num_layers,
            self.num_heads,
            self.stack,
            self.max_distance,
        ):
            raise InputError("cannot merge pair scores of different models or stacks")
        self.values += other.values
        self.meta += other.meta
        self.base_sum += other.base_sum
        self.base_count += other.base_count
        self.sentences += other.sentences
        self.skipped_long += other.skipped_long
        return self

    def finalize(self, *, n_boot: int = 1000, seed: int = 0, query: dict[str, Any] | None = None) -> FindResult:
        """Mean from->to attention per head, its ratio to the distance baseline, a bootstrap 95 % interval."""
        if not self.values:
            raise InputError("no example pair was found: no sentence holds both words (whole words, any case)")
        order = sorted(range(len(self.meta)), key=lambda i: (self.meta[i]["index"], self.meta[i]["pair"]))
        values = np.stack([self.values[i] for i in order])  # [N, L, H]
        meta = [self.meta[i] for i in order]
        mean = values.mean(0)
        dist = np.clip([m["distance"] for m in meta], -self.max_distance, self.max_distance) + self.max_distance
        baseline = np.divide(
            from_units(self.base_sum),
            self.base_count,
            out=np.full(self.base_sum.shape, np.nan),
            where=self.base_count > 0,
        )
        expected = baseline[:, :, dist].mean(-1)
        ratio = np.divide(mean, expected, out=np.full(mean.shape, np.nan), where=expected > 0)
        n = values.shape[0]
        rng = np.random.default_rng(seed)
        counts = np.stack([np.bincount(rng.integers(0, n, n), minlength=n) for _ in range(n_boot)])
        boots = (counts @ values.reshape(n, -1) / n).reshape(n_boot, *mean.shape)
        ci = np.stack([np.percentile(boots, 2.5, axis=0), np.percentile(boots, 97.5, axis=0)], axis=-1)
        best = values.argmax(0)
        return FindResult(
            method="pairs",
            query={
                **(query or {}),
                "stack": self.stack,
                "examples": n,
                "bootstrap": n_boot,
                "seed": seed,
                "skipped_too_long": self.skipped_long,
            },
            scores=mean,
            extras={"ratio": ratio, "ci": ci, "example": best.astype(np.float64)},
            examples=[{k: m[k] for k in ("index", "text", "from", "to", "distance")} for m in meta],
        )
