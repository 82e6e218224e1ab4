"""Static comparison: A's and B's attention (one layer; one head or the mean of the heads) side by side, and
their difference B − A over the aligned tokens (red: more in B, blue: less; grey: a token with no partner)."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from attnscope.views.draw.common import TITLE_H, Style, colourbar, fig_width, labels, new_figure
from attnscope.views.options import ViewOptions
from attnscope.views.payload import visible_label

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from attnscope.views.compare import Alignment, Comparison

MORE = "#d62728"  # red: more attention in B (frontend/src/compare.ts uses the same)
LESS = "#1f77b4"  # blue: less attention in B
MAX_LABELS = 120  # above this many tokens on an axis, every k-th one is labelled
NONE = 0.4  # strength of the muted grey of a cell with no partner (frontend/src/compare.ts uses the same)


def merged_labels(alignment: Alignment, a: list[str], b: list[str]) -> list[str]:
    """Labels of the merged order: "cat", "cat→dog" (replaced), "−cat" (only in A), "+dog" (only in B)."""
    out = []
    for i, j, kind in zip(alignment.a, alignment.b, alignment.kinds, strict=True):
        if kind == "equal":
            out.append(a[i])
        elif kind == "replace":
            out.append(f"{a[i]}\u2192{b[j]}")
        else:
            out.append(f"\u2212{a[i]}" if kind == "delete" else f"+{b[j]}")
    return out


def difference_rgb(diff: NDArray[np.float64], peak: float, style: Style) -> NDArray[np.float64]:
    """RGB image of B − A: the background blended towards red (positive) or blue (negative) by |value| / peak;
    cells with no partner in the theme's muted grey at NONE strength."""
    from matplotlib.colors import to_rgb

    bg = np.array(to_rgb(style.background))
    finite = np.nan_to_num(diff)
    t = np.clip(np.abs(finite) / peak, 0.0, 1.0)[..., None]
    hue = np.where(finite[..., None] >= 0, np.array(to_rgb(MORE)), np.array(to_rgb(LESS)))
    rgb = bg * (1 - t) + hue * t
    rgb[np.isnan(diff)] = bg * (1 - NONE) + np.array(to_rgb(style.muted)) * NONE
    return np.asarray(rgb, dtype=np.float64)


def draw(subject: Comparison, options: ViewOptions, style: Style) -> Figure:
    """Three matrices: A, B (one shared grey scale) and B − A over the merged token order, with colour bars."""
    from matplotlib.cm import ScalarMappable
    from matplotlib.colors import LinearSegmentedColormap, Normalize

    base = options.index_base
    layer, head = subject.layer, subject.head
    mats = [subject.attention(0), subject.attention(1)]
    diff = subject.difference()
    sides = [tr.sides(st) for tr, st in zip(subject.traces, subject.stacks, strict=True)]
    q_labels = [labels(s[0]) for s in sides]
    k_labels = [labels(s[1]) for s in sides]
    dq = merged_labels(subject.query, q_labels[0], q_labels[1])
    dk = merged_labels(subject.key, k_labels[0], k_labels[1])
    panels: list[tuple[str, Any, list[str], list[str]]] = [
        (_caption(subject, 0), mats[0], q_labels[0], k_labels[0]),
        (_caption(subject, 1), mats[1], q_labels[1], k_labels[1]),
        (f"{subject.labels[1]} \u2212 {subject.labels[0]} (aligned tokens)", diff, dq, dk),
    ]
    longest = max(n for _, m, _, _ in panels for n in m.shape)
    step = max(1, math.ceil(longest / MAX_LABELS))
    font = 7.0 if longest <= 40 else 5.0
    label_w = 0.3 + 0.06 * min(24, max(len(s) for _, _, ql, kl in panels for s in ql + kl)) * font / 7
    cell = min(0.2, 4.5 / longest)
    gap = 0.35
    widths = [max(1.2, m.shape[1] * cell) for _, m, _, _ in panels]
    body_h = max(1.2, max(m.shape[0] for _, m, _, _ in panels) * cell)
    width = sum(label_w + w + gap for w in widths) + 1.0
    height = TITLE_H + 0.55 + body_h + label_w + 0.75
    heads = subject.head_title(head, base)
    first = " vs ".join(visible_label(n) for n in dict.fromkeys(tr.model.name for tr in subject.traces))
    stacks = dict.fromkeys(subject.stacks)
    first += " \u00b7 " + " / ".join(stacks) + " attention"
    second = f"layer {layer + base} \u00b7 {heads} \u00b7 red: more attention in {subject.labels[1]}, blue: less"
    note = subject.note(base)
    if note:
        second += f" \u00b7 {note}"
    fig = new_figure(width, height, style, (first, visible_label(second)))
    fw = fig_width(fig)
    shift = (fw - width) / 2  # new_figure widens a figure to its title: centre the panels in it
    peak_att = float(max(mats[0].max(initial=0.0), mats[1].max(initial=0.0), 1e-6))
    finite = diff[np.isfinite(diff)]
    peak_diff = float(max(np.abs(finite).max(initial=0.0), 1e-6))
    grey = LinearSegmentedColormap.from_list("attnscope-attention", [style.background, style.foreground])
    x = 0.2 + shift
    bottom = label_w + 0.75
    for n, ((caption, matrix, ql, kl), w) in enumerate(zip(panels, widths, strict=True)):
        x += label_w
        h = matrix.shape[0] * cell if matrix.shape[0] * cell >= 1.2 else body_h
        ax = fig.add_axes((x / fw, (bottom + body_h - h) / height, w / fw, h / height))
        if n < 2:
            ax.imshow(matrix, cmap=grey, vmin=0.0, vmax=peak_att, interpolation="nearest", aspect="auto")
        else:
            ax.imshow(difference_rgb(diff, peak_diff, style), interpolation="nearest", aspect="auto")
        ax.set_xticks(range(0, len(kl), step), [kl[i] for i in range(0, len(kl), step)], rotation=90, fontsize=font)
        ax.set_yticks(range(0, len(ql), step), [ql[i] for i in range(0, len(ql), step)], fontsize=font)
        ax.tick_params(colors=style.foreground, length=2)
        for spine in ax.spines.values():
            spine.set_color(style.muted)
        room = max(8, int((w + label_w) / 0.065))  # characters that fit over the panel at 7 pt
        lines = [line if len(line) <= room else line[: room - 1] + "\u2026" for line in caption.split("\n")]
        ax.set_title("\n".join(visible_label(line) for line in lines), color=style.foreground, fontsize=7)
        x += w + gap
    bar_w = min(2.4, (width - 1.0) / 3)
    att_ax = fig.add_axes(((0.3 + shift) / fw, 0.3 / height, bar_w / fw, 0.1 / height))
    colourbar(fig, ScalarMappable(Normalize(0.0, peak_att), grey), att_ax, "attention weight (A and B)", style)
    diverging = LinearSegmentedColormap.from_list("attnscope-difference", [LESS, style.background, MORE])
    diff_ax = fig.add_axes(((width + shift - bar_w - 0.5) / fw, 0.3 / height, bar_w / fw, 0.1 / height))
    label = f"{subject.labels[1]} \u2212 {subject.labels[0]} (blue: less in {subject.labels[1]}, red: more)"
    colourbar(fig, ScalarMappable(Normalize(-peak_diff, peak_diff), diverging), diff_ax, visible_label(label), style)
    return fig


def _caption(subject: Comparison, which: int) -> str:
    """A panel's title: its label and input text, and a first line with its model when the two differ."""
    tr = subject.traces[which]
    text = " \u2016 ".join(t for t in tr.tokens.texts if t)
    if subject.a.model.name != subject.b.model.name:
        return f"{subject.labels[which]}: {tr.model.name}\n{text}"
    return f"{subject.labels[which]}: {text}"
