"""The one data contract between Python and the views' JavaScript (version 2), and its HTML embedding.

A payload is JSON. Attention travels as binary: each stack's [layers, heads, query, key] array is
quantised to uint8 (value = byte / 255, error <= 0.5/255; the default) or kept as float32
(``precision="float32"``), little-endian, deflate-compressed (zlib format) and base64-encoded. The
neuron view's numbers (queries, keys, scale, mask, bias) are always float32. The JSON goes into a
``<script type="application/json">`` block with ``<``, ``>`` and ``&`` escaped, so no token can end it.

A page whose only view is the neuron view carries only the neuron's stack, its attention narrowed to the
layers and heads whose queries and keys it carries; such a stack entry lists them in ``layers`` and
``heads`` (trace indices; absent means all). Version 2 added those two fields.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import unicodedata
import zlib
from typing import Any, Literal, TypedDict

import numpy as np

from attnscope.errors import InputError
from attnscope.tokens import Tokens
from attnscope.traces import Trace
from attnscope.views.options import VIEW_KINDS, ViewOptions

PAYLOAD_VERSION = 2
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


class StackPayload(_StackFields, total=False):
    """One attention stack; ``query``/``key`` name the sides ("source" or "target").

    ``layers``/``heads``, when present, are the trace's layers and heads the attention holds (a neuron-only page).
    """

    layers: list[int]
    heads: list[int]


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


class Payload(TypedDict):
    """Everything a page shows (see the module docstring)."""

    version: int
    views: list[str]
    model: dict[str, Any]
    options: dict[str, Any]
    precision: str
    sides: dict[str, SidePayload]
    stacks: list[StackPayload]
    neuron: list[NeuronPayload]


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
    unknown = [v for v in views if v not in VIEW_KINDS]
    if unknown or not views:
        raise InputError(f"unknown view(s) {unknown or views}; choose from {', '.join(VIEW_KINDS)}")
    resolved = resolve_options(trace, options)
    sides = {"source": side_payload(trace.tokens)}
    if trace.target_tokens is not None:
        sides["target"] = side_payload(trace.target_tokens)
    neuron = _neuron_payloads(trace, resolved) if "neuron" in views else []
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
        stacks.append({"name": name, "query": q_side, "key": k_side, "attention": blob})
    return {
        "version": PAYLOAD_VERSION,
        "views": list(views),
        "model": dataclasses.asdict(trace.model),
        "options": dataclasses.asdict(resolved),
        "precision": precision,
        "sides": sides,
        "stacks": stacks,
        "neuron": neuron,
    }


def resolve_options(trace: Trace, options: ViewOptions) -> ViewOptions:
    """Fill the defaults a trace implies and check every index against it (clear errors, 0-based)."""
    stack = options.stack or trace.main_stack
    if stack not in trace.attention:
        raise InputError(f"this trace has no {stack!r} attention; it has {', '.join(trace.stacks)}")
    n_layers, n_heads, n_query, _ = trace.attention[stack].shape
    layer = 0 if options.layer is None else options.layer
    _check_index(layer, n_layers, "layer")
    for name, limit, what in (("heads", n_heads, "head"), ("include_heads", n_heads, "head")):
        for value in getattr(options, name) or ():
            _check_index(value, limit, what)
    for value in options.include_layers or ():
        _check_index(value, n_layers, "layer")
    if options.heads == () or options.include_heads == () or options.include_layers == ():
        raise InputError("an empty list of heads or layers shows nothing; leave it out to show all")
    _check_index(options.query_index, n_query, "query token")
    return dataclasses.replace(options, stack=stack, layer=layer)


def _check_index(value: int, limit: int, what: str) -> None:
    if not 0 <= value < limit:
        raise InputError(f"{what} {value} does not exist: this trace has {what}s 0..{limit - 1} (0-based)")


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


def _neuron_payloads(trace: Trace, options: ViewOptions) -> list[NeuronPayload]:
    """Queries and keys for the neuron view: all layers if they fit the budget, else one layer, else one head."""
    stack = options.stack or trace.main_stack
    if stack not in trace.qk:
        have = f" (it has them for {', '.join(trace.qk)})" if trace.qk else ""
        raise InputError(
            f"the neuron view needs the {stack} stack's queries and keys{have}: trace with qk=True "
            "(CLI: attnscope view ... --views neuron captures them), or call neuron_view(model, tokenizer, ...)"
        )
    qk = trace.qk[stack]
    n_layers, n_heads, n_query, dim = qk.queries.shape
    n_key = qk.keys.shape[2]
    layer = options.layer or 0
    per_head = (n_query + n_key) * dim * 4 + (n_query * n_key * 4 if qk.bias is not None else 0)
    per_layer = per_head * n_heads + n_query * n_key * 4
    if per_layer * n_layers <= NEURON_BUDGET:
        layers, heads = list(range(n_layers)), list(range(n_heads))
    elif per_layer <= NEURON_BUDGET:
        layers, heads = [layer], list(range(n_heads))
    else:
        layers, heads = [layer], [options.heads[0] if options.heads else 0]
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
    text = json.dumps(payload, ensure_ascii=True, separators=(",", ":"), allow_nan=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
