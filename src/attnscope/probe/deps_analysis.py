"""``probe deps`` on the corpus protocol: a partial state of counts, merged exactly, finalized into the report."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from attnscope.corpus.protocol import Analysis, Finalize, TraceInput, fixed_point, from_fixed_point, stack_of
from attnscope.errors import InputError
from attnscope.probe.data import Sentence, SkippedSentence
from attnscope.probe.deps import DepsCounts, sentence_attention

if TYPE_CHECKING:
    from attnscope.traces import ModelInfo, Trace


@dataclass
class DepsState:
    """Counts of a part of the corpus; the special-token share as exact fixed-point sums; where examples came from.

    ``example_at[label]`` is the corpus index of ``counts.examples[label]``: a merge keeps the earlier one,
    so every sharding picks the example a single pass picks (the first short sentence with the label).
    """

    counts: DepsCounts
    share: NDArray[np.int64]
    example_at: dict[str, int] = field(default_factory=dict)


class DepsAnalysis(Analysis[Sentence, DepsState]):
    """Per relation and head, how often the head's attention finds the syntactic head (see :mod:`.deps`)."""

    name = "probe deps"

    def __init__(
        self, max_offset: int = 10, base_labels: bool = False, skipped: Sequence[SkippedSentence] = ()
    ) -> None:
        if max_offset < 1:
            raise InputError(f"--max-offset must be at least 1, got {max_offset}")
        self.max_offset = max_offset
        self.base_labels = base_labels
        self.skipped = tuple(skipped)  # sentences the reader skipped (not one tree): for the report only

    def fingerprint(self) -> dict[str, Any]:
        return {"max_offset": self.max_offset, "base_labels": self.base_labels}

    def inputs(self, item: Sentence) -> TraceInput:
        return TraceInput(item.text)

    def new_state(self, info: ModelInfo) -> DepsState:
        counts = DepsCounts(info.num_layers, info.num_heads, max_offset=self.max_offset, base_labels=self.base_labels)
        return DepsState(counts, np.zeros((info.num_layers, info.num_heads), dtype=np.int64))

    def update(self, state: DepsState, start: int, items: Sequence[Sentence], traces: Sequence[Trace]) -> None:
        for i, (sentence, trace) in enumerate(zip(items, traces, strict=True)):
            att = trace.attention[stack_of(trace.model)]
            words, share, aligned = sentence_attention(trace.tokens, att, sentence)
            known = set(state.counts.examples)
            state.counts.add(sentence, words, None, aligned)
            if aligned.any():
                words_share = np.asarray(share, dtype=np.float64)
                if words_share.shape[-1] != int(aligned.sum()):  # over every word: keep those with tokens
                    words_share = words_share[..., aligned]
                state.share += fixed_point(words_share.sum(-1))
            for label in state.counts.examples.keys() - known:
                state.example_at[label] = start + i

    def merge(self, a: DepsState, b: DepsState) -> DepsState:
        return merge_deps(a, b)

    def finalize(self, state: DepsState, context: Finalize) -> Mapping[str, str | bytes]:
        from attnscope.probe.deps_report import deps_outputs

        return deps_outputs(
            context.model,
            counts_of(state),
            context.data["treebank"],
            context.settings,
            skipped=self.skipped,
            payload=context.payload,
        )


def merge_deps(a: DepsState, b: DepsState) -> DepsState:
    """Add ``b``'s counts into ``a`` (relation labels matched by name) and return ``a``."""
    ca, cb = a.counts, b.counts
    if (ca.num_layers, ca.num_heads, ca.max_offset, ca.base_labels) != (
        cb.num_layers,
        cb.num_heads,
        cb.max_offset,
        cb.base_labels,
    ):
        raise InputError("cannot merge probe deps counts of different models or settings")
    ids = ca._ids(cb.labels)
    ca._correct[..., ids] += cb._correct
    ca._count[ids] += cb._count
    ca._offset[:, ids] += cb._offset
    ca.sentences += cb.sentences
    ca.words += cb.words
    ca.skipped_arcs += cb.skipped_arcs
    a.share += b.share
    for label, at in b.example_at.items():
        if label not in a.example_at or at < a.example_at[label]:
            a.example_at[label] = at
            ca.examples[label] = cb.examples[label]
    return a


def counts_of(state: DepsState) -> DepsCounts:
    """The finished :class:`DepsCounts` of a state (special share converted back from fixed point)."""
    state.counts._share_sum = from_fixed_point(state.share)
    return state.counts


def state_of(counts: DepsCounts) -> DepsState:
    """Earlier counts as a state to merge into (their examples count as coming first)."""
    share = fixed_point(counts._share_sum)
    return DepsState(counts, share, dict.fromkeys(counts.examples, -1))
