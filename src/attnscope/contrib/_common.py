"""What every contribution measure shares: picking the stack, checking what the trace holds, keeping results."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from attnscope.errors import InputError, UnsupportedModelError
from attnscope.traces import Contribution, FloatArray, Trace, Values

SELF_STACKS = ("encoder", "decoder")


def pick_stack(trace: Trace, stack: str | None, measure: str, *, self_only: bool = False) -> str:
    """The stack a measure runs on (default: the trace's main stack), with a clear error if it cannot."""
    chosen = stack or trace.main_stack
    if chosen not in trace.attention:
        raise InputError(f"the trace has no {chosen!r} attention; its stacks are {', '.join(trace.stacks)}")
    if self_only and chosen not in SELF_STACKS:
        raise InputError(
            f"{measure} is defined for self-attention stacks (encoder, decoder), where every layer maps the same "
            f"tokens to themselves; cross attention mixes two sequences, so use norms(trace, stack='cross') or "
            f"value_zeroing(handle, trace, stack='cross') for it"
        )
    return chosen


def layer_index(trace: Trace, stack: str, layer: int, what: str) -> int:
    """A layer number (negative counts from the end) checked against the stack's depth."""
    layers = trace.attention[stack].shape[0]
    if not -layers <= layer < layers:
        raise InputError(f"{what} {layer} is out of range: the {stack} stack has layers 0..{layers - 1}")
    return int(layer % layers)


def need_values(trace: Trace, stack: str, measure: str) -> Values:
    """The stack's captured values, or an error saying how to capture them."""
    values = trace.values.get(stack)
    if values is None:
        raise UnsupportedModelError(
            f"{measure} needs each head's value vectors and output projection, which this trace does not hold: "
            f"trace with attnscope.trace(handle, text, values=True) (supported families: see "
            f"attnscope.adapters.supported_families())"
        )
    return values


def residual_averaged(attention: FloatArray, dtype: type[np.floating[Any]] = np.float64) -> np.ndarray:
    """Abnar & Zuidema's per-layer matrix: heads averaged, then 0.5·(A + I), rows renormalised to sum 1.

    [L, H, Q, Q] -> [L, Q, Q] in ``dtype``. Rows of a softmax already sum to 1, so the renormalisation only
    removes float rounding (and keeps a fully masked row, if any, a pure residual).
    """
    a = attention.mean(axis=1, dtype=dtype)
    a = 0.5 * (a + np.eye(a.shape[-1], dtype=dtype))
    out: np.ndarray = a / a.sum(axis=-1, keepdims=True)
    return out


def keep(trace: Trace, measure: str, stack: str, array: Any, params: Mapping[str, Any] | None = None) -> FloatArray:
    """Store a measure's result on the trace (saved with it) under ``"<measure>.<stack>"`` and return it."""
    result: FloatArray = np.ascontiguousarray(array, dtype=np.float32)
    trace.contributions[f"{measure}.{stack}"] = Contribution(measure, stack, result, dict(params or {}))
    return result
