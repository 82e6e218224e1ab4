"""The resolved spec: everything both renderers need, computed once from a trace and the view options.

The interactive page (it arrives in the payload as ``resolved``) and the static PNG/SVG export (its
drawers take a :class:`Resolved`) read the same stack, layer, heads, index base, delimiter rule, head
colours, masking threshold and line threshold, so they cannot disagree. The delimiter rule is
:func:`shown_attention`; the page's ``Stack.weight`` (frontend/src/state.ts) computes the same numbers,
and a browser test compares them.
"""

from __future__ import annotations

import colorsys
import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from attnscope.errors import InputError
from attnscope.traces import Trace
from attnscope.views.measures import ATTENTION, shown_measure
from attnscope.views.options import Theme, ViewOptions

# A key is masked when its additive mask is at or below this (HF uses -1e4, -1e9 or the dtype's minimum).
MASK_THRESHOLD = -1e4
# Head view lines (page and picture) below this weight are not drawn: they would be invisible anyway.
MIN_WEIGHT = 0.01
# d3's category10 (BertViz's head colours) then 22 more, each chosen greedily for the largest CIE Lab
# distance to all before it among saturated colours of lightness 40..70 (lines stay visible on the dark
# and the light theme): every pair differs by more than 24 (CIE76 ΔE), so 32-head layers (LLaMA) get
# 32 distinct colours.
HEAD_PALETTE: tuple[str, ...] = (
    "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
    "#bcbd22", "#17becf", "#8700ff", "#ff0fe1", "#005af0", "#5a691e", "#ff0078", "#d2964b",
    "#ff8787", "#3ca578", "#962dc3", "#d20096", "#a54b00", "#b42d5a", "#6996ff", "#f078ff",
    "#96b45a", "#ff0000", "#a5a5e1", "#00c300", "#874b78", "#d22dff", "#00b4f0", "#a578ff",
)  # fmt: skip


def head_colours(count: int) -> list[str]:
    """One colour per head: the 32 of HEAD_PALETTE, then golden-angle hues (not guaranteed distinct)."""
    colours = list(HEAD_PALETTE[:count])
    for i in range(len(HEAD_PALETTE), count):
        r, g, b = colorsys.hls_to_rgb((i * 0.618033988749895) % 1.0, 0.55, 0.75)
        colours.append(f"#{round(r * 255):02x}{round(g * 255):02x}{round(b * 255):02x}")
    return colours


@dataclass(frozen=True)
class Resolved:
    """The view options with every default filled and checked against the trace (indices 0-based).

    ``heads``: the selected heads of the head view (the first is the neuron view's and heatmap's head);
    ``include_layers``/``include_heads``: the model view's grid; ``head_colours``: one per head index;
    ``hide_special``: attention to and from delimiter tokens is dropped and each row renormalised
    (:func:`shown_attention`); ``mask_threshold``: a key whose mask is at or below it is "masked";
    ``min_weight``: head view lines below it are not drawn; ``measure``: "attention" or the measure shown
    instead (its display title, scale note and whether it has heads; layer and head indices then index the
    measure's display array, see :mod:`attnscope.views.measures`).
    """

    stack: str
    layer: int
    heads: tuple[int, ...]
    include_layers: tuple[int, ...]
    include_heads: tuple[int, ...]
    query_index: int
    theme: Theme
    index_base: int
    hide_special: bool
    head_colours: tuple[str, ...]
    mask_threshold: float = MASK_THRESHOLD
    min_weight: float = MIN_WEIGHT
    measure: str = "attention"
    measure_title: str = "attention"
    measure_scale: str = ""
    measure_per_head: bool = True

    @property
    def head(self) -> int:
        """The one head a single-head view (neuron, heatmap) shows."""
        return self.heads[0]

    def as_payload(self) -> dict[str, Any]:
        """The JSON form that goes into the payload as ``resolved``."""
        out = dataclasses.asdict(self)
        for key, value in out.items():
            if isinstance(value, tuple):
                out[key] = list(value)
        return out


def resolve(trace: Trace, options: ViewOptions) -> Resolved:
    """Fill the defaults a trace implies and check every index against it (one clear error each)."""
    if not isinstance(trace, Trace):
        raise InputError(f"expected an attnscope Trace, got {type(trace).__name__}")
    stack = options.stack or trace.main_stack
    if stack not in trace.attention:
        raise InputError(f"this trace has no {stack!r} attention; it has {', '.join(trace.stacks)}")
    n_layers, n_heads, n_query, _ = trace.attention[stack].shape
    shown = shown_measure(trace, options.measure, stack) if options.measure != ATTENTION else None
    if shown is not None:
        n_layers, n_heads = shown.array.shape[:2]
    layer = 0 if options.layer is None else options.layer
    _check_index(layer, n_layers, "layer")
    if options.heads == () or options.include_heads == () or options.include_layers == ():
        raise InputError("an empty list of heads or layers shows nothing; leave it out to show all")
    for value in (*(options.heads or ()), *(options.include_heads or ())):
        _check_index(value, n_heads, "head")
    for value in options.include_layers or ():
        _check_index(value, n_layers, "layer")
    _check_index(options.query_index, n_query, "query token")
    most_heads = max(att.shape[1] for att in trace.attention.values())
    return Resolved(
        stack=stack,
        layer=layer,
        heads=options.heads if options.heads is not None else tuple(range(n_heads)),
        include_layers=options.include_layers if options.include_layers is not None else tuple(range(n_layers)),
        include_heads=options.include_heads if options.include_heads is not None else tuple(range(n_heads)),
        query_index=options.query_index,
        theme=options.theme,
        index_base=options.index_base,
        hide_special=options.hide_special,
        head_colours=tuple(head_colours(most_heads)),
        measure=options.measure,
        measure_title=shown.title if shown else ATTENTION,
        measure_scale=shown.scale if shown else "",
        measure_per_head=shown.per_head if shown else True,
    )


def _check_index(value: int, limit: int, what: str) -> None:
    if not 0 <= value < limit:
        raise InputError(f"{what} {value} does not exist: this trace has {what}s 0..{limit - 1} (0-based)")


def shown_attention(trace: Trace, resolved: Resolved, layer: int) -> NDArray[np.float32]:
    """Attention [heads, query, key] of one layer as both renderers show it.

    With ``hide_special``, weights to and from delimiter tokens become 0 and every remaining row is
    divided by its remaining sum (a row whose weight all went to delimiters stays 0). With a measure
    (``resolved.measure``), its display array (scaled into [0, 1]) instead, zeroed but not renormalised.
    """
    att: NDArray[np.float32]
    if resolved.measure != ATTENTION:
        att = np.asarray(shown_measure(trace, resolved.measure, resolved.stack).array[layer], dtype=np.float32)
    else:
        att = np.asarray(trace.attention[resolved.stack][layer], dtype=np.float32)
    if not resolved.hide_special:
        return att
    q_tokens, k_tokens = trace.sides(resolved.stack)
    kept = att * ~k_tokens.special[None, None, :]
    kept = kept * ~q_tokens.special[None, :, None]
    if resolved.measure != ATTENTION:  # a measure's rows need not sum to 1: zeroed, not renormalised
        out_measure: NDArray[np.float32] = kept.astype(np.float32)
        return out_measure
    sums = kept.sum(axis=-1, keepdims=True)
    out: NDArray[np.float32] = np.divide(kept, sums, out=np.zeros_like(kept), where=sums > 0).astype(np.float32)
    return out


def masked(mask: NDArray[np.float32], resolved: Resolved) -> NDArray[np.bool_]:
    """Which keys are masked (their additive mask is at or below the resolved threshold)."""
    result: NDArray[np.bool_] = np.asarray(mask) <= resolved.mask_threshold
    return result
