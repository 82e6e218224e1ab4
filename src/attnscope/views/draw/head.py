"""Static head view: one layer's chosen heads as coloured lines from query tokens to key tokens."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import NDArray

from attnscope.errors import InputError
from attnscope.tokens import Tokens
from attnscope.traces import Trace
from attnscope.views.draw.common import HIDDEN_NOTE, TITLE_H, Style, fig_width, labels, new_figure, title
from attnscope.views.resolve import Resolved, shown_attention

if TYPE_CHECKING:
    from matplotlib.figure import Figure

MAX_TOKENS = 1024  # rows of text per side beyond which a picture stops being readable


def draw(trace: Trace, resolved: Resolved, style: Style) -> Figure:
    """The head view of ``resolved.layer``: lines weighted by attention, one colour per head."""
    from matplotlib.collections import LineCollection
    from matplotlib.colors import to_rgb
    from matplotlib.patches import Patch

    layer, heads, base = resolved.layer, resolved.heads, resolved.index_base
    q_tokens, k_tokens = trace.sides(resolved.stack)
    longest = max(len(q_tokens), len(k_tokens))
    if longest > MAX_TOKENS:
        raise InputError(
            f"the static head view draws at most {MAX_TOKENS} tokens per side and this input has "
            f"{longest}; save the heatmap or model view instead, or trace a shorter text"
        )
    att = shown_attention(trace, resolved, layer)
    colours = [to_rgb(c) for c in resolved.head_colours]

    row = 0.17  # inches per token row
    font = 8.0
    gap = 0.6  # extra rows between sentence A and sentence B
    q_y = _rows(q_tokens, gap)
    k_y = _rows(k_tokens, gap)
    rows = max(float(q_y.max(initial=0)), float(k_y.max(initial=0))) + 1
    q_labels, k_labels = labels(q_tokens), labels(k_tokens)
    text_w = max(0.6, 0.075 * max((len(s) for s in q_labels + k_labels), default=1))
    line_w = 1.6
    legend_cols = min(6, len(heads))
    legend_rows = math.ceil(len(heads) / legend_cols)
    width = max(4.5, 2 * text_w + line_w + 0.6, 0.95 * legend_cols + 0.4)
    header = TITLE_H + 0.1 + 0.22 * legend_rows
    height = rows * row + header + 0.2
    pair = bool((q_tokens.segment == 1).any() or (k_tokens.segment == 1).any())
    extra = [HIDDEN_NOTE] if resolved.hide_special else []
    if pair:
        extra.append("sentence pair A | B")
    fig = new_figure(width, height, style, title(trace, resolved, f"layer {layer + base}", *extra))
    width = fig_width(fig)
    ax = fig.add_axes((0.0, 0.1 / height, 1.0, (rows * row) / height))
    ax.set_axis_off()
    ax.set_xlim(0, width)
    ax.set_ylim(rows - 0.5, -0.5)
    x_left = (width - line_w) / 2 - 0.05
    x_right = (width + line_w) / 2 + 0.05

    hidden = resolved.hide_special
    special_q = q_tokens.special if hidden else np.zeros(len(q_tokens), bool)
    special_k = k_tokens.special if hidden else np.zeros(len(k_tokens), bool)
    for texts, ys, x, align, off in (
        (q_labels, q_y, x_left, "right", special_q),
        (k_labels, k_y, x_right, "left", special_k),
    ):
        for label, y, dim in zip(texts, ys, off, strict=True):
            ax.text(x, y, label, ha=align, va="center", fontsize=font, color=style.muted if dim else style.foreground)

    segments: list[NDArray[np.float64]] = []
    rgba: list[NDArray[np.float64]] = []
    for h in heads:
        qi, ki = np.nonzero(att[h] >= resolved.min_weight)
        if qi.size == 0:
            continue
        seg = np.empty((qi.size, 2, 2))
        seg[:, 0, 0], seg[:, 0, 1] = x_left + 0.05, q_y[qi]
        seg[:, 1, 0], seg[:, 1, 1] = x_right - 0.05, k_y[ki]
        colour = np.empty((qi.size, 4))
        colour[:, :3] = colours[h]
        colour[:, 3] = np.clip(att[h][qi, ki], 0.0, 1.0)
        segments.append(seg)
        rgba.append(colour)
    if segments:
        ax.add_collection(LineCollection(list(np.concatenate(segments)), colors=np.concatenate(rgba), linewidths=1.2))

    handles = [
        Patch(facecolor=colours[h], label=f"head {h + base}" if resolved.measure_per_head else "all heads")
        for h in heads
    ]
    fig.legend(
        handles=handles,
        loc="upper center",
        bbox_to_anchor=(0.5, 1 - (TITLE_H + 0.02) / height),
        ncol=legend_cols,
        fontsize=7,
        frameon=False,
        labelcolor=style.foreground,
        handlelength=1.0,
        columnspacing=0.8,
    )
    return fig


def _rows(tokens: Tokens, gap: float) -> NDArray[np.float64]:
    """Row position of each token: one per token, with a gap before sentence B."""
    ys = np.arange(len(tokens), dtype=np.float64)
    return np.asarray(ys + gap * (tokens.segment == 1), dtype=np.float64)
