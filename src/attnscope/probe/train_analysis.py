"""``probe train``'s feature pass on the corpus protocol: each sentence's word-level features, in corpus order.

The classifier needs every training sentence's features at once, so this state grows with the corpus (what
``--limit`` is for); the fit itself stays in :mod:`attnscope.probe.train`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from attnscope.corpus.protocol import Analysis, TraceInput
from attnscope.probe.data import Sentence
from attnscope.probe.train import ProbeSentence, sentence_features

if TYPE_CHECKING:
    from attnscope.traces import ModelInfo, Trace


@dataclass
class FeatureState:
    """(corpus index, features) of each usable sentence, and how many were skipped (truncated or unaligned)."""

    rows: list[tuple[int, ProbeSentence]] = field(default_factory=list)
    skipped: int = 0

    def features(self) -> list[ProbeSentence]:
        """The features in corpus order."""
        return [feats for _, feats in sorted(self.rows, key=lambda row: row[0])]


class FeatureAnalysis(Analysis[Sentence, FeatureState]):
    """The probe's features: every head's word attention and special-token share, and the gold tree."""

    name = "probe train features"

    def fingerprint(self) -> dict[str, Any]:
        return {"features": "word attention float16, layer-major"}

    def inputs(self, item: Sentence) -> TraceInput:
        return TraceInput(item.text)

    def new_state(self, info: ModelInfo) -> FeatureState:
        return FeatureState()

    def update(self, state: FeatureState, start: int, items: Sequence[Sentence], traces: Sequence[Trace]) -> None:
        for i, (sentence, trace) in enumerate(zip(items, traces, strict=True)):
            stack = "encoder" if trace.model.is_encoder_decoder else None
            feats = sentence_features(trace, sentence, stack)
            if feats is None:
                state.skipped += 1
            else:
                state.rows.append((start + i, feats))

    def merge(self, a: FeatureState, b: FeatureState) -> FeatureState:
        a.rows += b.rows
        a.skipped += b.skipped
        return a
