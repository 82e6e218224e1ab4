"""The Trace: what a model attended to for one input, exactly as computed, and its file format.

A trace holds one float32 array [layers, heads, query, key] per attention *stack*: ``"encoder"``
(encoder self-attention, also encoder-only models), ``"decoder"`` (decoder self-attention, also
decoder-only models) and ``"cross"`` (decoder queries over encoder keys). Optionally, per stack, the
query and key vectors that produced it (:class:`QK`), the value vectors and output projection that turn
it into the block's output (:class:`Values`), and contribution measures computed from it
(:class:`Contribution`, see :mod:`attnscope.contrib`).

File format (version 2): one safetensors file. Arrays are named ``attention.<stack>``,
``qk.<stack>.{queries,keys,scale,bias,mask}``, ``values.<stack>.{vectors,out_weight,out_bias,residual,
norm_weight,norm_eps}``, ``contrib.<name>``, ``<side>.{special,segment,word_ids,offsets}`` where side is
``tokens`` or ``target_tokens``; the header's metadata key ``attnscope`` holds JSON with
``format_version``, the model info, token strings and texts, and ``contributions`` ({name: {measure,
stack, params}}). Version 2 only added the ``values.*`` and ``contrib.*`` arrays, so version 1 files
still load.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from attnscope.errors import InputError, TraceFileError
from attnscope.files import check_target, write_atomic
from attnscope.tokens import Tokens

FORMAT_VERSION = 2
READABLE_VERSIONS = (1, 2)
"""Versions :meth:`Trace.load` reads: 2 added optional arrays (values, contributions) to 1."""
STACKS = ("encoder", "decoder", "cross")
_TOKEN_ARRAYS = ("special", "segment", "word_ids", "offsets")
TENSORS_NAME = "attention (from tensors)"  # the model name of a trace built from bare attention tensors

FloatArray = NDArray[np.float32]


@dataclass(frozen=True)
class ModelInfo:
    """What a trace needs to know about the model that made it."""

    name: str
    model_type: str = "unknown"
    architecture: str = "unknown"
    num_layers: int = 0
    num_heads: int = 0
    head_dim: int = 0
    is_encoder_decoder: bool = False
    is_causal: bool = False


@dataclass(frozen=True, eq=False)
class QK:
    """Query and key vectors of one stack, and every other term of the attention score.

    ``softmax(queries @ keys.T * scale + bias + mask)`` rebuilds the stack's attention.
    Shapes: queries [L, H, Q, d]; keys [L, H, K, d] (grouped-query heads already mapped to the query
    head that uses them); scale [L]; bias [L, H, Q, K] or None (position bias such as T5's); mask
    [L, Q, K] additive (0 where allowed, a large negative number or -inf where not).
    """

    queries: FloatArray
    keys: FloatArray
    scale: FloatArray
    mask: FloatArray
    bias: FloatArray | None = None

    def scores(self, layer: int, head: int) -> FloatArray:
        """Pre-softmax scores [Q, K] of one head: every term summed."""
        s: FloatArray = self.queries[layer, head] @ self.keys[layer, head].T * self.scale[layer]
        if self.bias is not None:
            s = s + self.bias[layer, head]
        return np.asarray(s + self.mask[layer], dtype=np.float32)

    def rebuild(self) -> FloatArray:
        """softmax(q·kᵀ·scale + bias + mask) for every layer and head: [L, H, Q, K]."""
        s = np.einsum("lhqd,lhkd->lhqk", self.queries, self.keys) * self.scale[:, None, None, None]
        if self.bias is not None:
            s = s + self.bias
        s = s + self.mask[:, None]
        s = s - s.max(axis=-1, keepdims=True)
        e = np.exp(s)
        return np.asarray(e / e.sum(axis=-1, keepdims=True), dtype=np.float32)

    def arrays(self) -> dict[str, FloatArray]:
        out = {"queries": self.queries, "keys": self.keys, "scale": self.scale, "mask": self.mask}
        if self.bias is not None:
            out["bias"] = self.bias
        return out


@dataclass(frozen=True, eq=False)
class Values:
    """What each head writes into the residual stream of one stack: value vectors and output projection.

    ``sum_h attention[l, h] @ vectors[l, h] @ out_weight[l, h] + out_bias[l]`` rebuilds the output of the
    attention block's output projection. Shapes: vectors [L, H, K, d] (grouped-query value heads mapped to
    the query head that uses them); out_weight [L, H, d, D] (the rows of W_o that read head h); out_bias
    [L, D] or None. For post-LN blocks (BERT family, BART/Marian self-attention) also residual [L, Q, D]
    (the block input the residual adds back), norm_weight [L, D] and norm_eps [L] of the LayerNorm after
    the sum; None elsewhere.
    """

    vectors: FloatArray
    out_weight: FloatArray
    out_bias: FloatArray | None = None
    residual: FloatArray | None = None
    norm_weight: FloatArray | None = None
    norm_eps: FloatArray | None = None

    def transformed(self, layer: int) -> FloatArray:
        """f(x) of Kobayashi et al.: each head's value vectors through its W_o slice, [H, K, D]."""
        out: FloatArray = np.matmul(self.vectors[layer], self.out_weight[layer])
        return out

    def rebuild(self, attention: FloatArray) -> FloatArray:
        """The output projection's output [L, Q, D] from the stack's attention [L, H, Q, K]."""
        mixed = np.matmul(attention, self.vectors)  # [L, H, Q, d]: α·v first, the cheap order
        out = np.einsum("lhqd,lhde->lqe", mixed, self.out_weight, optimize=True)
        if self.out_bias is not None:
            out = out + self.out_bias[:, None, :]
        return np.asarray(out, dtype=np.float32)

    def arrays(self) -> dict[str, FloatArray]:
        """The arrays that are present, by file name."""
        out = {"vectors": self.vectors, "out_weight": self.out_weight}
        for name in ("out_bias", "residual", "norm_weight", "norm_eps"):
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        return out


@dataclass(frozen=True, eq=False)
class Contribution:
    """One contribution measure computed on a trace (see :mod:`attnscope.contrib`), kept with it."""

    measure: str
    stack: str
    array: FloatArray
    params: Mapping[str, Any] = field(default_factory=dict)


@dataclass(eq=False)
class Trace:
    """The attention of every layer and head for one input, with its tokens and model info."""

    model: ModelInfo
    tokens: Tokens
    attention: dict[str, FloatArray]
    target_tokens: Tokens | None = None
    qk: dict[str, QK] = field(default_factory=dict)
    truncated: bool = False
    values: dict[str, Values] = field(default_factory=dict)
    contributions: dict[str, Contribution] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for stack, att in self.attention.items():
            if stack not in STACKS:
                raise ValueError(f"unknown attention stack {stack!r}; expected one of {STACKS}")
            q_tokens, k_tokens = self.sides(stack)
            if att.ndim != 4 or att.shape[2:] != (len(q_tokens), len(k_tokens)):
                raise ValueError(
                    f"{stack} attention has shape {att.shape}; expected [layers, heads, "
                    f"{len(q_tokens)}, {len(k_tokens)}] for its tokens"
                )
        for stack in self.qk:
            if stack not in self.attention:
                raise ValueError(f"queries/keys given for stack {stack!r}, which has no attention")
        for stack in self.values:
            if stack not in self.attention:
                raise ValueError(f"values given for stack {stack!r}, which has no attention")

    # -- access ---------------------------------------------------------------------------------
    @property
    def stacks(self) -> tuple[str, ...]:
        """The attention stacks present, in canonical order."""
        return tuple(s for s in STACKS if s in self.attention)

    @property
    def main_stack(self) -> str:
        """The stack a view shows by default: encoder self-attention if present, else decoder."""
        return self.stacks[0]

    def sides(self, stack: str) -> tuple[Tokens, Tokens]:
        """(query tokens, key tokens) of a stack."""
        target = self.target_tokens if self.target_tokens is not None else self.tokens
        if stack == "encoder":
            return self.tokens, self.tokens
        if stack == "decoder":
            return target, target
        if stack == "cross":
            return target, self.tokens
        raise KeyError(stack)

    def head(self, layer: int, head: int, stack: str | None = None) -> FloatArray:
        """The [query, key] attention matrix of one head."""
        matrix: FloatArray = self.attention[stack or self.main_stack][layer, head]
        return matrix

    def __repr__(self) -> str:
        shapes = ", ".join(f"{s}={list(a.shape)}" for s, a in self.attention.items())
        qk = f", qk={list(self.qk)}" if self.qk else ""
        values = f", values={list(self.values)}" if self.values else ""
        contrib = f", contributions={list(self.contributions)}" if self.contributions else ""
        return f"Trace(model={self.model.name!r}, tokens={len(self.tokens)}, {shapes}{qk}{values}{contrib})"

    # -- BertViz-shaped input -------------------------------------------------------------------
    @classmethod
    def from_attentions(
        cls,
        attention: Any = None,
        tokens: Sequence[str] | None = None,
        sentence_b_start: int | None = None,
        *,
        encoder_attention: Any = None,
        decoder_attention: Any = None,
        cross_attention: Any = None,
        encoder_tokens: Sequence[str] | None = None,
        decoder_tokens: Sequence[str] | None = None,
        model_name: str = TENSORS_NAME,
    ) -> Trace:
        """Build a Trace from what ``model(..., output_attentions=True)`` returns, as BertViz takes it.

        ``attention`` is the tuple of per-layer tensors [batch=1, heads, query, key] (torch or numpy)
        with ``tokens`` the token strings; for encoder-decoder models pass the three ``*_attention``
        tuples with ``encoder_tokens`` and ``decoder_tokens`` instead. The model's output object itself
        (``outputs = model(..., output_attentions=True)``) is accepted in place of ``attention``.
        ``model_name`` titles the views (default "attention (from tensors)", since bare tensors do not say
        which model made them).
        """
        if _is_model_output(attention):
            output, attention = attention, None
            if getattr(output, "encoder_attentions", None) is not None:
                encoder_attention = _given(encoder_attention, output.encoder_attentions)
                decoder_attention = _given(decoder_attention, getattr(output, "decoder_attentions", None))
                cross_attention = _given(cross_attention, getattr(output, "cross_attentions", None))
                encoder_tokens = _given(encoder_tokens, tokens)
            else:
                attention = getattr(output, "attentions", None)
            if attention is None and encoder_attention is None:
                raise InputError(
                    f"this {type(output).__name__} holds no attention: run the model with "
                    "output_attentions=True (and attn_implementation='eager')"
                )
        if attention is not None:
            if tokens is None:
                raise InputError("from_attentions needs the token strings along with the attention")
            toks = Tokens.from_strings(tokens, sentence_b_start)
            att = {"encoder": _stack_layers(attention, "attention")}
            _check_square(att["encoder"], len(toks), "attention")
            info = _info_from(model_name, att, is_encoder_decoder=False)
            return cls(model=info, tokens=toks, attention=att)
        if encoder_attention is None and decoder_attention is None:
            raise InputError("pass `attention` (and tokens), or encoder/decoder/cross attention with their tokens")
        if encoder_tokens is None or (decoder_attention is not None and decoder_tokens is None):
            raise InputError("encoder-decoder attention needs encoder_tokens and decoder_tokens")
        enc = Tokens.from_strings(encoder_tokens)
        dec = Tokens.from_strings(decoder_tokens) if decoder_tokens is not None else None
        att = {}
        for stack, value in (
            ("encoder", encoder_attention),
            ("decoder", decoder_attention),
            ("cross", cross_attention),
        ):
            if value is not None:
                att[stack] = _stack_layers(value, f"{stack}_attention")
        if "cross" in att and dec is None:
            raise InputError("cross_attention needs decoder_tokens")
        trace_info = _info_from(model_name, att, is_encoder_decoder=True)
        try:
            return cls(model=trace_info, tokens=enc, attention=att, target_tokens=dec)
        except ValueError as err:
            raise InputError(str(err)) from None

    # -- file format ----------------------------------------------------------------------------
    def save(self, path: str | Path) -> Path:
        """Write the trace as one safetensors file (see the module docstring for the layout)."""
        from safetensors.numpy import save

        path = check_target(path, "trace file")
        tensors: dict[str, np.ndarray] = {}
        for stack, att in self.attention.items():
            tensors[f"attention.{stack}"] = np.ascontiguousarray(att, dtype=np.float32)
        for stack, qk in self.qk.items():
            for name, arr in qk.arrays().items():
                tensors[f"qk.{stack}.{name}"] = np.ascontiguousarray(arr, dtype=np.float32)
        for stack, values in self.values.items():
            for name, arr in values.arrays().items():
                tensors[f"values.{stack}.{name}"] = np.ascontiguousarray(arr, dtype=np.float32)
        for name, contribution in self.contributions.items():
            tensors[f"contrib.{name}"] = np.ascontiguousarray(contribution.array, dtype=np.float32)
        meta: dict[str, Any] = {
            "format_version": FORMAT_VERSION,
            "model": dataclasses.asdict(self.model),
            "truncated": self.truncated,
        }
        if self.contributions:
            meta["contributions"] = {
                name: {"measure": c.measure, "stack": c.stack, "params": dict(c.params)}
                for name, c in self.contributions.items()
            }
        for side, toks in (("tokens", self.tokens), ("target_tokens", self.target_tokens)):
            if toks is None:
                continue
            meta[side] = {"raw": list(toks.raw), "display": list(toks.display), "texts": list(toks.texts)}
            for name in _TOKEN_ARRAYS:
                tensors[f"{side}.{name}"] = np.ascontiguousarray(getattr(toks, name))
        tensors = {k: v.astype(np.uint8) if v.dtype == np.bool_ else v for k, v in tensors.items()}
        data = save(tensors, metadata={"attnscope": json.dumps(meta, ensure_ascii=False)})
        return write_atomic(path, data, "trace file")

    @classmethod
    def load(cls, path: str | Path) -> Trace:
        """Read a trace file written by :meth:`save`; a clear error for anything else."""
        from safetensors import SafetensorError
        from safetensors.numpy import load_file

        path = Path(path)
        if not path.is_file():
            raise TraceFileError(f"no trace file at {path}")
        try:
            tensors = load_file(str(path))
            with path.open("rb") as fh:
                header_len = int.from_bytes(fh.read(8), "little")
                header = json.loads(fh.read(header_len))
            meta = json.loads(header["__metadata__"]["attnscope"])
        except RecursionError:
            raise TraceFileError(f"{path} is not an attnscope trace file (its header is nested too deeply)") from None
        except (SafetensorError, OSError, ValueError, KeyError, TypeError) as err:
            raise TraceFileError(f"{path} is not an attnscope trace file ({err})") from None
        version = meta.get("format_version") if isinstance(meta, dict) else None
        if version not in READABLE_VERSIONS:
            raise TraceFileError(
                f"{path} has trace format version {version!r}; this attnscope reads versions "
                f"{', '.join(map(str, READABLE_VERSIONS))}"
            )
        if not any(f"attention.{stack}" in tensors for stack in STACKS):
            raise TraceFileError(
                f"{path} holds no attention arrays (attention.encoder, .decoder or .cross); it is damaged or "
                "not a trace; make it again with attnscope trace"
            )
        try:
            return cls._from_parts(meta, tensors)
        except (KeyError, TypeError, ValueError) as err:
            raise TraceFileError(f"{path} is a damaged trace file ({err!r})") from None

    @classmethod
    def _from_parts(cls, meta: Mapping[str, Any], tensors: Mapping[str, np.ndarray]) -> Trace:
        sides: dict[str, Tokens] = {}
        for side in ("tokens", "target_tokens"):
            if side in meta:
                strings = meta[side]
                sides[side] = Tokens(
                    raw=tuple(strings["raw"]),
                    display=tuple(strings["display"]),
                    texts=tuple(strings["texts"]),
                    special=tensors[f"{side}.special"].astype(bool),
                    segment=tensors[f"{side}.segment"],
                    word_ids=tensors[f"{side}.word_ids"],
                    offsets=tensors[f"{side}.offsets"],
                )
        attention = {s: tensors[f"attention.{s}"] for s in STACKS if f"attention.{s}" in tensors}
        qk = {}
        for s in STACKS:
            if f"qk.{s}.queries" in tensors:
                qk[s] = QK(
                    queries=tensors[f"qk.{s}.queries"],
                    keys=tensors[f"qk.{s}.keys"],
                    scale=tensors[f"qk.{s}.scale"],
                    mask=tensors[f"qk.{s}.mask"],
                    bias=tensors.get(f"qk.{s}.bias"),
                )
        values = {
            s: Values(**{n.split(".", 2)[2]: a for n, a in tensors.items() if n.startswith(f"values.{s}.")})
            for s in STACKS
            if f"values.{s}.vectors" in tensors
        }
        contributions = {
            name: Contribution(
                measure=str(info["measure"]),
                stack=str(info["stack"]),
                array=tensors[f"contrib.{name}"],
                params=dict(info.get("params", {})),
            )
            for name, info in meta.get("contributions", {}).items()
        }
        return cls(
            model=ModelInfo(**meta["model"]),
            tokens=sides["tokens"],
            target_tokens=sides.get("target_tokens"),
            attention=attention,
            qk=qk,
            truncated=bool(meta.get("truncated", False)),
            values=values,
            contributions=contributions,
        )


def _stack_layers(value: Any, what: str) -> FloatArray:
    """Turn a tuple of per-layer [1, H, Q, K] tensors (or one array) into float32 [L, H, Q, K]."""
    layers = value if isinstance(value, (tuple, list)) else [value]
    arrays = []
    for layer in layers:
        if hasattr(layer, "detach"):  # a torch tensor, without importing torch
            layer = layer.detach().float().cpu().numpy()
        arrays.append(np.asarray(layer, dtype=np.float32))
    if not arrays:
        raise InputError(
            f"{what} is an empty tuple: expected one tensor per layer. On transformers 5, model(...)[-1] is the "
            "empty cross_attentions of an encoder-only model; pass outputs.attentions (or the output itself)"
        )
    shapes = {a.shape for a in arrays}
    if len(shapes) != 1:
        raise InputError(f"{what}: layers have different shapes {sorted(shapes)}")
    stacked = np.stack(arrays)
    if stacked.ndim == 5:
        if stacked.shape[1] != 1:
            raise InputError(
                f"{what} has batch size {stacked.shape[1]}; pass one example (e.g. attention[i:i+1] per layer)"
            )
        stacked = stacked[:, 0]
    if stacked.ndim != 4:
        raise InputError(f"{what}: expected per-layer tensors [batch, heads, query, key], got {arrays[0].shape}")
    return stacked


def _is_model_output(value: Any) -> bool:
    """True for a Hugging Face ModelOutput (or anything carrying ``attentions``), not a tuple of tensors."""
    if value is None or isinstance(value, (tuple, list, np.ndarray)) or hasattr(value, "detach"):
        return False
    return hasattr(value, "attentions") or hasattr(value, "encoder_attentions")


def _given(value: Any, default: Any) -> Any:
    return default if value is None else value


def _check_square(att: FloatArray, n: int, what: str) -> None:
    if att.shape[2:] != (n, n):
        raise InputError(f"{what} covers {att.shape[2]}x{att.shape[3]} positions but {n} tokens were given")


def _info_from(name: str, attention: Mapping[str, FloatArray], *, is_encoder_decoder: bool) -> ModelInfo:
    first = next(iter(attention.values()))
    return ModelInfo(
        name=name,
        num_layers=int(first.shape[0]),
        num_heads=int(first.shape[1]),
        is_encoder_decoder=is_encoder_decoder,
    )
