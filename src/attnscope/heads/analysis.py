"""``attnscope heads`` and ``attnscope find`` on the corpus protocol: the partial states of this package
as :class:`attnscope.corpus.protocol.Analysis` classes, so they run locally or on Ray, with checkpoints.

Texts cut to the model's length are left out and counted (``skipped_too_long``) unless ``truncate``.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from attnscope.corpus.protocol import Analysis, Finalize, TraceInput
from attnscope.heads.atlas import AtlasState
from attnscope.heads.find import FindResult, PatternScores
from attnscope.heads.pairs import PairScores, Span, word_pairs
from attnscope.heads.rows import resolve_stack

if TYPE_CHECKING:
    from attnscope.corpus.readers import TextItem
    from attnscope.traces import ModelInfo, Trace


def _header(analysis: str, context: Finalize) -> dict[str, Any]:
    info = context.model.info
    return {
        "analysis": analysis,
        "model_info": {
            "name": context.model.name,
            "architecture": info.architecture,
            "num_layers": info.num_layers,
            "num_heads": info.num_heads,
        },
        "data": {key: str(path) for key, path in context.data.items()},
        "settings": dict(context.settings),
    }


def report_json(report: Mapping[str, Any]) -> str:
    """report.json's text: the report as indented JSON (no NaN: missing numbers are null)."""
    return json.dumps(report, indent=1, allow_nan=False) + "\n"


class HeadsAnalysis(Analysis["TextItem", AtlasState]):
    """The head atlas over a corpus (see :mod:`attnscope.heads.atlas`)."""

    name = "heads"

    def __init__(
        self, stack: str | None = None, max_offset: int = 5, js_sentences: int = 1000, truncate: bool = False
    ) -> None:
        self.stack, self.max_offset, self.js_sentences, self.truncate = stack, max_offset, js_sentences, truncate

    def fingerprint(self) -> dict[str, Any]:
        return {"stack": self.stack, "max_offset": self.max_offset, "js_sentences": self.js_sentences,
                "truncate": self.truncate}  # fmt: skip

    def inputs(self, item: TextItem) -> TraceInput:
        return item.inputs()

    def new_state(self, info: ModelInfo) -> AtlasState:
        return AtlasState.for_model(info, self.stack, max_offset=self.max_offset, js_sentences=self.js_sentences)

    def update(self, state: AtlasState, start: int, items: Sequence[TextItem], traces: Sequence[Trace]) -> None:
        for i, trace in enumerate(traces):
            if trace.truncated and not self.truncate:
                state.skipped_long += 1
            else:
                state.update(trace, start + i)

    def merge(self, a: AtlasState, b: AtlasState) -> AtlasState:
        return a.merge(b)

    def finalize(self, state: AtlasState, context: Finalize) -> Mapping[str, str | bytes]:
        from attnscope.heads.report import heads_files

        report = {**state.finalize().to_json(), **_header(self.name, context)}
        return {"report.json": report_json(report), **heads_files(report), **atlas_page(report, context)}


def atlas_page(report: Mapping[str, Any], context: Finalize) -> dict[str, str]:
    """index.html: the atlas view of the report, a click opening the head view of each head's example
    sentence (payloads made where the model lives); nothing when the view bundle is not built."""
    from attnscope.probe.page import view_bundle

    if view_bundle() is None:
        return {}
    from attnscope.views.atlas import atlas_view, example_inputs

    examples = sorted(example_inputs(report).items()) if context.payload is not None else []
    traces = {index: context.payload(text) for index, (text, _) in examples} if context.payload else {}
    return {"index.html": atlas_view(dict(report), traces=traces).to_html()}


class PatternAnalysis(Analysis["TextItem", PatternScores]):
    """``find --pattern`` over a corpus: TransformerLens-style "mul" scores (see :mod:`attnscope.heads.find`)."""

    name = "find pattern"

    def __init__(
        self,
        pattern: str,
        matrix: np.ndarray | None = None,
        stack: str | None = None,
        exclude_bos: bool = False,
        exclude_current_token: bool = False,
        truncate: bool = False,
    ) -> None:
        self.pattern, self.matrix, self.stack, self.truncate = pattern, matrix, stack, truncate
        self.exclude_bos, self.exclude_current_token = exclude_bos, exclude_current_token

    def fingerprint(self) -> dict[str, Any]:
        matrix = None if self.matrix is None else np.asarray(self.matrix).round(9).tolist()
        return {"pattern": self.pattern, "matrix": matrix, "stack": self.stack, "exclude_bos": self.exclude_bos,
                "exclude_current_token": self.exclude_current_token, "truncate": self.truncate}  # fmt: skip

    def inputs(self, item: TextItem) -> TraceInput:
        return item.inputs()

    def new_state(self, info: ModelInfo) -> PatternScores:
        return PatternScores(
            info.num_layers, info.num_heads, resolve_stack(info, self.stack), self.pattern, self.matrix,
            exclude_bos=self.exclude_bos, exclude_current_token=self.exclude_current_token,
        )  # fmt: skip

    def update(self, state: PatternScores, start: int, items: Sequence[TextItem], traces: Sequence[Trace]) -> None:
        for i, trace in enumerate(traces):
            if trace.truncated and not self.truncate:
                state.skipped_long += 1
            else:
                state.update(trace, start + i)

    def merge(self, a: PatternScores, b: PatternScores) -> PatternScores:
        return a.merge(b)

    def finalize(self, state: PatternScores, context: Finalize) -> Mapping[str, str | bytes]:
        return find_report(state.finalize(), self.name, context)


@dataclass(frozen=True)
class PairItem:
    """One text and its (from span, to span) examples, character offsets into the text."""

    text: str
    pairs: tuple[tuple[Span, Span], ...]
    index: int = 0  # the text's number in its file (reports point back to it)

    def inputs(self) -> TraceInput:
        return TraceInput(self.text)


def items_with_words(items: Iterable[TextItem], from_word: str, to_word: str) -> Iterator[PairItem]:
    """The texts holding both words, each with every (from, to) occurrence pair."""
    for index, item in enumerate(items):
        pairs = word_pairs(item.text, from_word, to_word)
        if pairs:
            yield PairItem(item.text, tuple(pairs), index)


class PairAnalysis(Analysis[PairItem, PairScores]):
    """``find --from/--to`` or a pairs file: mean from->to attention, its ratio to distance, bootstrap interval."""

    name = "find pairs"

    def __init__(
        self, query: Mapping[str, Any], stack: str | None = None, n_boot: int = 1000, seed: int = 0,
        truncate: bool = False,
    ) -> None:  # fmt: skip
        self.query, self.stack, self.n_boot, self.seed, self.truncate = dict(query), stack, n_boot, seed, truncate

    def fingerprint(self) -> dict[str, Any]:
        return {"query": self.query, "stack": self.stack, "truncate": self.truncate}

    def inputs(self, item: PairItem) -> TraceInput:
        return item.inputs()

    def new_state(self, info: ModelInfo) -> PairScores:
        return PairScores(info.num_layers, info.num_heads, resolve_stack(info, self.stack))

    def update(self, state: PairScores, start: int, items: Sequence[PairItem], traces: Sequence[Trace]) -> None:
        for item, trace in zip(items, traces, strict=True):
            if trace.truncated and not self.truncate:
                state.skipped_long += 1
            else:
                state.update(trace, list(item.pairs), item.index)

    def merge(self, a: PairScores, b: PairScores) -> PairScores:
        return a.merge(b)

    def finalize(self, state: PairScores, context: Finalize) -> Mapping[str, str | bytes]:
        result = state.finalize(n_boot=self.n_boot, seed=self.seed, query=self.query)
        return find_report(result, self.name, context)


def find_report(result: FindResult, analysis: str, context: Finalize) -> dict[str, str | bytes]:
    """The files of a finished ``find``: report.json (``ranking`` best first, layers and heads 0-based),
    report.md and the score grid PNG."""
    from attnscope.heads.report import find_files

    report = {**result.to_json(), **_header(analysis, context)}
    return {"report.json": report_json(report), **find_files(report)}
