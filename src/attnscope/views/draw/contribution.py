"""Static contribution view: for one output position, which input tokens reach it, layer by layer (stacked bars)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from attnscope.traces import Trace
from attnscope.views.draw.common import TITLE_H, Style, labels, new_figure, title
from attnscope.views.measures import contribution_measure
from attnscope.views.resolve import Resolved, head_colours

if TYPE_CHECKING:
    from matplotlib.figure import Figure

LABEL_SHARE = 0.06  # a segment at least this wide (share of its bar) carries its token's label


def shares(values: np.ndarray) -> np.ndarray:
    """Each layer's row as shares of its sum (the bar widths; the page computes the same)."""
    sums = values.sum(axis=-1, keepdims=True)
    out: np.ndarray = np.divide(values, sums, out=np.zeros_like(values), where=sums > 0)
    return out


def draw(trace: Trace, resolved: Resolved, style: Style) -> Figure:
    """One horizontal bar per layer for output position ``resolved.query_index``: segment j is input token j's
    share of what reaches it (the measure's values, rows divided by their sum), token colours shared by all bars."""
    shown = contribution_measure(trace, resolved.measure, resolved.stack)
    position, base = resolved.query_index, resolved.index_base
    q_tokens, k_tokens = trace.sides(resolved.stack)
    values = np.asarray(shown.array[:, 0, position, :], dtype=np.float64)
    if resolved.hide_special:  # delimiter inputs dropped, the rest re-shared (as on the page)
        values = values * ~k_tokens.special[None, :]
    rows = shares(values)
    names = labels(k_tokens)
    n_layers, n_k = rows.shape
    colours = head_colours(n_k)  # one per input token (the page uses the same list)
    width, bar_h = 9.0, 0.34
    height = TITLE_H + 0.5 + bar_h * n_layers + 0.6
    scale = f" ({shown.scale})" if shown.scale else ""
    lines = title(
        trace,
        resolved,
        f"contribution to position {position + base} “{labels(q_tokens)[position]}”",
        f"{shown.name}: {shown.title}{scale}, bars = shares of each layer's row",
    )
    fig = new_figure(width, height, style, lines)
    ax = fig.add_axes((0.12, 0.6 / height, 0.84, (bar_h * n_layers) / height))
    ax.set_facecolor(style.background)
    for i in range(n_layers):
        left = 0.0
        for j in range(n_k):
            w = float(rows[i, j])
            if w <= 0:
                continue
            ax.barh(i, w, left=left, height=0.8, color=colours[j], edgecolor=style.background, linewidth=0.4)
            if w >= LABEL_SHARE:
                ax.text(left + w / 2, i, names[j], ha="center", va="center", fontsize=6, color="#ffffff", clip_on=True)
            left += w
    ax.set_yticks(range(n_layers), [f"layer {layer + base}" for layer in shown.layers], fontsize=7)
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.set_xlabel("share of what reaches the position (input tokens)", color=style.foreground, fontsize=7)
    ax.tick_params(colors=style.foreground, labelsize=7)
    for spine in ax.spines.values():
        spine.set_color(style.muted)
    return fig
