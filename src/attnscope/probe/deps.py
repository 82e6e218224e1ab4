"""Which heads find syntactic heads: per-relation accuracy of every attention head (Clark et al. 2019, §4.2).

For each arc (dependent d, head h, relation r) and each attention head, two predictions of h:

- ``dependent->head``: the word d attends to most, other than itself (argmax over i != d of A[d, i]);
- ``head->dependent``: the word that attends to d most, other than d (argmax over i != d of A[i, d]),
  Clark et al.'s "transpose" direction: the head word looking at its dependent.

A is word-level attention (:mod:`attnscope.probe.words`); special tokens never count as predictions.
The baseline predicts h as the word at a fixed offset k from d (h = d + k, k in -K..K, k != 0); the best
k is chosen per relation. Counts accumulate sentence by sentence (:class:`DepsCounts`), so a corpus of any
size runs in the memory of one batch. The "all relations" row counts every arc except ``punct``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from attnscope.errors import InputError
from attnscope.probe.data import Sentence, base_relation
from attnscope.probe.words import aligned_word_attention, token_to_word
from attnscope.tokens import Tokens

if TYPE_CHECKING:
    from attnscope.loading import ModelHandle

DIRECTIONS = ("dependent->head", "head->dependent")
ALL = "all relations"
EXCLUDED_FROM_ALL = frozenset({"punct"})


@dataclass(frozen=True)
class RelationResult:
    """The numbers for one relation (or the "all relations" row)."""

    label: str
    count: int
    accuracy: NDArray[np.float64]  # [2, L, H]: per direction, layer, head
    offset_accuracy: NDArray[np.float64]  # [2K+1] accuracy of each offset -K..K (offset 0 is never right)
    max_offset: int

    @property
    def best(self) -> tuple[int, int, int]:
        """(direction index, layer, head) of the most accurate head (first in order on ties)."""
        d, layer, head = np.unravel_index(int(np.argmax(self.accuracy)), self.accuracy.shape)
        return int(d), int(layer), int(head)

    @property
    def best_accuracy(self) -> float:
        return float(self.accuracy.max())

    @property
    def baseline_offset(self) -> int:
        return int(np.argmax(self.offset_accuracy)) - self.max_offset

    @property
    def baseline_accuracy(self) -> float:
        return float(self.offset_accuracy.max())

    def to_json(self) -> dict[str, Any]:
        """This relation's entry of report.json (0-based layer/head, accuracies in [0, 1])."""
        from attnscope.probe.report import rounded

        d, layer, head = self.best
        return {
            "count": self.count,
            "best_head": [layer, head],
            "direction": DIRECTIONS[d],
            "accuracy": round(self.best_accuracy, 6),
            "baseline_offset": self.baseline_offset,
            "baseline_accuracy": round(self.baseline_accuracy, 6),
            "margin": round(self.best_accuracy - self.baseline_accuracy, 6),
            "per_head": {name: rounded(self.accuracy[i]) for i, name in enumerate(DIRECTIONS)},
        }


@dataclass
class DepsCounts:
    """Running counts for ``probe deps``: per relation, direction, layer and head, how many arcs were right."""

    num_layers: int
    num_heads: int
    max_offset: int = 10
    base_labels: bool = False
    labels: list[str] = field(default_factory=list)
    sentences: int = 0
    words: int = 0
    skipped_arcs: int = 0
    skipped_words: int = 0  # words without tokens (cut off by truncation): never in any attention matrix
    examples: dict[str, Sentence] = field(default_factory=dict)  # one short sentence per relation, for views
    _index: dict[str, int] = field(default_factory=dict)
    _correct: NDArray[np.int64] = field(init=False)  # [2, L, H, R]
    _count: NDArray[np.int64] = field(init=False)  # [R]
    _offset: NDArray[np.int64] = field(init=False)  # [2K+1, R]
    _share_sum: NDArray[np.float64] = field(init=False)  # [L, H]

    def __post_init__(self) -> None:
        if self.max_offset < 1:
            raise InputError(f"max_offset must be at least 1, got {self.max_offset}")
        self._correct = np.zeros((2, self.num_layers, self.num_heads, 0), dtype=np.int64)
        self._count = np.zeros(0, dtype=np.int64)
        self._offset = np.zeros((2 * self.max_offset + 1, 0), dtype=np.int64)
        self._share_sum = np.zeros((self.num_layers, self.num_heads), dtype=np.float64)

    def _ids(self, relations: Sequence[str]) -> NDArray[np.intp]:
        for rel in relations:
            if rel not in self._index:
                self._index[rel] = len(self.labels)
                self.labels.append(rel)
        grow = len(self.labels) - self._count.shape[0]
        if grow:
            self._correct = np.concatenate([self._correct, np.zeros((*self._correct.shape[:3], grow), np.int64)], -1)
            self._count = np.concatenate([self._count, np.zeros(grow, np.int64)])
            self._offset = np.concatenate([self._offset, np.zeros((self._offset.shape[0], grow), np.int64)], -1)
        return np.array([self._index[r] for r in relations], dtype=np.intp)

    def add(
        self,
        sentence: Sentence,
        attention: NDArray[np.floating],
        special_share: NDArray[np.floating] | None = None,
        aligned: NDArray[np.bool_] | None = None,
    ) -> None:
        """Count one sentence given its word attention and which words have tokens (``aligned``).

        ``attention`` is [L, H, K, K] over the K aligned words in order (what :func:`sentence_attention`
        returns; memory bounded by the model's maximum length), or [L, H, W, W] over all W words.
        Words without tokens (cut off by truncation) are counted in ``skipped_words``, their arcs in
        ``skipped_arcs``.
        """
        n = len(sentence.words)
        ok = np.ones(n, dtype=bool) if aligned is None else np.asarray(aligned, dtype=bool)
        if ok.shape != (n,):
            raise InputError(f"aligned has {ok.size} entries for {n} words")
        k = int(ok.sum())
        att = np.asarray(attention)
        share = None if special_share is None else np.asarray(special_share, dtype=np.float64)
        lead = (self.num_layers, self.num_heads)
        if att.shape == (*lead, n, n) and k != n:  # word attention over every word: keep the aligned ones
            att = att[:, :, ok][:, :, :, ok]
            share = None if share is None else share[..., ok]
        if att.shape != (*lead, k, k):
            raise InputError(
                f"word attention of shape {att.shape} does not fit {n} words ({k} with tokens) and "
                f"{self.num_layers} x {self.num_heads} heads"
            )
        position = np.full(n, -1, dtype=np.intp)  # word index -> row/column in att
        position[ok] = np.arange(k)
        heads = np.asarray(sentence.heads, dtype=np.intp)
        deps = np.flatnonzero(heads >= 0)
        usable = ok[deps] & ok[heads[deps]]
        self.skipped_arcs += int((~usable).sum())
        self.skipped_words += n - k
        deps = deps[usable]
        self.sentences += 1
        self.words += k
        if share is not None and k:
            self._share_sum += share.sum(-1)
        if not deps.size:
            return
        rels = [sentence.relations[i] for i in deps]
        labels = [base_relation(r) for r in rels] if self.base_labels else rels
        ids = self._ids(labels)
        if 6 <= n <= 30:
            for label in (*labels, ALL):
                self.examples.setdefault(label, sentence)

        masked = np.array(att, dtype=np.float32, copy=True)  # [L, H, K, K]: aligned words only
        masked[..., np.arange(k), np.arange(k)] = -np.inf  # never predict the word itself
        gold = heads[deps]
        rows, gold_rows = position[deps], position[gold]
        hits = np.stack(
            [
                masked[..., rows, :].argmax(-1) == gold_rows,  # dependent's most-attended word
                masked[..., :, rows].argmax(-2) == gold_rows,  # word attending most to the dependent
            ]
        )  # [2, L, H, A]
        onehot = np.zeros((deps.size, len(self.labels)), dtype=np.float32)
        onehot[np.arange(deps.size), ids] = 1.0
        self._correct += np.rint(hits.astype(np.float32) @ onehot).astype(np.int64)
        np.add.at(self._count, ids, 1)
        offsets = gold - deps
        near = np.abs(offsets) <= self.max_offset
        np.add.at(self._offset, (offsets[near] + self.max_offset, ids[near]), 1)

    def relation(self, label: str) -> RelationResult:
        """The result for one label, or for :data:`ALL` (every arc but punct)."""
        if label == ALL:
            keep = [i for i, lab in enumerate(self.labels) if base_relation(lab) not in EXCLUDED_FROM_ALL]
            correct = self._correct[..., keep].sum(-1)
            count = int(self._count[keep].sum())
            offset = self._offset[:, keep].sum(-1)
        else:
            if label not in self._index:
                raise InputError(f"no arcs with relation {label!r}; known: {', '.join(self.labels)}")
            i = self._index[label]
            correct, count, offset = self._correct[..., i], int(self._count[i]), self._offset[:, i]
        denom = max(count, 1)
        return RelationResult(label, count, correct / denom, offset / denom, self.max_offset)

    def results(self, min_count: int = 1) -> list[RelationResult]:
        """Every relation with at least ``min_count`` arcs, most frequent first, then the "all" row."""
        order = sorted(range(len(self.labels)), key=lambda i: (-int(self._count[i]), self.labels[i]))
        rows = [self.relation(self.labels[i]) for i in order if self._count[i] >= min_count]
        return [*rows, self.relation(ALL)]

    @property
    def special_share(self) -> NDArray[np.float64]:
        """Mean share of a word's attention that goes to special tokens, per layer and head."""
        return self._share_sum / max(self.words, 1)


def sentence_attention(
    trace_tokens: Tokens, attention: NDArray[np.floating], sentence: Sentence
) -> tuple[NDArray[np.float32], NDArray[np.float32], NDArray[np.bool_]]:
    """Word attention [L, H, K, K] and special share [L, H, K] over the K words that have tokens, and the
    aligned-word mask [W] of one traced sentence (what :meth:`DepsCounts.add` takes).

    Words cut off by truncation have no token and are left out, so memory is bounded by the model's
    maximum length, not by the sentence's length.
    """
    tw = token_to_word(trace_tokens, sentence.spans)
    words, share, present = aligned_word_attention(attention, tw, len(sentence.words))
    aligned = np.zeros(len(sentence.words), dtype=bool)
    aligned[present] = True
    return words, share, aligned


def probe_deps(
    handle: ModelHandle,
    sentences: Iterable[Sentence],
    *,
    batch_size: int = 16,
    max_offset: int = 10,
    base_labels: bool = False,
    progress: bool | None = None,
    counts: DepsCounts | None = None,
) -> DepsCounts:
    """Trace every sentence (batched, streaming) and count, per head and relation, how often it finds the head.

    Sentences longer than the model accepts are truncated; words cut off are skipped (``skipped_words``, their
    arcs ``skipped_arcs``), and memory stays bounded by the model's maximum length.
    Pass ``counts`` to keep adding to earlier counts (e.g. over several files). Runs the ``probe deps``
    corpus analysis (:mod:`attnscope.probe.deps_analysis`) on the local engine.
    """
    from attnscope.corpus.driver import run_analysis
    from attnscope.corpus.engines import LocalEngine
    from attnscope.probe.deps_analysis import DepsAnalysis, counts_of, merge_deps, state_of

    info = handle.info
    if counts is not None:
        if (counts.num_layers, counts.num_heads) != (info.num_layers, info.num_heads):
            raise InputError(
                f"counts are for {counts.num_layers} x {counts.num_heads} heads, the model has "
                f"{info.num_layers} x {info.num_heads}"
            )
        max_offset, base_labels = counts.max_offset, counts.base_labels
    analysis = DepsAnalysis(max_offset=max_offset, base_labels=base_labels)
    with LocalEngine().open(handle) as session:
        state = run_analysis(analysis, sentences, session, batch_size=batch_size, progress=progress)
    if counts is not None:
        state = merge_deps(state_of(counts), state)
    return counts_of(state)
