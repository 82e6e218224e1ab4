"""Static heatmap: the query x key attention matrix of one head."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from attnscope.traces import Trace
from attnscope.views.draw.common import (
    HIDDEN_NOTE,
    TITLE_H,
    Style,
    colourbar,
    fig_width,
    labels,
    new_figure,
    title,
    value_name,
)
from attnscope.views.resolve import Resolved, shown_attention

if TYPE_CHECKING:
    from matplotlib.figure import Figure

MAX_LABELS = 300  # above this many tokens, every k-th one is labelled (said in the title)


def draw(trace: Trace, resolved: Resolved, style: Style) -> Figure:
    """The matrix of ``resolved.layer``, ``resolved.head`` with token labels and a colour bar."""
    layer, head, base = resolved.layer, resolved.head, resolved.index_base
    matrix = shown_attention(trace, resolved, layer)[head]
    q_tokens, k_tokens = trace.sides(resolved.stack)
    n_q, n_k = matrix.shape
    step = max(1, math.ceil(max(n_q, n_k) / MAX_LABELS))
    font = 7.0 if step == 1 and max(n_q, n_k) <= 120 else 5.0
    q_labels, k_labels = labels(q_tokens), labels(k_tokens)
    label_w = 0.3 + 0.06 * max((len(s) for s in q_labels + k_labels), default=1) * font / 7
    cell = min(0.16, 14.0 / max(n_q, n_k)) if step == 1 else 12.0 / max(n_q, n_k)
    body_w, body_h = max(2.0, n_k * cell), max(2.0, n_q * cell)
    width = label_w + body_w + 1.2
    height = TITLE_H + 0.3 + body_h + label_w
    extra = [f"one token in {step} labelled"] if step > 1 else []
    if resolved.hide_special:
        extra.append(HIDDEN_NOTE)
    what = title(trace, resolved, f"layer {layer + base}", f"head {head + base}", *extra)
    fig = new_figure(width, height, style, what)
    width = fig_width(fig)
    ax = fig.add_axes((label_w / width, label_w / height, body_w / width, body_h / height))
    image = ax.imshow(
        matrix, cmap=style.cmap, vmin=0.0, vmax=float(max(matrix.max(initial=0.0), 1e-6)), interpolation="nearest"
    )
    ax.set_xticks(range(0, n_k, step), [k_labels[i] for i in range(0, n_k, step)], rotation=90, fontsize=font)
    ax.set_yticks(range(0, n_q, step), [q_labels[i] for i in range(0, n_q, step)], fontsize=font)
    ax.tick_params(colors=style.foreground, length=2)
    ax.xaxis.tick_bottom()
    for spine in ax.spines.values():
        spine.set_color(style.muted)
    ax.set_xlabel("key (attended to)", color=style.foreground, fontsize=7)
    ax.set_ylabel("query (attending)", color=style.foreground, fontsize=7)
    ax.xaxis.set_label_position("top")
    bar_ax = fig.add_axes(((label_w + body_w + 0.3) / width, label_w / height, 0.12 / width, body_h / height))
    colourbar(
        fig,
        image,
        bar_ax,
        "attention weight" if resolved.measure == "attention" else value_name(resolved),
        style,
        vertical=True,
    )
    return fig
