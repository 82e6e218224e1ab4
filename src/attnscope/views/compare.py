"""The comparison view: two traces side by side and their difference B − A for aligned tokens.

Its subject is a :class:`Comparison` of two traces (two sentences of a minimal pair on one model, an
input and its masked or edited copy, or one text on two models). Tokens are aligned by
:class:`difflib.SequenceMatcher` over the token labels: equal runs pair up; a replaced run pairs its
tokens place by place (a masked token pairs with the token it masks; where one run is longer, its extra
tokens have no partner); inserted and removed tokens have no partner. The difference is defined where
the query token and the key token both have a partner: B's weight minus A's (red: more attention in B,
blue: less).

Layers and heads: the comparison shows the layers and heads both traces have (0 .. the smaller count - 1),
and the page and picture say so when the two models differ. Heads of two different models are not the
same heads, so their difference means most between a model and its fine-tuned copy or on one model.

The payload carries each trace as an ordinary heatmap payload (the same attention blobs as every view)
plus the alignment; the page computes the difference from them. :func:`compare_view` returns a
:class:`CompareView`, which saves and displays like every view (``.save(.html/.png/.svg)``, notebook).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from difflib import SequenceMatcher
from typing import Any, Literal

import numpy as np
from numpy.typing import NDArray

from attnscope.errors import InputError
from attnscope.traces import Trace
from attnscope.views.objects import SubjectView, _as_indices, _as_int
from attnscope.views.options import Theme, ViewOptions
from attnscope.views.payload import (
    PRECISIONS,
    CompareAlignment,
    ComparePayload,
    Payload,
    Precision,
    build_payload,
    subject_payload,
)
from attnscope.views.resolve import resolve

Kind = Literal["equal", "replace", "delete", "insert"]
Head = int | Literal["start"] | None  # a head, the mean of the compared heads (None), or the start choice


@dataclass(frozen=True)
class Alignment:
    """Tokens of A and B in one merged order: per position, A's token index and B's (-1: no partner) and its
    kind ("equal", "replace": paired but different, "delete": only in A, "insert": only in B)."""

    a: tuple[int, ...]
    b: tuple[int, ...]
    kinds: tuple[Kind, ...]

    @property
    def pairs(self) -> list[tuple[int, int]]:
        """The (A index, B index) of every paired position, in order."""
        return [(i, j) for i, j in zip(self.a, self.b, strict=True) if i >= 0 and j >= 0]

    def as_payload(self) -> CompareAlignment:
        """The JSON form the page reads."""
        return {"a": list(self.a), "b": list(self.b), "kind": list(self.kinds)}


def align_tokens(a: Sequence[str], b: Sequence[str]) -> Alignment:
    """Align two token sequences (difflib.SequenceMatcher, no junk heuristic); replaced runs pair place by place."""
    out_a: list[int] = []
    out_b: list[int] = []
    kinds: list[Kind] = []

    def add(i: int, j: int, kind: Kind) -> None:
        out_a.append(i)
        out_b.append(j)
        kinds.append(kind)

    matcher = SequenceMatcher(None, list(a), list(b), autojunk=False)
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        paired = min(i2 - i1, j2 - j1) if tag in ("equal", "replace") else 0
        for k in range(paired):
            add(i1 + k, j1 + k, "equal" if tag == "equal" else "replace")
        for i in range(i1 + paired, i2):
            add(i, -1, "delete")
        for j in range(j1 + paired, j2):
            add(-1, j, "insert")
    return Alignment(tuple(out_a), tuple(out_b), tuple(kinds))


@dataclass(frozen=True, eq=False)
class Comparison:
    """Two traces and what is compared: each one's stack, the shared layers and the offered heads, the start
    layer and head (None: the mean of ``heads``), and the token alignment of the query and the key side."""

    a: Trace
    b: Trace
    labels: tuple[str, str]
    stacks: tuple[str, str]
    layers: int
    heads: tuple[int, ...]
    layer: int
    head: int | None
    query: Alignment
    key: Alignment

    @property
    def traces(self) -> tuple[Trace, Trace]:
        """(A, B)."""
        return self.a, self.b

    def attention(self, which: int, layer: int | None = None, head: Head = "start") -> NDArray[np.float64]:
        """Trace ``which`` (0: A, 1: B): its [query, key] attention at ``layer`` for one head, or the mean of
        ``heads`` (``head=None``); defaults: the start layer and head."""
        layer = self.layer if layer is None else layer
        head = self.head if head == "start" else head
        self._check(layer, head)
        att = self.traces[which].attention[self.stacks[which]][layer]
        chosen = att[list(self.heads)] if head is None else att[[head]]
        mean: NDArray[np.float64] = chosen.astype(np.float64).mean(axis=0)
        return mean

    def difference(self, layer: int | None = None, head: Head = "start") -> NDArray[np.float64]:
        """B − A over the merged token order [query positions, key positions]; NaN where the query or the key
        token has no partner."""
        att_a, att_b = self.attention(0, layer, head), self.attention(1, layer, head)
        qa, qb = np.array(self.query.a), np.array(self.query.b)
        ka, kb = np.array(self.key.a), np.array(self.key.b)
        out = np.full((len(qa), len(ka)), np.nan)
        rows, cols = (qa >= 0) & (qb >= 0), (ka >= 0) & (kb >= 0)
        grid = np.ix_(rows, cols)
        out[grid] = att_b[np.ix_(qb[rows], kb[cols])] - att_a[np.ix_(qa[rows], ka[cols])]
        return out

    def head_title(self, head: int | None, base: int) -> str:
        """The head shown: "head N", or "mean of heads ..." (labelled from ``base``)."""
        if head is not None:
            return f"head {head + base}"
        if len(self.heads) == self.shape(0)[1] == self.shape(1)[1]:
            return "mean of all heads"
        return "mean of heads " + ", ".join(str(h + base) for h in self.heads)

    def shape(self, which: int) -> tuple[int, int]:
        """(layers, heads) of trace ``which``'s compared stack."""
        att = self.traces[which].attention[self.stacks[which]]
        return int(att.shape[0]), int(att.shape[1])

    def note(self, base: int = 0) -> str:
        """What is compared when the two traces have different layer or head counts ("" when they agree)."""
        (la, ha), (lb, hb) = self.shape(0), self.shape(1)
        if (la, ha) == (lb, hb):
            return ""
        n_heads = min(ha, hb)
        return (
            f"{self.labels[0]} has {la} layers x {ha} heads, {self.labels[1]} {lb} x {hb}: layers {base}-"
            f"{self.layers - 1 + base} and heads {base}-{n_heads - 1 + base} of both are compared"
        )

    def _check(self, layer: int, head: int | None) -> None:
        n_heads = min(self.shape(0)[1], self.shape(1)[1])
        if not 0 <= layer < self.layers:
            raise InputError(f"layer {layer} is not in both traces: they share layers 0..{self.layers - 1} (0-based)")
        if head is not None and not 0 <= head < n_heads:
            raise InputError(f"head {head} is not in both traces: they share heads 0..{n_heads - 1} (0-based)")


def comparison(
    trace_a: Any,
    trace_b: Any,
    *,
    layer: Any = None,
    heads: Any = None,
    stack: str | None = None,
    labels: Sequence[str] = ("A", "B"),
) -> Comparison:
    """Check two traces and the choices, and align their tokens (see the module docstring)."""
    for name, tr in (("trace_a", trace_a), ("trace_b", trace_b)):
        if not isinstance(tr, Trace):
            raise InputError(f"compare_view needs two attnscope Traces; {name} is a {type(tr).__name__}")
    if isinstance(labels, str) or len(labels) != 2 or not all(isinstance(x, str) for x in labels):
        raise InputError(f"labels must be two strings, one per trace, such as ('A', 'B'); got {labels!r}")
    if stack is not None and stack not in ("encoder", "decoder", "cross"):
        raise InputError(f"stack must be 'encoder', 'decoder' or 'cross', got {stack!r}")
    stacks = (stack or trace_a.main_stack, stack or trace_b.main_stack)
    for label, tr, st in zip(labels, (trace_a, trace_b), stacks, strict=True):
        if st not in tr.attention:
            raise InputError(f"trace {label} has no {st!r} attention; it has {', '.join(tr.stacks)} (choose stack=)")
    shapes = [tr.attention[st].shape for tr, st in zip((trace_a, trace_b), stacks, strict=True)]
    n_layers, n_heads = min(s[0] for s in shapes), min(s[1] for s in shapes)
    start = _as_int(layer, "layer")
    start = 0 if start is None else start
    if not 0 <= start < n_layers:
        raise InputError(f"layer {start} is not in both traces: they share layers 0..{n_layers - 1} (0-based)")
    chosen = _as_indices(heads, "heads")
    if chosen == ():
        raise InputError("an empty list of heads shows nothing; leave heads out to compare all heads")
    if chosen is not None:
        bad = [h for h in chosen if not 0 <= h < n_heads]
        if bad:
            raise InputError(f"head {bad[0]} is not in both traces: they share heads 0..{n_heads - 1} (0-based)")
        chosen = tuple(dict.fromkeys(chosen))
    offered = chosen if chosen is not None else tuple(range(n_heads))
    sides = [tr.sides(st) for tr, st in zip((trace_a, trace_b), stacks, strict=True)]
    query = align_tokens(sides[0][0].labels, sides[1][0].labels)
    key = align_tokens(sides[0][1].labels, sides[1][1].labels)
    return Comparison(
        a=trace_a, b=trace_b, labels=(labels[0], labels[1]), stacks=stacks, layers=n_layers, heads=offered,
        layer=start, head=offered[0] if len(offered) == 1 else None, query=query, key=key,
    )  # fmt: skip


def compare_payload(subject: Comparison, options: ViewOptions, precision: Precision, traces: Any = None) -> Payload:
    """The comparison view's payload: both traces as ordinary heatmap payloads, and the token alignment."""
    if precision not in PRECISIONS:
        raise InputError(f"precision must be 'uint8' (default, error <= 1/255) or 'float32', got {precision!r}")
    inner: list[Payload] = []
    for tr, st in zip(subject.traces, subject.stacks, strict=True):
        opts = ViewOptions(stack=st, layer=subject.layer, heads=subject.heads, theme=options.theme,
                           index_base=options.index_base)  # fmt: skip
        inner.append(build_payload(tr, ("heatmap",), opts, precision))
    section: ComparePayload = {
        "labels": list(subject.labels),
        "texts": [" \u2016 ".join(t for t in tr.tokens.texts if t) for tr in subject.traces],
        "stacks": list(subject.stacks),
        "layers": subject.layers,
        "heads": list(subject.heads),
        "layer": subject.layer,
        "head": -1 if subject.head is None else subject.head,
        "query": subject.query.as_payload(),
        "key": subject.key.as_payload(),
        "traces": inner,
    }
    resolved = resolve(subject.a, ViewOptions(stack=subject.stacks[0], layer=subject.layer, heads=subject.heads,
                                              theme=options.theme, index_base=options.index_base))  # fmt: skip
    model = dict(inner[0]["model"])
    model["name"] = compared_names(subject)
    return subject_payload("compare", model, resolved, precision, section)


def compared_names(subject: Comparison) -> str:
    """The model's name, or "model A vs model B" when the traces come from two models."""
    a, b = subject.a.model.name, subject.b.model.name
    return a if a == b else f"{a} vs {b}"


class CompareView(SubjectView):
    """The comparison view of two traces (``subject``: a :class:`Comparison`)."""

    kind = "compare"

    def __init__(self, subject: Comparison, options: ViewOptions, precision: Precision = "uint8") -> None:
        self.subject = subject
        self.options = options
        self.precision = precision
        self._payload: Payload | None = None
        self._json = None

    def linked_traces(self) -> Any:
        """The two traces compared."""
        return self.subject.traces

    def subject_name(self) -> str:
        """The model (or both models) compared."""
        return compared_names(self.subject)

    def __repr__(self) -> str:
        s = self.subject
        paired = sum(1 for k in s.query.kinds if k in ("equal", "replace"))
        return (
            f"<attnscope comparison of {s.labels[0]} ({len(s.query.a) - s.query.a.count(-1)} tokens) and "
            f"{s.labels[1]} ({len(s.query.b) - s.query.b.count(-1)} tokens), {paired} aligned, on "
            f"{self.subject_name()}>"
        )


def compare_view(
    trace_a: Any,
    trace_b: Any,
    *,
    layer: int | None = None,
    heads: Sequence[int] | None = None,
    stack: str | None = None,
    theme: Theme = "dark",
    index_base: int = 0,
    labels: Sequence[str] = ("A", "B"),
    precision: Precision = "uint8",
) -> CompareView:
    """Two traces side by side (one layer; one head or the mean of ``heads``) and their difference B − A.

    Tokens align by difflib over their labels (a masked or replaced token pairs with the one it replaces;
    inserted or removed tokens have no partner). Traces of models with different layer or head counts are
    compared over the layers and heads both have. ``stack``: default each trace's main stack.
    """
    if precision not in PRECISIONS:
        raise InputError(f"precision must be 'uint8' (default, error <= 1/255) or 'float32', got {precision!r}")
    subject = comparison(trace_a, trace_b, layer=layer, heads=heads, stack=stack, labels=labels)
    options = ViewOptions(layer=subject.layer, heads=subject.heads, theme=theme, index_base=index_base)
    return CompareView(subject, options, precision)


__all__ = ["Alignment", "CompareView", "Comparison", "align_tokens", "compare_view", "comparison"]
