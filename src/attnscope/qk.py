"""Capturing the query, key and value vectors every head used, through hooks on the model's own modules.

:func:`capture_qk` reads the model's :class:`~attnscope.adapters.Adapter` and hooks each attention module
it names: forward hooks on the query and key projections (their outputs), a forward pre-hook on the
attention module for its inputs (mask; rotary cos/sin) and, for T5, a forward hook for the position bias
it returns. With ``values=True`` also the value projection (its output, and its input: the block input of
post-LN blocks); the output projection's and LayerNorm's weights are read from the modules afterwards.
The hooks only keep references to tensors the model made anyway, so the forward pass pays
almost nothing; :meth:`QKRecorder.collect` does the head split, rotary, grouped-query mapping and the one
copy to numpy afterwards. Every hook is removed when the ``with`` block ends, also on error.
"""

from __future__ import annotations

import inspect
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from attnscope.adapters import SELF, Adapter, StackPath, adapter_for
from attnscope.errors import InputError, UnsupportedModelError
from attnscope.traces import QK, FloatArray, Values

if TYPE_CHECKING:
    import torch
    from torch import nn
    from torch.utils.hooks import RemovableHandle

    from attnscope.loading import ModelHandle

RotaryFn = Callable[[Any, Any, Any, Any], tuple[Any, Any]]


@contextmanager
def capture_qk(handle: ModelHandle, *, values: bool = False) -> Iterator[QKRecorder]:
    """Hook the model's attention so that one forward pass (batch of 1) inside the block records q and k.

    Raises UnsupportedModelError on entry for a model type without an adapter. After the block,
    ``recorder.collect()`` returns one :class:`~attnscope.traces.QK` per attention stack and, with
    ``values=True``, ``recorder.collect_values()`` one :class:`~attnscope.traces.Values`.
    """
    adapter = adapter_for(handle.info.model_type)
    recorder = QKRecorder(adapter, values=values)
    try:
        recorder._attach(handle)
        yield recorder
    finally:
        recorder._detach()


@dataclass(eq=False)
class _Slot:
    """One attention module: how to read it, and what its hooks saw during the forward pass."""

    adapter: Adapter
    module: nn.Module
    head_dim: int
    scale: float
    mask_index: int | None
    rotary_index: int | None
    rotary_fn: RotaryFn | None
    output: nn.Module | None = None
    norm: nn.Module | None = None
    query: torch.Tensor | None = None
    key: torch.Tensor | None = None
    value: torch.Tensor | None = None
    value_input: torch.Tensor | None = None
    mask: Any = None
    rotary: Any = None
    bias: Any = None
    calls: int = 0

    # -- hooks: references only, no copies and no device syncs ---------------------------------
    def on_inputs(self, module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        self.calls += 1
        self.mask = _argument(args, kwargs, self.adapter.mask_arg, self.mask_index)
        if self.rotary_fn is not None:
            self.rotary = _argument(args, kwargs, self.adapter.rotary_arg, self.rotary_index)

    def on_query(self, module: nn.Module, args: tuple[Any, ...], output: torch.Tensor) -> None:
        self.query = output

    def on_key(self, module: nn.Module, args: tuple[Any, ...], output: torch.Tensor) -> None:
        self.key = output

    def on_value(self, module: nn.Module, args: tuple[Any, ...], output: torch.Tensor) -> None:
        self.value = output
        self.value_input = args[0] if args else None

    def on_output(self, module: nn.Module, args: tuple[Any, ...], output: Any) -> None:
        index = self.adapter.bias_output
        self.bias = output[index] if index is not None and isinstance(output, tuple) else None

    # -- after the forward pass ----------------------------------------------------------------
    def query_key(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Queries [H, Q, d] and keys [H, K, d], exactly as the scores used them (kv heads mapped to H)."""
        q, k = self.query, self.key
        if self.adapter.fused and q is not None:
            q, k, _ = q.split(q.shape[-1] // 3, dim=-1)
        if q is None or k is None:
            raise UnsupportedModelError(
                f"{type(self.module).__name__} ran without calling its query/key projections "
                f"({self.adapter.query!r}, {self.adapter.key!r}) that the {self.adapter.family} adapter expects"
            )
        if q.shape[0] != 1:
            raise InputError(f"q/k capture records one example at a time; the model ran a batch of {q.shape[0]}")
        q, k = self._heads(q), self._heads(k)
        if self.rotary_fn is not None:
            if not isinstance(self.rotary, (tuple, list)) or len(self.rotary) != 2:
                raise UnsupportedModelError(
                    f"{type(self.module).__name__} got no (cos, sin) in {self.adapter.rotary_arg!r}, "
                    "so its rotary embedding cannot be applied to the captured queries and keys"
                )
            cos, sin = self.rotary
            q, k = self.rotary_fn(q, k, cos, sin)
        return q[0], _to_query_heads(k, q.shape[1])[0]

    def values(self, heads: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """Values [H, K, d] (kv heads mapped to H), W_o per head [H, d, D] and b_o [D] or None."""
        v = self.value
        if self.adapter.fused and self.query is not None:
            v = self.query.split(self.query.shape[-1] // 3, dim=-1)[2]
        if v is None or self.output is None:
            raise UnsupportedModelError(
                f"{type(self.module).__name__} ran without calling its value projection {self.adapter.value!r} "
                f"that the {self.adapter.family} adapter expects"
            )
        weight = cast("torch.Tensor", self.output.weight)  # nn.Linear: [D, H·d]; Conv1D: [H·d, D]
        w = weight if self.adapter.output_conv1d else weight.T
        bias = getattr(self.output, "bias", None)
        return _to_query_heads(self._heads(v), heads)[0], w.unflatten(0, (heads, self.head_dim)), bias

    def _heads(self, t: torch.Tensor) -> torch.Tensor:
        """[B, T, H·d] -> [B, H, T, d]."""
        out: torch.Tensor = t.unflatten(-1, (-1, self.head_dim)).transpose(1, 2)
        return out


def _to_query_heads(t: torch.Tensor, heads: int) -> torch.Tensor:
    """Grouped-query attention: query head h uses kv head h // (heads / kv_heads); [B, H_kv, T, d] -> [B, H, T, d]."""
    kv_heads = t.shape[1]
    return t if kv_heads == heads else t.repeat_interleave(heads // kv_heads, dim=1)


class QKRecorder:
    """What the hooks of :func:`capture_qk` saw; :meth:`collect` turns it into one QK per stack."""

    def __init__(self, adapter: Adapter, *, values: bool = False) -> None:
        self.adapter = adapter
        self.values = values
        self._stacks: dict[str, list[_Slot]] = {}
        self._handles: list[RemovableHandle] = []

    def collect(self) -> dict[str, QK]:
        """One :class:`QK` per attention stack that ran, as float32 numpy arrays."""
        return {stack: _collect_stack(slots) for stack, slots in self._ran().items()}

    def collect_values(self) -> dict[str, Values]:
        """One :class:`Values` per attention stack that ran (needs ``capture_qk(..., values=True)``)."""
        if not self.values:
            raise UnsupportedModelError("values were not captured: use capture_qk(handle, values=True)")
        return {stack: _collect_values(slots) for stack, slots in self._ran().items()}

    def _ran(self) -> dict[str, list[_Slot]]:
        result: dict[str, list[_Slot]] = {}
        for stack, slots in self._stacks.items():
            calls = [s.calls for s in slots]
            if not any(calls):
                continue  # e.g. a T5 used as encoder only: its decoder stack did not run
            if any(c != 1 for c in calls):
                raise UnsupportedModelError(
                    f"q/k capture records exactly one forward pass, but the {stack} attention modules ran "
                    f"{calls} times; run the model once inside capture_qk"
                )
            result[stack] = slots
        if not result:
            raise UnsupportedModelError("no hooked attention module ran; run the model once inside capture_qk")
        return result

    def _attach(self, handle: ModelHandle) -> None:
        model = handle.model
        base = getattr(model, "base_model", model)
        for key, path in self.adapter.stacks.items():
            layers = _submodule(base, path.layers)
            if layers is None:
                layers = _submodule(model, path.layers)
            if layers is None:
                continue
            stack = key if key != SELF else ("decoder" if handle.info.is_causal else "encoder")
            self._stacks[stack] = [self._hook(layer, path) for layer in layers.children()]
        if not self._stacks:
            wanted = ", ".join(sorted({p.layers for p in self.adapter.stacks.values()}))
            raise UnsupportedModelError(
                f"{type(model).__name__} does not have the layout the {self.adapter.family} q/k adapter expects "
                f"(no {wanted}); its attention still traces without qk"
            )

    def _hook(self, layer: nn.Module, path: StackPath) -> _Slot:
        import torch

        adapter = self.adapter
        attention = _required(layer, path.attention)
        head_dim = getattr(attention, adapter.head_dim, None)
        if not isinstance(head_dim, int) or head_dim <= 0:
            raise UnsupportedModelError(
                f"{type(attention).__name__} has no head size attribute {adapter.head_dim!r} "
                f"that the {adapter.family} adapter expects"
            )
        scale = float(getattr(attention, adapter.scale)) if adapter.scale else head_dim**-0.5
        rotary_fn = None
        if adapter.rotary is not None:
            rotary_fn = getattr(sys.modules[type(attention).__module__], adapter.rotary, None)
            if not callable(rotary_fn):
                raise UnsupportedModelError(
                    f"{type(attention).__module__} has no {adapter.rotary}() to apply rotary embedding with"
                )
        slot = _Slot(
            adapter=adapter,
            module=attention,
            head_dim=head_dim,
            scale=scale,
            mask_index=_param_index(attention, adapter.mask_arg),
            rotary_index=_param_index(attention, adapter.rotary_arg),
            rotary_fn=rotary_fn,
        )
        if self.values:
            slot.output = _required(layer, path.output)
            if not isinstance(getattr(slot.output, "weight", None), torch.Tensor):
                raise UnsupportedModelError(f"{type(slot.output).__name__} at {path.output!r} has no weight matrix")
            slot.norm = _required(layer, path.post_norm) if path.post_norm else None
            if not adapter.fused:
                self._handles.append(_required(attention, adapter.value).register_forward_hook(slot.on_value))
        self._handles.append(attention.register_forward_pre_hook(slot.on_inputs, with_kwargs=True))
        self._handles.append(_required(attention, adapter.query).register_forward_hook(slot.on_query))
        if not adapter.fused:
            self._handles.append(_required(attention, adapter.key).register_forward_hook(slot.on_key))
        if adapter.bias_output is not None:
            self._handles.append(attention.register_forward_hook(slot.on_output))
        return slot

    def _detach(self) -> None:
        while self._handles:
            self._handles.pop().remove()


def _collect_stack(slots: list[_Slot]) -> QK:
    import torch

    with torch.no_grad():
        return _collect_qk(slots)


def _collect_values(slots: list[_Slot]) -> Values:
    import torch

    with torch.no_grad():
        heads = [s.query_key()[0].shape[0] for s in slots]
        parts = [s.values(h) for s, h in zip(slots, heads, strict=True)]
        biases = [b for _, _, b in parts]
        norms = [s.norm for s in slots]
        residual = norm_weight = norm_eps = None
        if all(n is not None for n in norms):
            inputs = [s.value_input for s in slots]
            if any(x is None for x in inputs):
                raise UnsupportedModelError("the value projection ran without an input tensor to read")
            residual = _numpy(torch.stack([x[0] for x in inputs if x is not None]))
            norm_weight = _numpy(torch.stack([cast("torch.Tensor", n.weight) for n in norms if n is not None]))
            norm_eps = np.asarray([float(getattr(n, "eps", 1e-12)) for n in norms], dtype=np.float32)
        return Values(
            vectors=_numpy(torch.stack([v for v, _, _ in parts])),
            out_weight=_numpy(torch.stack([w for _, w, _ in parts])),
            out_bias=_numpy(torch.stack(biases)) if all(b is not None for b in biases) else None,  # type: ignore[arg-type]
            residual=residual,
            norm_weight=norm_weight,
            norm_eps=norm_eps,
        )


def _collect_qk(slots: list[_Slot]) -> QK:
    import torch

    queries, keys, masks, biases = [], [], [], []
    converted: dict[int, torch.Tensor] = {}  # layers usually share one mask tensor: convert it once
    for slot in slots:
        q, k = slot.query_key()
        q_len, k_len = q.shape[1], k.shape[1]
        queries.append(q)
        keys.append(k)
        if id(slot.mask) not in converted:
            converted[id(slot.mask)] = _additive_mask(slot, q_len, k_len)
        masks.append(converted[id(slot.mask)])
        if slot.adapter.bias_output is not None:
            biases.append(_bias(slot, q.shape[0], q_len, k_len))
    bias = torch.stack(biases) if biases else None
    if bias is not None and not bool(torch.count_nonzero(bias)):
        bias = None  # e.g. T5's cross attention: a zero bias says nothing
    return QK(
        queries=_numpy(torch.stack(queries)),
        keys=_numpy(torch.stack(keys)),
        scale=np.asarray([s.scale for s in slots], dtype=np.float32),
        mask=_numpy(torch.stack(masks)),
        bias=None if bias is None else _numpy(bias),
    )


def _additive_mask(slot: _Slot, q_len: int, k_len: int) -> torch.Tensor:
    """The mask a module received as an additive [Q, K] float32 term (0 = attend)."""
    import torch

    mask = slot.mask
    device = slot.query.device if slot.query is not None else None
    if mask is None:
        return torch.zeros(q_len, k_len, dtype=torch.float32, device=device)
    if not isinstance(mask, torch.Tensor):
        raise UnsupportedModelError(f"{type(slot.module).__name__} got a mask of type {type(mask).__name__}")
    m = mask[0] if mask.dim() >= 2 else mask  # batch of one
    while m.dim() > 2:
        if m.shape[0] != 1:
            raise UnsupportedModelError(
                f"{type(slot.module).__name__} got a per-head mask {tuple(mask.shape)}, which QK cannot hold"
            )
        m = m[0]
    if slot.adapter.mask_keeps or m.dtype == torch.bool:
        m = torch.where(m != 0, 0.0, torch.finfo(torch.float32).min)
    try:
        return m.to(torch.float32).expand(q_len, k_len)
    except RuntimeError:
        raise UnsupportedModelError(
            f"{type(slot.module).__name__} got a mask of shape {tuple(mask.shape)} for {q_len} queries and {k_len} keys"
        ) from None


def _bias(slot: _Slot, heads: int, q_len: int, k_len: int) -> torch.Tensor:
    """The additive position bias a module returned, as [H, Q, K]."""
    import torch

    bias = slot.bias
    if not isinstance(bias, torch.Tensor):
        raise UnsupportedModelError(f"{type(slot.module).__name__} returned no position bias tensor")
    b = bias[0] if bias.dim() == 4 else bias
    return b.to(torch.float32).expand(heads, q_len, k_len)


def _numpy(t: torch.Tensor) -> FloatArray:
    import torch

    out: FloatArray = np.ascontiguousarray(t.detach().to(device="cpu", dtype=torch.float32).numpy())
    return out


def _submodule(root: nn.Module, path: str) -> nn.Module | None:
    try:
        return root.get_submodule(path)
    except AttributeError:
        return None


def _required(module: nn.Module, path: str) -> nn.Module:
    found = _submodule(module, path) if path else module
    if found is None:
        raise UnsupportedModelError(f"{type(module).__name__} has no submodule {path!r} where its adapter expects it")
    return found


_INDEX_CACHE: dict[tuple[type, str], int | None] = {}


def _param_index(module: nn.Module, name: str) -> int | None:
    """Position of argument ``name`` among forward's positional parameters (None if it cannot be positional)."""
    cache_key = (type(module), name)
    if cache_key not in _INDEX_CACHE:
        params = [
            p.name
            for p in inspect.signature(module.forward).parameters.values()
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
        ]
        _INDEX_CACHE[cache_key] = params.index(name) if name in params else None
    return _INDEX_CACHE[cache_key]


def _argument(args: tuple[Any, ...], kwargs: dict[str, Any], name: str, index: int | None) -> Any:
    if name in kwargs:
        return kwargs[name]
    if index is not None and index < len(args):
        return args[index]
    return None
