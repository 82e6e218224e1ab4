"""The atlas view: a head atlas (what every head does over a corpus) as a layers x heads grid of roles.

Its subject is not one trace but a :class:`~attnscope.heads.atlas.HeadAtlas` (or its ``to_json()``, i.e.
a ``heads`` report.json) plus the traces of its example sentences: for each head, the corpus sentence
where its role's behaviour is strongest. The payload carries each unique example sentence once, as a
head-view payload (the same attention blobs as every view), so a click on a cell opens the head view of
that layer and head on its sentence. :func:`atlas_view` returns an :class:`AtlasView`, which saves and
displays like every view (``.save(.html/.png/.svg)``, ``.to_html()``, notebook display).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from attnscope.errors import InputError
from attnscope.traces import Trace
from attnscope.views.objects import SubjectView
from attnscope.views.options import Theme, ViewOptions
from attnscope.views.payload import (
    PAYLOAD_VERSION,
    AtlasExample,
    AtlasHead,
    AtlasPayload,
    Payload,
    Precision,
    build_payload,
    subject_payload,
)
from attnscope.views.resolve import Resolved, head_colours

# One colour per role (legend order); "offset±d" roles take OFFSET_COLOURS in order of d.
ROLE_COLOURS: dict[str, str] = {
    "first": "#1f77b4",
    "sep": "#d62728",
    "punct": "#9467bd",
    "self": "#2ca02c",
    "previous": "#ff7f0e",
    "next": "#e377c2",
    "broad": "#17becf",
    "mixed": "#7f7f7f",
}
OFFSET_COLOURS = ("#bcbd22", "#8c564b", "#005af0", "#a5a5e1", "#d2964b", "#3ca578", "#962dc3", "#ff8787")
STAT_KEYS = ("first", "sep", "punct", "self", "previous", "next", "entropy", "max_weight", "distance")


def role_order(roles: set[str]) -> list[str]:
    """The roles present, in legend order: the share roles, fixed offsets by offset, broad, mixed."""
    fixed = [r for r in ROLE_COLOURS if r in roles and r not in ("broad", "mixed")]
    offsets = sorted((r for r in roles if r not in ROLE_COLOURS), key=_offset_key)
    return fixed + offsets + [r for r in ("broad", "mixed") if r in roles]


def role_colours(order: list[str]) -> list[str]:
    """The colour of each role in ``order`` (page and picture use the same)."""
    offsets = iter(OFFSET_COLOURS * (1 + len(order) // len(OFFSET_COLOURS)))
    return [ROLE_COLOURS[r] if r in ROLE_COLOURS else next(offsets) for r in order]


def _offset_key(role: str) -> tuple[int, str]:
    try:
        return int(role.removeprefix("offset")), role
    except ValueError:
        return 0, role


def atlas_json(atlas: Any) -> dict[str, Any]:
    """A HeadAtlas's ``to_json()`` (or such a dict, e.g. a loaded report.json), checked."""
    data: Any = atlas.to_json() if hasattr(atlas, "to_json") else atlas
    heads = data.get("heads") if isinstance(data, dict) else None
    if (
        not isinstance(heads, list)
        or not heads
        or not all(isinstance(row, list) and row and len(row) == len(heads[0]) for row in heads)
        or not all(isinstance(h, dict) and isinstance(h.get("role"), str) for row in heads for h in row)
    ):
        raise InputError(
            "atlas_view needs a HeadAtlas (attnscope.heads.head_roles) or its report.json: a 'heads' list per "
            "layer of equally long lists per head, each with a 'role'"
        )
    return dict(data)


def example_inputs(atlas: Any) -> dict[int, tuple[str, str | None]]:
    """The unique example sentences of an atlas: corpus index -> (text, text_pair), to trace for its view."""
    out: dict[int, tuple[str, str | None]] = {}
    for row in atlas_json(atlas)["heads"]:
        for head in row:
            ex = head.get("example")
            if isinstance(ex, dict) and isinstance(ex.get("text"), str) and isinstance(ex.get("index"), int):
                pair = ex.get("text_pair")
                out.setdefault(ex["index"], (ex["text"], pair if isinstance(pair, str) else None))
    return out


def trace_examples(model: Any, atlas: Any) -> dict[int, Trace]:
    """Trace every unique example sentence of ``atlas`` with ``model`` (a ModelHandle)."""
    from attnscope.tracing import trace

    enc_dec = bool(getattr(model.info, "is_encoder_decoder", False))
    return {
        index: trace(model, text, pair, target=text if enc_dec else None, truncation=True)
        for index, (text, pair) in sorted(example_inputs(atlas).items())
    }


def atlas_payload(
    data: dict[str, Any], options: ViewOptions, precision: Precision, traces: Mapping[int, Trace | Payload]
) -> Payload:
    """The atlas view's payload: its grid section, and one head-view payload per example sentence.

    ``traces`` maps a corpus index to its Trace, or to a head-view payload built already (e.g. on the
    worker that holds the model).
    """
    heads_in = data["heads"]
    n_layers, n_heads = len(heads_in), len(heads_in[0])
    stack = str(data.get("stack") or "encoder")
    order = role_order({h["role"] for row in heads_in for h in row})
    inputs = example_inputs(data)
    examples: list[AtlasExample] = []
    position: dict[int, int] = {}
    for index in sorted(inputs):
        if index not in traces:
            continue
        tr = traces[index]
        if isinstance(tr, Trace):
            opts = ViewOptions(stack=stack if stack in tr.attention else None, theme=options.theme,
                               index_base=options.index_base)  # fmt: skip
            inner = build_payload(tr, ("head",), opts, precision)
        else:
            inner = tr
        position[index] = len(examples)
        text, pair = inputs[index]
        examples.append({"index": index, "text": text, "text_pair": pair, "payload": inner})
    grid: list[list[AtlasHead]] = []
    for row in heads_in:
        grid.append([])
        for h in row:
            ex = h.get("example") if isinstance(h.get("example"), dict) else None
            stats = h.get("stats") or {}
            grid[-1].append(
                {
                    "role": h["role"],
                    "score": _number(h.get("score")),
                    "stats": {k: _number(stats.get(k)) for k in STAT_KEYS},
                    "patterns": {str(k): _number(v) for k, v in (h.get("patterns") or {}).items()},
                    "example": position.get(ex["index"], -1) if ex else -1,
                    "example_score": _number(ex.get("score")) if ex else None,
                }
            )
    section: AtlasPayload = {
        "model": str(data.get("model", "unknown")),
        "stack": stack,
        "sentences": int(data.get("sentences") or 0),
        "roles": order,
        "role_colours": role_colours(order),
        "heads": grid,
        "examples": examples,
    }
    model = dict(examples[0]["payload"]["model"]) if examples else {
        "name": section["model"], "model_type": "unknown", "architecture": "unknown", "num_layers": n_layers,
        "num_heads": n_heads, "head_dim": 0, "is_encoder_decoder": False, "is_causal": False,
    }  # fmt: skip
    resolved = Resolved(
        stack=stack, layer=0, heads=tuple(range(n_heads)), include_layers=tuple(range(n_layers)),
        include_heads=tuple(range(n_heads)), query_index=0, theme=options.theme, index_base=options.index_base,
        hide_special=False, head_colours=tuple(head_colours(n_heads)),
    )  # fmt: skip
    return subject_payload("atlas", model, resolved, precision, section)


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


class AtlasView(SubjectView):
    """The atlas view of a head atlas (``subject``: its JSON form) and its example traces."""

    kind = "atlas"

    def __init__(
        self,
        subject: dict[str, Any],
        traces: Mapping[int, Trace | Payload | str],
        options: ViewOptions,
        precision: Precision = "uint8",
    ) -> None:
        self.subject = atlas_json(subject)
        self.traces: dict[int, Trace | Payload] = {k: _example(k, t) for k, t in traces.items()}
        self.options = options
        self.precision = precision
        self._payload: Payload | None = None
        self._json = None

    def linked_traces(self) -> dict[int, Trace | Payload]:
        """The example sentences' traces (or head-view payloads), by corpus index."""
        return self.traces

    def subject_name(self) -> str:
        """The model the atlas describes."""
        return str(self.subject.get("model", "unknown"))

    def __repr__(self) -> str:
        heads = self.subject["heads"]
        return (
            f"<attnscope head atlas of {self.subject_name()}: {len(heads)} layers x {len(heads[0])} heads, "
            f"{len(self.traces)} example sentences>"
        )


def _example(index: Any, value: Any) -> Trace | Payload:
    """A Trace as given, or a head-view payload (dict or its JSON, as ``View.payload_json()`` gives), checked."""
    if isinstance(value, Trace):
        return value
    try:
        payload = json.loads(value) if isinstance(value, str) else value
    except ValueError:
        payload = None
    ok = isinstance(payload, dict) and payload.get("version") == PAYLOAD_VERSION and "head" in payload.get("views", ())
    if not ok or not isinstance(index, int):
        raise InputError(
            f"atlas_view's traces map a corpus index to an attnscope Trace or a head-view payload of version "
            f"{PAYLOAD_VERSION}; corpus index {index!r} maps to neither"
        )
    checked: Payload = payload
    return checked


def atlas_view(
    result: Any,
    model: Any = None,
    *,
    traces: Mapping[int, Trace | Payload | str] | None = None,
    theme: Theme = "dark",
    index_base: int = 0,
    precision: Precision = "uint8",
) -> AtlasView:
    """The layers x heads grid of a head atlas: role as colour, score as intensity, numbers on hover.

    ``result``: a HeadAtlas (``attnscope.heads.head_roles``) or its report.json content. A click on a
    head opens the head view on its example sentence: pass the ``model`` (a ModelHandle, to trace them)
    or ``traces``: corpus index -> Trace, or -> a head-view payload (``View.payload_json()``) made where the
    model lives (a report: ``{i: finalize_context.payload(text) for i, (text, _) in example_inputs(atlas).items()}``).
    Without either, the grid shows no examples.
    """
    data = atlas_json(result)
    if traces is None:
        traces = trace_examples(model, data) if model is not None else {}
    return AtlasView(data, traces, ViewOptions(theme=theme, index_base=index_base), precision)
