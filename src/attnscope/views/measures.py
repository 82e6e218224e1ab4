"""Contribution measures as the views show them: in place of raw attention, scaled into [0, 1] openly.

Every view of a trace can show a measure of :mod:`attnscope.contrib` instead of raw attention
(``measure=`` in Python, ``--measure`` in ``attnscope view``, a selector on the page). How each shows:

- a per-head measure ([L, H, Q, K]: ``norms``) shows per head, like attention;
- a head-less measure ([L, Q, K]: ``rollout``, ``norms_summed``, ``mixing``, ``value_zeroing``) shows as
  one pseudo-head labelled "all heads";
- a one-layer measure ([Q, K]: ``flow`` to the last layer, ``gradient_x_input``) shows as one layer.

Measures in [0, 1] by definition (rollout, flow, value zeroing) show as they are; the others (norms, norms
summed, mixing, gradient × input: vector lengths in the model's units) have every row divided by its maximum,
and the title and legend say so ("each row ÷ its maximum"). With delimiter tokens hidden, a measure's weights to
and from them become 0 and rows are *not* renormalised (a measure's rows need not sum to 1).
``mixing_ratio`` (one number per token, not token to token) is not a view measure.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from attnscope.errors import InputError
from attnscope.traces import Trace

ATTENTION = "attention"
ROW_MAX = "each row ÷ its maximum"


@dataclass(frozen=True)
class MeasureSpec:
    """A measure the views can show: its name, whether it needs values (``trace(..., values=True)``) and
    whether it reruns the model (then only a result already on the trace, or the CLI, can show it)."""

    name: str
    title: str
    values: bool = False
    reruns: bool = False
    bounded: bool = False  # its values lie in [0, 1] by definition (else every row is divided by its maximum)


MEASURES: dict[str, MeasureSpec] = {
    m.name: m
    for m in (
        MeasureSpec("rollout", "attention rollout", bounded=True),
        MeasureSpec("flow", "attention flow", bounded=True),
        MeasureSpec("norms", "norm ‖αf(x)‖", values=True),
        MeasureSpec("norms_summed", "norm summed over heads", values=True),
        MeasureSpec("mixing", "residual+LN mixing", values=True),
        MeasureSpec("value_zeroing", "value zeroing", reruns=True, bounded=True),
        MeasureSpec("gradient_x_input", "gradient × input", reruns=True),
    )
}
MEASURE_NAMES: tuple[str, ...] = (ATTENTION, *MEASURES)


@dataclass(frozen=True)
class Shown:
    """A measure as the views show it: [layers, heads, Q, K] in [0, 1], with how it was scaled."""

    name: str
    title: str
    array: NDArray[np.float32]
    scale: str  # "" (as computed) or ROW_MAX
    per_head: bool
    layers: tuple[int, ...]  # the trace layer behind each row (flow: the last one)


def check_measure(name: str) -> MeasureSpec | None:
    """The spec of a view measure (None for raw attention), or one clear error naming the choices."""
    if name == ATTENTION:
        return None
    if name not in MEASURES:
        extra = " (one number per token; show 'mixing' instead)" if name == "mixing_ratio" else ""
        raise InputError(f"unknown measure {name!r}{extra}; choose from {', '.join(MEASURE_NAMES)}")
    return MEASURES[name]


def compute(trace: Trace, name: str, stack: str, handle: Any = None) -> NDArray[np.float32]:
    """The measure's array for ``stack``: kept on the trace if computed before, else computed now (and kept)."""
    import attnscope.contrib as contrib

    spec = check_measure(name)
    if spec is None:
        return trace.attention[stack]
    kept = trace.contributions.get(f"{name}.{stack}")
    if kept is not None:
        return kept.array
    if spec.reruns:
        if handle is None:
            raise InputError(
                f"the {name} measure reruns the model: compute it first with "
                f"attnscope.contrib.{name}(handle, trace) (or use attnscope view --measure {name})"
            )
        result: NDArray[np.float32] = getattr(contrib, name)(handle, trace, stack)
        return result
    computed: NDArray[np.float32] = getattr(contrib, name)(trace, stack)
    return computed


def shown_measure(trace: Trace, name: str, stack: str) -> Shown:
    """The measure's [layers, heads, Q, K] display array in [0, 1] (see the module docstring)."""
    spec = check_measure(name)
    if spec is None:
        raise InputError("raw attention is not a measure")
    raw = np.asarray(compute(trace, name, stack), dtype=np.float32)
    n_layers = trace.attention[stack].shape[0]
    if raw.ndim == 4:
        array, per_head, layers = raw, True, tuple(range(n_layers))
    elif raw.ndim == 3:
        array, per_head, layers = raw[:, None], False, tuple(range(n_layers))
    elif raw.ndim == 2:
        kept = trace.contributions.get(f"{name}.{stack}")
        last = int(kept.params.get("layer", n_layers - 1)) if kept is not None else n_layers - 1
        array, per_head, layers = raw[None, None], False, (last,)
    else:
        raise InputError(f"the {name} measure has shape {raw.shape}, which no view can show")
    if not np.isfinite(array).all() or float(array.min(initial=0.0)) < -1e-6:
        raise InputError(f"the {name} measure has negative or non-finite values; the views show values >= 0 only")
    array = np.maximum(array, np.float32(0))
    scale = ""
    if not spec.bounded or float(array.max(initial=0.0)) > 1 + 1e-5:
        peak = array.max(axis=-1, keepdims=True)
        array = np.divide(array, peak, out=np.zeros_like(array), where=peak > 0)
        scale = ROW_MAX
    return Shown(name, spec.title, np.ascontiguousarray(array, dtype=np.float32), scale, per_head, layers)


def legend(name: str, scale: str) -> str:
    """What a view's values are, for titles and colour bars: "attention", or the measure with its scale."""
    if name == ATTENTION:
        return "attention"
    words = MEASURES[name].title
    return f"{words} ({scale})" if scale else words


CONTRIBUTION_DEFAULT = "rollout"


def contribution_measure(trace: Trace, name: str, stack: str, *, strict: bool = False) -> Shown:
    """The layered, head-less measure the contribution view stacks: ``name`` if it has no heads, else rollout
    ("attention", or a per-head measure a page shows in its other views); ``strict``: a per-head ``name`` is an
    error instead (``contribution_view(measure="norms")``). The view's title always names the measure it shows.
    """
    chosen = CONTRIBUTION_DEFAULT if name == ATTENTION else name
    shown = shown_measure(trace, chosen, stack)
    if shown.per_head:
        if strict:
            instead = "norms_summed or rollout" if chosen == "norms" else "rollout"
            raise InputError(
                f"the contribution view needs a measure over all heads; {chosen} is per head (use {instead})"
            )
        shown = shown_measure(trace, CONTRIBUTION_DEFAULT, stack)
    return shown


def contribution_section(trace: Trace, resolved: Any, views: tuple[str, ...]) -> dict[str, Any]:
    """The contribution view's payload section: its measure's rows [layers, Q, K] in [0, 1], float32."""
    from attnscope.views.payload import encode_array
    from attnscope.views.resolve import head_colours

    shown = contribution_measure(trace, resolved.measure, resolved.stack)
    return {
        "colours": head_colours(shown.array.shape[-1]),
        "stack": resolved.stack,
        "measure": shown.name,
        "title": shown.title,
        "scale": shown.scale,
        "layers": list(shown.layers),
        "position": resolved.query_index,
        "values": encode_array(shown.array[:, 0]),
    }
