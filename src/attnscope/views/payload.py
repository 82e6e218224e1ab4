"""The one data contract between Python and the views' JavaScript (version 6), and its HTML embedding.

A payload is JSON. Attention travels as binary: each stack's [layers, heads, query, key] array is
quantised to uint8 (value = byte / 255, error <= 0.5/255; the default) or kept as float32
(``precision="float32"``), little-endian, deflate-compressed (zlib format) and base64-encoded. The
neuron view's numbers (queries, keys, scale, mask, bias) are always float32. The JSON goes into a
``<script type="application/json">`` block with ``<``, ``>`` and ``&`` escaped, so no token can end it.

A page whose only view is the neuron view carries only what it shows: the queries and keys of its one
layer and head, and that head's attention; such a stack entry lists them in ``layers`` and ``heads``
(trace indices; absent means all). The TypeScript types of this contract are generated from the
TypedDicts below (``python -m attnscope.views.contract``; a test fails when they drift).

Versions: 2 added ``layers``/``heads`` on stacks. 3 replaced ``options`` by ``resolved`` (the
:class:`~attnscope.views.resolve.Resolved` spec: every default filled, explicit lists of heads and
layers, head colours, masking threshold, line threshold), and a neuron-only page carries one head.
4 added the optional ``atlas`` section (a view whose subject is a head atlas, not a trace: its grid and,
as ``examples``, one head-view payload per unique example sentence; ``sides``/``stacks`` stay empty).
5 added ``measures`` on stacks (contribution measures the page can show instead of attention, each scaled
into [0, 1] with its scale stated) and ``measure``, ``measure_title``, ``measure_scale``, ``measure_per_head``
in ``resolved`` (the measure a page starts with; "attention" for raw attention), and the optional
``contribution`` section (the contribution view: a layered measure's rows for every output position).
6 added the optional ``compare`` section (the comparison view, whose subject is two traces: each as an
ordinary heatmap payload in ``traces``, and the token alignment of its query and key side; ``sides``/``stacks``
stay empty).
"""

from __future__ import annotations

import base64
import dataclasses
import unicodedata
import zlib
from typing import Any, Literal, TypedDict

import numpy as np

from attnscope.errors import InputError
from attnscope.text import inert_json
from attnscope.tokens import Tokens
from attnscope.traces import Trace
from attnscope.views.measures import ATTENTION, MEASURES, shown_measure
from attnscope.views.options import ViewOptions
from attnscope.views.registry import VIEWS, check_views
from attnscope.views.resolve import Resolved, resolve

PAYLOAD_VERSION = 6
Precision = Literal["uint8", "float32"]
PRECISIONS: tuple[Precision, ...] = ("uint8", "float32")
# Raw bytes of queries/keys/mask/bias that a page carries for the neuron view before it narrows to
# one layer, then one head (a 512-token MiniLM trace would otherwise add ~25 MB).
NEURON_BUDGET = 8 * 1024 * 1024
# Which token sequence gives each stack's queries and keys, when a trace has target tokens.
_SIDES = {"encoder": ("source", "source"), "decoder": ("target", "target"), "cross": ("target", "source")}


class Blob(TypedDict):
    """A binary array: dtype, shape, deflate-compressed little-endian bytes in base64."""

    dtype: Literal["uint8", "float32"]
    shape: list[int]
    data: str


class SidePayload(TypedDict):
    """One token sequence: labels (visible forms), special flags, segments (0 = A, 1 = B)."""

    labels: list[str]
    special: list[int]
    segment: list[int]


class _StackFields(TypedDict):
    name: str
    query: str
    key: str
    attention: Blob


class MeasurePayload(TypedDict):
    """A contribution measure shown in place of attention: its display array [layers, heads, Q, K] in [0, 1]
    (encoded like attention), ``scale`` ("" or how it was scaled into [0, 1]), ``per_head`` (False: one
    "all heads" pseudo-head), ``layers`` (the trace layer behind each row); see :mod:`attnscope.views.measures`."""

    name: str
    title: str
    scale: str
    per_head: bool
    layers: list[int]
    data: Blob


class StackPayload(_StackFields, total=False):
    """One attention stack; ``query``/``key`` name the sides ("source" or "target").

    ``layers``/``heads``, when present, are the trace's layers and heads the attention holds (a neuron-only page).
    ``measures``: the contribution measures the page can show instead of this stack's attention.
    """

    layers: list[int]
    heads: list[int]
    measures: list[MeasurePayload]


class NeuronPayload(TypedDict):
    """Queries and keys of one stack for the layers and heads listed (indices into the trace)."""

    stack: str
    layers: list[int]
    heads: list[int]
    queries: Blob
    keys: Blob
    scale: list[float]
    mask: Blob
    bias: Blob | None


class ResolvedPayload(TypedDict):
    """The resolved spec both renderers read (see :class:`attnscope.views.resolve.Resolved`)."""

    stack: str
    layer: int
    heads: list[int]
    include_layers: list[int]
    include_heads: list[int]
    query_index: int
    theme: Literal["dark", "light"]
    index_base: int
    hide_special: bool
    head_colours: list[str]
    mask_threshold: float
    min_weight: float
    measure: str
    measure_title: str
    measure_scale: str
    measure_per_head: bool


class ModelPayload(TypedDict):
    """What the trace records about the model (attnscope.traces.ModelInfo)."""

    name: str
    model_type: str
    architecture: str
    num_layers: int
    num_heads: int
    head_dim: int
    is_encoder_decoder: bool
    is_causal: bool


class AtlasHead(TypedDict):
    """One head of the atlas: role, score, statistics, pattern shares, and its example (index, -1: none)."""

    role: str
    score: float | None
    stats: dict[str, float | None]
    patterns: dict[str, float | None]
    example: int
    example_score: float | None


class AtlasExample(TypedDict):
    """One corpus sentence where some head's role is strongest, with its head-view payload."""

    index: int
    text: str
    text_pair: str | None
    payload: Payload


class AtlasPayload(TypedDict):
    """The head atlas of one stack: per layer, per head; roles in legend order with their colours."""

    model: str
    stack: str
    sentences: int
    roles: list[str]
    role_colours: list[str]
    heads: list[list[AtlasHead]]
    examples: list[AtlasExample]


class ContributionPayload(TypedDict):
    """The contribution view's section: for every output position, how much each input token reaches it after
    each layer (``values`` [layers, Q, K] in [0, 1], float32, of ``measure``; ``scale`` as in MeasurePayload;
    ``layers``: the trace layer behind each row; ``position``: the output position shown first; ``colours``:
    one per input token, as in the PNG/SVG)."""

    colours: list[str]
    stack: str
    measure: str
    title: str
    scale: str
    layers: list[int]
    position: int
    values: Blob


class CompareAlignment(TypedDict):
    """Tokens of A and B in one merged order (difflib over token labels): per position, the token index in A
    and in B (-1: no partner) and its kind (replace: paired, different tokens; delete: only in A; insert: only
    in B)."""

    a: list[int]
    b: list[int]
    kind: list[Literal["equal", "replace", "delete", "insert"]]


class ComparePayload(TypedDict):
    """The comparison view's section: two traces (``traces``: ordinary payloads; ``labels``, input ``texts``,
    the compared ``stacks``), the layers both have (0 .. ``layers`` - 1), the ``heads`` offered, the start
    ``layer`` and ``head`` (-1: the mean of ``heads``), and the alignment of the query and key tokens."""

    labels: list[str]
    texts: list[str]
    stacks: list[str]
    layers: int
    heads: list[int]
    layer: int
    head: int
    query: CompareAlignment
    key: CompareAlignment
    traces: list[Payload]


class _PayloadFields(TypedDict):
    version: int
    views: list[str]
    model: ModelPayload
    resolved: ResolvedPayload
    precision: Precision
    sides: dict[str, SidePayload]
    stacks: list[StackPayload]
    neuron: list[NeuronPayload]


class Payload(_PayloadFields, total=False):
    """Everything a page shows (see the module docstring); ``atlas``: the atlas view's section;
    ``contribution``: the contribution view's; ``compare``: the comparison view's."""

    atlas: AtlasPayload
    contribution: ContributionPayload
    compare: ComparePayload


def build_payload(
    trace: Trace,
    views: tuple[str, ...],
    options: ViewOptions,
    precision: Precision = "uint8",
) -> Payload:
    """Turn a trace and the view choices into the versioned payload the front end renders."""
    if not isinstance(trace, Trace):
        raise InputError(f"expected an attnscope Trace, got {type(trace).__name__}")
    if precision not in PRECISIONS:
        raise InputError(f"precision must be 'uint8' (default, error <= 1/255) or 'float32', got {precision!r}")
    views = check_views(views)
    resolved = resolve(trace, options)
    sides = {"source": side_payload(trace.tokens)}
    if trace.target_tokens is not None:
        sides["target"] = side_payload(trace.target_tokens)
    sections: dict[str, Any] = {}
    for name in views:
        builder = VIEWS[name].build_function()
        if builder is not None:
            sections[name] = builder(trace, resolved, views)
    neuron: list[NeuronPayload] = sections.get("neuron", [])
    stacks: list[StackPayload] = []
    for name in trace.stacks:
        q_side, k_side = _SIDES[name] if trace.target_tokens is not None else ("source", "source")
        if set(views) == {"neuron"}:  # the neuron view needs only its own stack's layers and heads
            if name != neuron[0]["stack"]:
                continue
            layers, heads = neuron[0]["layers"], neuron[0]["heads"]
            narrowed = trace.attention[name][np.array(layers)][:, np.array(heads)]
            blob = encode_attention(narrowed, precision)
            stacks.append(
                {"name": name, "query": q_side, "key": k_side, "attention": blob, "layers": layers, "heads": heads}
            )
            continue
        blob = encode_attention(trace.attention[name], precision)
        entry: StackPayload = {"name": name, "query": q_side, "key": k_side, "attention": blob}
        measures = measure_section(trace, name, resolved, precision)
        if measures:
            entry["measures"] = measures
        stacks.append(entry)
    model = dataclasses.asdict(trace.model)  # a test checks ModelPayload lists ModelInfo's fields
    out: Payload = {
        "version": PAYLOAD_VERSION,
        "views": list(views),
        "model": model,  # type: ignore[typeddict-item]
        "resolved": resolved.as_payload(),  # type: ignore[typeddict-item]
        "precision": precision,
        "sides": sides,
        "stacks": stacks,
        "neuron": neuron,
    }
    if "contribution" in sections:
        out["contribution"] = sections["contribution"]
    return out


def subject_payload(
    view: str, model: dict[str, Any], resolved: Resolved, precision: Precision, section: Any
) -> Payload:
    """The payload of a view whose subject is not one trace: no sides or stacks, its section under ``view``."""
    out: dict[str, Any] = {
        "version": PAYLOAD_VERSION,
        "views": [view],
        "model": model,
        "resolved": resolved.as_payload(),
        "precision": precision,
        "sides": {},
        "stacks": [],
        "neuron": [],
        view: section,
    }
    return out  # type: ignore[return-value]  # the view's key is one of Payload's optional sections


def measure_section(trace: Trace, stack: str, resolved: Resolved, precision: Precision) -> list[MeasurePayload]:
    """The measures a stack's page can switch to: the chosen one, and every view measure already kept on the trace."""
    names = [m for m in MEASURES if f"{m}.{stack}" in trace.contributions]
    if stack == resolved.stack and resolved.measure != ATTENTION and resolved.measure not in names:
        names.insert(0, resolved.measure)
    out: list[MeasurePayload] = []
    for name in names:
        try:
            shown = shown_measure(trace, name, stack)
        except InputError:
            if name == resolved.measure:
                raise
            continue  # a kept result no view can show (e.g. negative values): not offered
        out.append(
            {
                "name": name,
                "title": shown.title,
                "scale": shown.scale,
                "per_head": shown.per_head,
                "layers": list(shown.layers),
                "data": encode_attention(shown.array, precision),
            }
        )
    return out


def side_payload(tokens: Tokens) -> SidePayload:
    """Token labels ("##" on word continuations) made visible (control, zero-width, bidi shown as ⟨U+XXXX⟩)."""
    return {
        "labels": [visible_label(t) for t in tokens.labels],
        "special": [int(s) for s in tokens.special],
        "segment": [int(s) for s in tokens.segment],
    }


def visible_label(text: str) -> str:
    """A token's display form with every invisible or direction-changing character spelled out."""
    out = []
    for ch in text:
        if unicodedata.category(ch) in ("Cc", "Cf", "Zl", "Zp", "Cs", "Co", "Cn"):
            out.append(f"\u27e8U+{ord(ch):04X}\u27e9")
        else:
            out.append(ch)
    return "".join(out) or "\u2205"


def encode_attention(attention: np.ndarray, precision: Precision) -> Blob:
    """Quantise (uint8) or keep (float32) one stack's attention, then compress and base64 it."""
    if precision == "uint8":
        scaled = np.clip(np.asarray(attention, dtype=np.float32), 0, 1) * np.float32(255)
        scaled += np.float32(0.5)  # round half up: error <= 0.5/255
        return encode_array(scaled.astype(np.uint8))
    return encode_array(np.asarray(attention, dtype=np.float32))


def encode_array(array: np.ndarray) -> Blob:
    """One array as a Blob (uint8 stays uint8; everything else becomes little-endian float32)."""
    if array.dtype == np.uint8:
        dtype: Literal["uint8", "float32"] = "uint8"
        raw = np.ascontiguousarray(array).tobytes()
    else:
        dtype = "float32"
        raw = np.ascontiguousarray(array, dtype="<f4").tobytes()
    data = base64.b64encode(_deflate(raw)).decode("ascii")
    return {"dtype": dtype, "shape": [int(d) for d in array.shape], "data": data}


def _deflate(raw: bytes) -> bytes:
    """zlib-format deflate: level 6 for small arrays; above 2 MB run-length matching, which packs the
    mostly-zero quantised attention of long inputs ~20% tighter than level 1 at its speed (5x level 6's)."""
    if len(raw) < 2_000_000:
        return zlib.compress(raw, 6)
    packer = zlib.compressobj(6, zlib.DEFLATED, 15, 9, zlib.Z_RLE)
    return packer.compress(raw) + packer.flush()


def decode_array(blob: Blob) -> np.ndarray:
    """Inverse of :func:`encode_array` (the browser does the same; tests use this one)."""
    raw = zlib.decompress(base64.b64decode(blob["data"]))
    dtype = np.uint8 if blob["dtype"] == "uint8" else np.dtype("<f4")
    values: np.ndarray = np.frombuffer(raw, dtype=dtype).reshape(blob["shape"])
    return values


def decode_attention(blob: Blob) -> np.ndarray:
    """Attention values in [0, 1] as float32, whatever the blob's precision."""
    values = decode_array(blob)
    out: np.ndarray = values.astype(np.float32)
    return out / np.float32(255.0) if blob["dtype"] == "uint8" else out


def neuron_section(trace: Trace, resolved: Resolved, views: tuple[str, ...]) -> list[NeuronPayload]:
    """Queries and keys for the neuron view: only its one head when it is the page's only view (it shows
    nothing else); beside other views all layers if they fit the budget, else one layer, else one head."""
    stack = resolved.stack
    if stack not in trace.qk:
        from attnscope.views.registry import NEEDS

        have = f" (it has them for {', '.join(trace.qk)})" if trace.qk else ""
        raise InputError(f"the neuron view needs the {stack} stack's queries and keys{have}: {NEEDS['qk'].how}")
    qk = trace.qk[stack]
    n_layers, n_heads, n_query, dim = qk.queries.shape
    n_key = qk.keys.shape[2]
    layer = resolved.layer
    per_head = (n_query + n_key) * dim * 4 + (n_query * n_key * 4 if qk.bias is not None else 0)
    per_layer = per_head * n_heads + n_query * n_key * 4
    if tuple(views) == ("neuron",):
        layers, heads = [layer], [resolved.head]
    elif per_layer * n_layers <= NEURON_BUDGET:
        layers, heads = list(range(n_layers)), list(range(n_heads))
    elif per_layer <= NEURON_BUDGET:
        layers, heads = [layer], list(range(n_heads))
    else:
        layers, heads = [layer], [resolved.head]
    li, hi = np.array(layers), np.array(heads)
    bias = qk.bias[li][:, hi] if qk.bias is not None else None
    return [
        {
            "stack": stack,
            "layers": layers,
            "heads": heads,
            "queries": encode_array(qk.queries[li][:, hi]),
            "keys": encode_array(qk.keys[li][:, hi]),
            "scale": [float(s) for s in qk.scale[li]],
            "mask": encode_array(np.maximum(qk.mask[li], np.float32(-1e30))),
            "bias": encode_array(bias) if bias is not None else None,
        }
    ]


def payload_json(payload: Payload) -> str:
    """The payload as JSON safe inside a <script> element: '<', '>' and '&' are escaped."""
    return inert_json(payload)
