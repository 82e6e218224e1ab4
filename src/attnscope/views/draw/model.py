"""Static model view: every included layer x head as a small heatmap on one shared colour scale."""

from __future__ import annotations

from typing import TYPE_CHECKING

from attnscope.traces import Trace
from attnscope.views.draw.common import HIDDEN_NOTE, TITLE_H, Style, colourbar, fig_width, new_figure, title, value_name
from attnscope.views.resolve import Resolved, shown_attention

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def draw(trace: Trace, resolved: Resolved, style: Style) -> Figure:
    """The grid of ``resolved.include_layers`` x ``resolved.include_heads``."""
    from matplotlib.colors import PowerNorm

    layers, heads, base = resolved.include_layers, resolved.include_heads, resolved.index_base
    cell = min(1.0, 16.0 / len(heads), 22.0 / len(layers))
    pad = 0.08
    left, top, bottom = 0.7, TITLE_H + 0.25, 0.75
    width = left + len(heads) * (cell + pad) + 0.2
    height = top + len(layers) * (cell + pad) + bottom
    q_tokens, k_tokens = trace.sides(resolved.stack)
    extra = [HIDDEN_NOTE] if resolved.hide_special else []
    what = title(trace, resolved, f"{len(q_tokens)} × {len(k_tokens)} tokens", "rows: layers, columns: heads", *extra)
    fig = new_figure(max(width, 4.0), height, style, what)
    width = fig_width(fig)
    # Square-root scale on a fixed [0, 1] range: long inputs spread attention thin, and a linear scale
    # would show them black; every thumbnail shares the one scale, so they can be compared.
    norm = PowerNorm(gamma=0.5, vmin=0.0, vmax=1.0)
    image = None
    for r, layer in enumerate(layers):
        att = shown_attention(trace, resolved, layer)
        for c, h in enumerate(heads):
            x = left + c * (cell + pad)
            y = height - top - (r + 1) * (cell + pad) + pad
            ax = fig.add_axes((x / width, y / height, cell / width, cell / height))
            # Thumbnails hold more tokens than pixels: antialiased resampling keeps thin stripes visible.
            image = ax.imshow(att[h], cmap=style.cmap, norm=norm, interpolation="antialiased", aspect="auto")
            ax.set_xticks([])
            ax.set_yticks([])
            for spine in ax.spines.values():
                spine.set_color(style.muted)
            if r == 0:
                ax.set_title(
                    f"H{h + base}" if resolved.measure_per_head else "all heads",
                    fontsize=7,
                    color=style.foreground,
                    pad=3,
                )
            if c == 0:
                ax.set_ylabel(
                    f"L{layer + base}", fontsize=7, color=style.foreground, rotation=0, ha="right", va="center"
                )
    if image is not None:
        bar_ax = fig.add_axes((left / width, 0.25 / height, min(3.0, width - left - 0.3) / width, 0.1 / height))
        colourbar(fig, image, bar_ax, f"{value_name(resolved)}, square-root scale (query rows × key columns)", style)
    return fig
