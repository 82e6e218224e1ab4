"""What the index stores per token: each layer's output embedding and its per-head context vectors.

One padded forward pass per batch (texts sorted by length inside a chunk, as :func:`attnscope.tracing.trace_many`
groups them) with ``output_hidden_states`` and ``output_attentions``, and a forward pre-hook on each chosen
layer's output projection (the adapter's ``output``): its input is the concatenation over heads of
``α·v``, each head's context vector before the heads are mixed (what exBERT searches). The attention of
the chosen layers gives, per token, the key it attends to most (heads averaged).

Vectors are stored normalised so that inner product is cosine similarity (:func:`normalise`):
embeddings as a whole; context vectors head by head (each head's part has length ``1/√H``), so a query
that keeps only heads S (the others zeroed, as exBERT does) scores a corpus token by the mean, over S,
of the per-head cosine similarities (:func:`query_vector`), and a token scores 1 against itself for any S.
"""

from __future__ import annotations

import hashlib
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from attnscope.corpus.protocol import TraceInput
from attnscope.errors import InputError, UnsupportedModelError

if TYPE_CHECKING:
    from attnscope.loading import ModelHandle
    from attnscope.tokens import Tokens

KINDS = ("context", "embedding")
EPS = 1e-12


@dataclass
class TokenVectors:
    """One text's tokens (specials included) and, per chosen layer, its vectors [layers, tokens, dim] (raw)."""

    tokens: Tokens
    truncated: bool
    embedding: NDArray[np.float32]
    context: NDArray[np.float32]
    attends_to: NDArray[np.int32]  # [layers, tokens]: the key each token attends to most, heads averaged
    model: str = ""  # the model's fingerprint, set by the index build


def check_supported(handle: ModelHandle) -> None:
    """Encoder-only and decoder-only models; an encoder-decoder is refused with a clear error."""
    if handle.info.is_encoder_decoder:
        raise UnsupportedModelError(
            f"{handle.name} is an encoder-decoder model; the corpus index supports encoder-only and decoder-only models"
        )


def model_fingerprint(handle: ModelHandle) -> str:
    """sha256 of the model's facts, every parameter's name and shape and its first 64 values: tells models apart.

    Read from the base model (without pooler), so a handle loaded with its LM head (``load(..., lm_head=True)``)
    matches an index built with the bare model."""
    import torch

    info = handle.info
    h = hashlib.sha256()
    h.update(repr((info.model_type, info.num_layers, info.num_heads, info.head_dim)).encode())
    h.update(repr(len(handle.tokenizer)).encode())
    base = getattr(handle.model, "base_model", handle.model)  # the same with or without an LM head
    with torch.no_grad():
        for name, param in base.named_parameters():
            if name.startswith("pooler."):  # a bare BERT has a pooler, its masked-LM body none; never indexed
                continue
            h.update(f"{name}:{tuple(param.shape)}".encode())
            h.update(param.detach().reshape(-1)[:64].to("cpu", torch.float32).numpy().tobytes())
    return h.hexdigest()


def check_layers(handle: ModelHandle, layers: Sequence[int] | None) -> tuple[int, ...]:
    """The chosen layers, 0-based and sorted (default all); out-of-range layers are an error."""
    n = handle.info.num_layers
    chosen = tuple(range(n)) if layers is None else tuple(sorted(set(layers)))
    bad = [layer for layer in chosen if not 0 <= layer < n]
    if bad or not chosen:
        raise InputError(f"layers must lie in 0..{n - 1} for {handle.name} (0-based), got {list(layers or [])}")
    return chosen


def token_vectors(
    handle: ModelHandle,
    inputs: Sequence[TraceInput],
    layers: Sequence[int],
    *,
    batch_size: int = 16,
    truncation: bool = False,
    sources: Sequence[str] | None = None,
) -> list[TokenVectors]:
    """Every input's vectors at ``layers``, in input order (batched, length-sorted in windows of 8 batches)."""
    from attnscope.tracing import _encode

    check_supported(handle)
    encoded = []
    for i, item in enumerate(inputs):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)  # a cut text is counted (TokenVectors.truncated)
                encoded.append(_encode(handle, item.text, item.text_pair, None, truncation))
        except InputError as err:
            where = f"{sources[i]}: " if sources is not None and sources[i] else ""
            raise InputError(f"{where}{err}") from None
    out: list[TokenVectors | None] = [None] * len(encoded)
    window = batch_size * 8
    for start in range(0, len(encoded), window):
        chunk = list(range(start, min(start + window, len(encoded))))
        order = sorted(chunk, key=lambda i: len(encoded[i].input_ids))
        for b in range(0, len(order), batch_size):
            idx = order[b : b + batch_size]
            for i, vec in zip(idx, _run(handle, [encoded[i] for i in idx], layers), strict=True):
                out[i] = vec
    return [v for v in out if v is not None]


def _run(handle: ModelHandle, batch: list[Any], layers: Sequence[int]) -> list[TokenVectors]:
    import torch

    from attnscope.tracing import _attention_stacks, _model_inputs

    inputs = _model_inputs(handle, batch)
    with _context_hooks(handle, layers) as captured, torch.inference_mode():
        outputs = handle.model(**inputs, output_attentions=True, output_hidden_states=True, return_dict=True)
        hidden = outputs.hidden_states
        attention = next(iter(_attention_stacks(handle, outputs).values()))
        emb = torch.stack([hidden[layer + 1] for layer in layers]).to("cpu", torch.float32).numpy()
        ctx = torch.stack([captured[layer] for layer in layers]).to("cpu", torch.float32).numpy()
        top = torch.stack([attention[layer].mean(dim=1).argmax(dim=-1) for layer in layers])
        attends = top.to("cpu", torch.int32).numpy()
    result = []
    for b, enc in enumerate(batch):
        n = len(enc.input_ids)
        result.append(
            TokenVectors(
                tokens=enc.tokens,
                truncated=enc.truncated,
                embedding=np.ascontiguousarray(emb[:, b, :n]),
                context=np.ascontiguousarray(ctx[:, b, :n]),
                attends_to=np.ascontiguousarray(attends[:, b, :n]),
            )
        )
    return result


@contextmanager
def _context_hooks(handle: ModelHandle, layers: Sequence[int]) -> Iterator[dict[int, Any]]:
    """Forward pre-hooks on the output projections of ``layers``; yields layer -> its input [B, T, H·d]."""
    from attnscope.adapters import SELF, adapter_for
    from attnscope.qk import _required, _submodule

    adapter = adapter_for(handle.info.model_type)
    path = adapter.stacks.get(SELF)
    model = handle.model
    base = getattr(model, "base_model", model)
    modules = None
    if path is not None:
        modules = _submodule(base, path.layers) or _submodule(model, path.layers)
    if path is None or modules is None or not path.output:
        raise UnsupportedModelError(
            f"{type(model).__name__} does not have the layout the {adapter.family} adapter expects"
        )
    blocks = list(modules.children())
    captured: dict[int, Any] = {}
    handles = []
    try:
        for layer in layers:
            output = _required(blocks[layer], path.output)

            def keep(module: Any, args: tuple[Any, ...], layer: int = layer) -> None:
                captured[layer] = args[0]

            handles.append(output.register_forward_pre_hook(keep))
        yield captured
    finally:
        for h in handles:
            h.remove()


# -- normalisation ----------------------------------------------------------------------------------


def normalise(kind: str, vectors: NDArray[np.float32], heads: int) -> NDArray[np.float32]:
    """Stored form of raw vectors [N, dim]: unit length (embedding), or each head's part of length 1/√H (context)."""
    v = np.asarray(vectors, dtype=np.float32)
    if kind == "embedding":
        return np.asarray(v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), EPS), dtype=np.float32)
    n, dim = v.shape
    parts = v.reshape(n, heads, dim // heads)
    parts = parts / np.maximum(np.linalg.norm(parts, axis=-1, keepdims=True), EPS) / np.sqrt(heads)
    return np.ascontiguousarray(parts.reshape(n, dim), dtype=np.float32)


def query_vector(
    kind: str, raw: NDArray[np.float32], heads: int, selected: Sequence[int] | None
) -> NDArray[np.float32]:
    """The query [dim] for one token: its stored form; for context, unselected heads zeroed and the rest scaled
    by H/|S|, so the inner product with a stored vector is the mean per-head cosine over the selected heads."""
    q: NDArray[np.float32] = normalise(kind, raw[None, :], heads)[0]
    if kind == "embedding" or selected is None:
        return q
    parts = q.reshape(heads, -1).copy()
    keep = np.zeros(heads, dtype=bool)
    keep[list(selected)] = True
    parts[~keep] = 0.0
    parts *= heads / len(selected)
    out: NDArray[np.float32] = np.ascontiguousarray(parts.reshape(-1), dtype=np.float32)
    return out
