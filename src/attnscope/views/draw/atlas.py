"""Static atlas: the layers x heads grid of roles (colour) and scores (intensity, and printed), with a legend."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from attnscope.views.draw.common import TITLE_H, Style, fig_width, new_figure
from attnscope.views.options import ViewOptions
from attnscope.views.payload import visible_label

if TYPE_CHECKING:
    from matplotlib.figure import Figure

CELL = 0.42  # inches per head


def draw(atlas: dict[str, Any], options: ViewOptions, style: Style) -> Figure:
    """The role grid of ``atlas`` (a HeadAtlas's ``to_json()``): one colour per role, score as intensity."""
    from matplotlib.colors import to_rgb
    from matplotlib.patches import Patch

    from attnscope.views.atlas import role_colours, role_order

    heads = atlas["heads"]
    n_layers, n_heads = len(heads), len(heads[0])
    base = options.index_base
    order = role_order({h["role"] for row in heads for h in row})
    colour = dict(zip(order, role_colours(order), strict=True))
    background = np.array(to_rgb(style.background))
    image = np.zeros((n_layers, n_heads, 3))
    for layer, row in enumerate(heads):
        for head, h in enumerate(row):
            image[layer, head] = blend(background, np.array(to_rgb(colour[h["role"]])), h.get("score"))
    legend_w = 1.6
    body_w, body_h = max(2.0, n_heads * CELL), max(1.5, n_layers * CELL)
    width, height = 0.8 + body_w + legend_w, TITLE_H + 0.5 + body_h + 0.5
    sentences = atlas.get("sentences")
    what = (
        visible_label(str(atlas.get("model", "unknown"))) + f" · {atlas.get('stack', 'encoder')} attention",
        f"head atlas over {sentences} sentences · colour: role · intensity and number: score",
    )
    fig = new_figure(width, height, style, what)
    width = fig_width(fig)
    ax = fig.add_axes((0.7 / width, 0.5 / height, body_w / width, body_h / height))
    ax.imshow(image, interpolation="nearest", aspect="auto")
    for layer, row in enumerate(heads):
        for head, h in enumerate(row):
            score = h.get("score")
            text = "–" if score is None else f"{score:.2f}".lstrip("0")
            lum = float(np.dot(image[layer, head], (0.299, 0.587, 0.114)))
            ink = "#000000" if lum > 0.55 else "#ffffff"
            ax.text(head, layer, text, ha="center", va="center", fontsize=6, color=ink)
    ax.set_xticks(range(n_heads), [str(i + base) for i in range(n_heads)], fontsize=7)
    ax.set_yticks(range(n_layers), [str(i + base) for i in range(n_layers)], fontsize=7)
    ax.set_xlabel("head", color=style.foreground, fontsize=8)
    ax.set_ylabel("layer", color=style.foreground, fontsize=8)
    ax.xaxis.set_label_position("top")
    ax.xaxis.tick_top()
    ax.tick_params(colors=style.foreground, length=2)
    ax.set_xticks(np.arange(-0.5, n_heads, 1), minor=True)
    ax.set_yticks(np.arange(-0.5, n_layers, 1), minor=True)
    ax.grid(which="minor", color=style.background, linewidth=1.5)
    ax.tick_params(which="minor", length=0)
    for spine in ax.spines.values():
        spine.set_color(style.muted)
    handles = [Patch(facecolor=colour[r], edgecolor=style.muted, label=r) for r in order]
    legend = fig.legend(
        handles=handles, loc="upper left", bbox_to_anchor=((0.9 + body_w) / width, 1 - (TITLE_H + 0.5) / height),
        fontsize=7, title="role", title_fontsize=7, frameon=False, labelcolor=style.foreground,
    )  # fmt: skip
    legend.get_title().set_color(style.foreground)
    return fig


def blend(background: Any, hue: Any, score: Any) -> Any:
    """The cell colour: the role's hue over the background, from 25 % (score 0) to 100 % (score 1)."""
    t = 0.25 + 0.75 * min(1.0, max(0.0, float(score))) if isinstance(score, int | float) else 0.25
    return background * (1 - t) + hue * t
