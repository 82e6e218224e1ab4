"""Static neuron view: query and key vectors, q×k, dot products, scaling, bias and softmax of one head."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

from attnscope.errors import InputError
from attnscope.traces import Trace
from attnscope.views.draw.common import TITLE_H, Style, diverging, fig_width, labels, new_figure, title
from attnscope.views.payload import visible_label
from attnscope.views.registry import NEEDS
from attnscope.views.resolve import Resolved, masked

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure


def draw(trace: Trace, resolved: Resolved, style: Style) -> Figure:
    """Every term of ``resolved.head``'s scores for the query token ``resolved.query_index``."""
    stack = resolved.stack
    if stack not in trace.qk:
        raise InputError(f"the neuron view needs query and key vectors: {NEEDS['qk'].how}")
    qk = trace.qk[stack]
    layer, head, query, base = resolved.layer, resolved.head, resolved.query_index, resolved.index_base
    q_tokens, k_tokens = trace.sides(stack)
    q = qk.queries[layer, head, query].astype(np.float64)
    keys = qk.keys[layer, head].astype(np.float64)
    products = keys * q[None, :]
    dots = products.sum(axis=1)
    scale = float(qk.scale[layer])
    scores = qk.scores(layer, head)[query].astype(np.float64)
    allowed = ~masked(qk.mask[layer, query], resolved)
    weights = trace.attention[stack][layer, head, query].astype(np.float64)
    columns: list[tuple[str, NDArray[np.float64]]] = [("q·k", dots), (f"×{scale:.4g}", dots * scale)]
    if qk.bias is not None:
        columns.append(("+ bias", qk.bias[layer, head, query].astype(np.float64)))
        columns.append(("score", np.where(allowed, scores, np.nan)))
    columns.append(("softmax", weights))

    n_k, d = keys.shape
    k_labels = labels(k_tokens)
    label_w = 0.3 + 0.07 * max((len(s) for s in k_labels), default=1)
    cell_w = min(0.12, 3.2 / d)
    row = 0.17
    num_w = 0.62
    vec_w = d * cell_w
    width = label_w + 2 * vec_w + 0.3 + len(columns) * num_w + 0.4
    q_row = TITLE_H + 0.25
    top = q_row + 0.55  # title, query row and column headings
    height = top + n_k * row + 0.45
    parts = [f"layer {layer + base}", f"head {head + base}", f"query token {query + base}"]
    fig = new_figure(width, height, style, title(trace, resolved, *parts))
    width = fig_width(fig)

    def axes(x: float, y_top: float, w: float, rows: int) -> Axes:
        ax = fig.add_axes((x / width, (height - y_top - rows * row) / height, w / width, rows * row / height))
        ax.set_axis_off()
        return ax

    x_keys = label_w
    x_prod = x_keys + vec_w + 0.3
    x_nums = x_prod + vec_w + 0.2
    # Query vector above the keys; q×k has no query row, so its heading sits there.
    q_ax = axes(x_keys, q_row, vec_w, 1)
    q_ax.imshow(diverging(q[None, :], style), aspect="auto", interpolation="nearest")
    fig.text(
        (x_keys - 0.1) / width,
        1 - (q_row + row / 2) / height,
        f"query q: {visible_label(q_tokens.display[query])}",
        ha="right",
        va="center",
        fontsize=7,
        color=style.foreground,
    )
    for x, label in ((x_keys, "keys k"), (x_prod, "q × k (element-wise)")):
        fig.text(
            (x + vec_w / 2) / width, 1 - (top - 0.08) / height, label, ha="center", fontsize=7, color=style.foreground
        )
    k_ax = axes(x_keys, top, vec_w, n_k)
    k_ax.imshow(diverging(keys, style), aspect="auto", interpolation="nearest")
    p_ax = axes(x_prod, top, vec_w, n_k)
    p_ax.imshow(diverging(products, style), aspect="auto", interpolation="nearest")
    for j, label in enumerate(k_labels):
        y = 1 - (top + (j + 0.5) * row) / height
        colour = style.foreground if allowed[j] else style.muted
        fig.text((x_keys - 0.08) / width, y, label, ha="right", va="center", fontsize=7, color=colour)
    for c, (name, values) in enumerate(columns):
        x = x_nums + c * num_w
        fig.text(
            (x + num_w / 2) / width, 1 - (top - 0.08) / height, name, ha="center", fontsize=7, color=style.foreground
        )
        ax = axes(x, top, num_w - 0.04, n_k)
        shown = np.where(allowed, np.nan_to_num(values), 0.0)
        ax.imshow(diverging(shown[:, None], style), aspect="auto", interpolation="nearest")
        strong = np.abs(shown) > 0.55 * (float(np.abs(shown).max(initial=0.0)) or 1.0)
        for j, value in enumerate(values):
            text = f"{value:.3f}" if allowed[j] and math.isfinite(value) else "masked"
            ink = "#ffffff" if strong[j] else style.foreground
            ax.text(0, j, text, ha="center", va="center", fontsize=6, color=ink)
    note = "blue positive, orange negative, intensity = |value| / largest |value| of its block"
    fig.text(0.5, 0.2 / height, note, ha="center", va="center", fontsize=6, color=style.muted)
    return fig
