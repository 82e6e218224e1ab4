"""``probe coref`` on the corpus protocol: one small record per item, merged by corpus index, finalized."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from attnscope.corpus.protocol import Analysis, Finalize, TraceInput, stack_of
from attnscope.errors import InputError
from attnscope.probe.coref import SCORES, CorefResult, _overlapping, item_scores, nearest_candidate
from attnscope.probe.data import CorefItem

if TYPE_CHECKING:
    from attnscope.traces import ModelInfo, Trace


@dataclass
class CorefState:
    """Per usable item (corpus index, heads right as packed bits, nearest right, first right, candidates),
    per skipped item (index, id, reason), and the first item's text (the report's example).

    Held-out accuracy splits the items in two halves, so the per-item bits are kept: L x H / 8 bytes an item.
    """

    num_layers: int
    num_heads: int
    rows: list[tuple[int, bytes, bool, bool, int]] = field(default_factory=list)
    skipped: list[tuple[int, str, str]] = field(default_factory=list)
    first: tuple[int, str] | None = None


class CorefAnalysis(Analysis[CorefItem, CorefState]):
    """Per head, how often the pronoun attends more to its antecedent than to the other candidates."""

    name = "probe coref"

    def __init__(self, mention_score: str = "head") -> None:
        if mention_score not in SCORES:
            raise InputError(f"mention_score must be one of {', '.join(SCORES)}, got {mention_score!r}")
        self.mention_score = mention_score

    def fingerprint(self) -> dict[str, Any]:
        return {"mention_score": self.mention_score}

    def inputs(self, item: CorefItem) -> TraceInput:
        return TraceInput(item.text)

    def new_state(self, info: ModelInfo) -> CorefState:
        return CorefState(info.num_layers, info.num_heads)

    def update(self, state: CorefState, start: int, items: Sequence[CorefItem], traces: Sequence[Trace]) -> None:
        for i, (item, trace) in enumerate(zip(items, traces, strict=True)):
            index = start + i
            if state.first is None or index < state.first[0]:
                state.first = (index, item.text)
            if _overlapping(item.candidates):
                state.skipped.append((index, item.id, "candidate mentions overlap"))
                continue
            scores = item_scores(trace.attention[stack_of(trace.model)], trace.tokens, item, self.mention_score)
            if scores is None:
                state.skipped.append((index, item.id, "a mention has no token (cut off by truncation?)"))
                continue
            others = np.delete(scores, item.answer, axis=0)
            right = scores[item.answer] > others.max(axis=0)
            state.rows.append(
                (
                    index,
                    np.packbits(right.ravel()).tobytes(),
                    nearest_candidate(item) == item.answer,
                    item.answer == 0,
                    len(item.candidates),
                )
            )

    def merge(self, a: CorefState, b: CorefState) -> CorefState:
        if (a.num_layers, a.num_heads) != (b.num_layers, b.num_heads):
            raise InputError("cannot merge probe coref states of different models")
        a.rows += b.rows
        a.skipped += b.skipped
        if b.first is not None and (a.first is None or b.first[0] < a.first[0]):
            a.first = b.first
        return a

    def result(self, state: CorefState) -> CorefResult:
        """The :class:`CorefResult` of a finished state, items in corpus order; no usable item is an error."""
        rows = sorted(state.rows)
        skipped = sorted(state.skipped)
        if not rows:
            reasons = "; ".join(f"{i}: {why}" for _, i, why in skipped[:5])
            raise InputError(f"no usable coreference items: all {len(skipped)} were skipped ({reasons})")
        shape = (state.num_layers, state.num_heads)
        size = shape[0] * shape[1]
        bits = np.frombuffer(b"".join(r[1] for r in rows), dtype=np.uint8).reshape(len(rows), -1)
        correct = np.unpackbits(bits, axis=1, count=size).astype(bool).reshape(-1, *shape)
        return CorefResult(
            correct=correct,
            nearest=np.array([r[2] for r in rows], dtype=bool),
            first=np.array([r[3] for r in rows], dtype=bool),
            candidates=np.array([r[4] for r in rows], dtype=np.int64),
            mention_score=self.mention_score,
            skipped=tuple((i, why) for _, i, why in skipped),
        )

    def finalize(self, state: CorefState, context: Finalize) -> Mapping[str, str | bytes]:
        from attnscope.probe.coref import coref_outputs

        example = state.first[1] if state.first is not None else None
        return coref_outputs(
            context.model,
            self.result(state),
            context.data["data"],
            context.settings,
            example=example,
            payload=context.payload,
        )
