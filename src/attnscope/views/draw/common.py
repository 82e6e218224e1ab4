"""Helpers every static drawer shares: styles, figure and title layout, token labels, colour bars."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from attnscope.tokens import Tokens
from attnscope.traces import Trace
from attnscope.views.payload import visible_label
from attnscope.views.resolve import Resolved

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

TITLE_H = 0.5  # inches at the top of every picture for its two title lines
POSITIVE = (0x1F / 255, 0x77 / 255, 0xB4 / 255)  # blue
NEGATIVE = (0xFF / 255, 0x7F / 255, 0x0E / 255)  # orange
HIDDEN_NOTE = "special tokens hidden, rows renormalised"


@dataclass(frozen=True)
class Style:
    """Colours of one theme."""

    background: str
    foreground: str
    muted: str
    cmap: str


STYLES = {
    "light": Style(background="#ffffff", foreground="#222222", muted="#999999", cmap="Blues"),
    "dark": Style(background="#111111", foreground="#eeeeee", muted="#777777", cmap="magma"),
}


def new_figure(width: float, height: float, style: Style, title: tuple[str, str]) -> Figure:
    """A figure at least as wide as its two-line title, which sits in the top TITLE_H inches."""
    from matplotlib.figure import Figure

    width = max(width, 0.4 + 0.075 * max(len(line) for line in title))
    fig = Figure(figsize=(width, height), facecolor=style.background)
    for line, (offset, size) in zip(title, ((0.17, 9.0), (0.36, 8.0)), strict=True):
        fig.text(0.5, 1 - offset / height, line, ha="center", va="center", fontsize=size, color=style.foreground)
    return fig


def fig_width(fig: Figure) -> float:
    """The figure's width in inches (new_figure may have widened it)."""
    return float(fig.get_size_inches()[0])


def labels(tokens: Tokens) -> list[str]:
    """Token labels as the pages show them ("##" on word continuations, invisible characters spelled out)."""
    return [visible_label(t) for t in tokens.labels]


def title(trace: Trace, resolved: Resolved, *parts: str) -> tuple[str, str]:
    """Two title lines: the model (and the stack, if not the only one), then what is shown."""
    first = visible_label(trace.model.name)
    if len(trace.stacks) > 1 or resolved.stack != trace.main_stack:
        first += f" · {resolved.stack} attention"
    if resolved.measure != "attention":
        first += f" · {value_name(resolved)}"
        if not resolved.measure_per_head:
            parts = (*(p for p in parts if not p.startswith("head ")), "all heads")
    return first, " · ".join(parts)


def value_name(resolved: Resolved) -> str:
    """What the picture's values are (for titles and colour bars): "attention" or the measure and its scale."""
    if resolved.measure == "attention":
        return "attention"
    scale = f" ({resolved.measure_scale})" if resolved.measure_scale else ""
    return f"{resolved.measure}: {resolved.measure_title}{scale}"


def colourbar(fig: Figure, image: Any, ax: Axes, label: str, style: Style, vertical: bool = False) -> None:
    """A labelled colour bar in the theme's colours."""
    bar = fig.colorbar(image, cax=ax, orientation="vertical" if vertical else "horizontal")
    bar.set_label(label, color=style.foreground, fontsize=7)
    if not vertical:
        bar.ax.xaxis.set_label_position("top")
    bar.ax.tick_params(colors=style.foreground, labelsize=6)
    bar.outline.set_edgecolor(style.muted)


def diverging(values: NDArray[np.float64], style: Style) -> NDArray[np.float64]:
    """RGB image: blue for positive, orange for negative, blended from the background by |value|/max."""
    from matplotlib.colors import to_rgb

    finite = np.nan_to_num(np.asarray(values, dtype=np.float64))
    peak = float(np.abs(finite).max(initial=0.0)) or 1.0
    t = np.clip(np.abs(finite) / peak, 0.0, 1.0)[..., None]
    background = np.array(to_rgb(style.background))
    hue = np.where(finite[..., None] >= 0, np.array(POSITIVE), np.array(NEGATIVE))
    return np.asarray(background * (1 - t) + hue * t, dtype=np.float64)
