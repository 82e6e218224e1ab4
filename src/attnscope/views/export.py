"""Static PNG/SVG pictures of the views, drawn with matplotlib and no browser (for papers).

:func:`save_static` writes ``.png`` or ``.svg``; :func:`to_svg` returns the SVG text. Each view kind has
its picture: the head view of one layer (chosen heads as coloured lines), the model view grid (every
included layer x head as a small heatmap), the neuron view (query and key vectors, q×k, dot products and
softmax of one head for one query token) and the heatmap of one head. Token text is drawn as text, never
parsed (no mathtext, no TeX), and SVG output is repeatable byte for byte.
"""

from __future__ import annotations

import io
import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
from numpy.typing import NDArray

from attnscope.errors import AttnscopeError, InputError
from attnscope.tokens import Tokens
from attnscope.traces import Trace
from attnscope.views.payload import visible_label as _visible

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

SUPPORTED_SUFFIXES = (".png", ".svg")
MIN_WEIGHT = 0.01  # head view: lines below this weight are not drawn (they would be invisible anyway)
MAX_HEAD_VIEW_TOKENS = 1024  # head view: rows of text per side beyond which a picture stops being readable
PNG_DPI = 150
MAX_PIXELS = 30000  # longest side of a PNG; dpi is lowered to stay under it (Agg's hard limit is 65,536)
TITLE_H = 0.5  # inches at the top of every picture for its two title lines
HEATMAP_MAX_LABELS = 300  # heatmap: above this many tokens, every k-th one is labelled (said in the title)

# Rc settings for every picture: text is text (no mathtext, no TeX), SVG ids are stable, text stays <text>.
_RC: dict[str, Any] = {
    "text.usetex": False,
    "text.parse_math": False,
    "svg.hashsalt": "attnscope",
    "svg.fonttype": "none",
    "svg.image_inline": True,
    "font.family": "DejaVu Sans",
}
_POSITIVE = (0x1F / 255, 0x77 / 255, 0xB4 / 255)  # blue
_NEGATIVE = (0xFF / 255, 0x7F / 255, 0x0E / 255)  # orange


class _View(Protocol):
    """What static export reads from a view object: its kind, its trace and its options."""

    @property
    def kind(self) -> str: ...

    @property
    def trace(self) -> Trace: ...

    @property
    def options(self) -> Any: ...


@dataclass(frozen=True)
class _Style:
    background: str
    foreground: str
    muted: str
    cmap: str


_STYLES = {
    "light": _Style(background="#ffffff", foreground="#222222", muted="#999999", cmap="Blues"),
    "dark": _Style(background="#111111", foreground="#eeeeee", muted="#777777", cmap="magma"),
}


# -- public API --------------------------------------------------------------------------------------
def save_static(view: _View, path: str | Path) -> Path:
    """Write the view as a picture: ``.png`` or ``.svg``, chosen by the file's suffix."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix not in SUPPORTED_SUFFIXES:
        raise InputError(
            f"cannot save a static picture as {path.name!r}: supported suffixes are "
            f"{', '.join(SUPPORTED_SUFFIXES)} (and .html for the interactive page)"
        )
    data = _render(view, suffix[1:])
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def to_svg(view: _View) -> str:
    """The view as one self-contained SVG document; the same view always gives the same text."""
    return _render(view, "svg").decode("utf-8")


# -- rendering ---------------------------------------------------------------------------------------
def _matplotlib() -> Any:
    try:
        import matplotlib
    except ImportError:
        raise AttnscopeError("static export (.png/.svg) needs matplotlib: pip install 'attnscope[views]'") from None
    return matplotlib


def _render(view: _View, fmt: str) -> bytes:
    """Draw the view on an Agg canvas (pyplot and the global backend are left alone) and encode it."""
    matplotlib = _matplotlib()
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    drawers: dict[str, Callable[[_View, _Style], Figure]] = {
        "head": _draw_head,
        "model": _draw_model,
        "neuron": _draw_neuron,
        "heatmap": _draw_heatmap,
    }
    kind = getattr(view, "kind", None)
    if kind not in drawers:
        raise InputError(f"no static picture for a view of kind {kind!r}; static export supports {', '.join(drawers)}")
    style = _STYLES["light" if getattr(view.options, "theme", "dark") == "light" else "dark"]
    with matplotlib.rc_context(_RC), warnings.catch_warnings():
        # A glyph missing from the font is drawn as a box; one warning per token would only be noise.
        warnings.filterwarnings("ignore", message=r"Glyph .* missing from", category=UserWarning)
        fig = drawers[kind](view, style)
        FigureCanvasAgg(fig)
        buf = io.BytesIO()
        if fmt == "svg":
            fig.savefig(buf, format="svg", metadata={"Date": None}, facecolor=style.background)
        else:
            width, height = fig.get_size_inches()
            dpi = min(PNG_DPI, MAX_PIXELS / max(width, height))
            fig.savefig(buf, format="png", dpi=dpi, metadata={"Software": None}, facecolor=style.background)
    return buf.getvalue()


def _new_figure(width: float, height: float, style: _Style, title: tuple[str, str]) -> Figure:
    """A figure at least as wide as its two-line title, which sits in the top TITLE_H inches."""
    from matplotlib.figure import Figure

    width = max(width, 0.4 + 0.075 * max(len(line) for line in title))
    fig = Figure(figsize=(width, height), facecolor=style.background)
    for line, (offset, size) in zip(title, ((0.17, 9.0), (0.36, 8.0)), strict=True):
        fig.text(0.5, 1 - offset / height, line, ha="center", va="center", fontsize=size, color=style.foreground)
    return fig


def _width(fig: Figure) -> float:
    return float(fig.get_size_inches()[0])


# -- shared helpers ----------------------------------------------------------------------------------
def _labels(tokens: Tokens) -> list[str]:
    return [_visible(t) for t in tokens.labels]


def _stack(view: _View) -> str:
    trace = view.trace
    stack = getattr(view.options, "stack", None) or trace.main_stack
    if stack not in trace.attention:
        raise InputError(f"this trace has no {stack!r} attention; it has {', '.join(trace.stacks)}")
    return str(stack)


def _check_index(value: int, count: int, what: str, base: int) -> int:
    if not 0 <= value < count:
        raise InputError(f"{what} {value + base} is out of range: the model has {what}s {base}..{count - 1 + base}")
    return value


def _layer(view: _View, stack: str) -> int:
    layer = getattr(view.options, "layer", None)
    count = view.trace.attention[stack].shape[0]
    return _check_index(0 if layer is None else int(layer), count, "layer", _base(view))


def _heads(view: _View, stack: str, name: str = "heads") -> list[int]:
    chosen = getattr(view.options, name, None)
    count = view.trace.attention[stack].shape[1]
    if chosen is None:
        return list(range(count))
    heads = [_check_index(int(h), count, "head", _base(view)) for h in chosen]
    if not heads:
        raise InputError(f"no heads selected ({name}=()); select at least one head")
    return heads


def _layers(view: _View, stack: str) -> list[int]:
    chosen = getattr(view.options, "include_layers", None)
    count = view.trace.attention[stack].shape[0]
    if chosen is None:
        return list(range(count))
    layers = [_check_index(int(x), count, "layer", _base(view)) for x in chosen]
    if not layers:
        raise InputError("no layers selected (include_layers=()); select at least one layer")
    return layers


def _base(view: _View) -> int:
    return int(getattr(view.options, "index_base", 0))


def _matrices(view: _View, stack: str, layer: int) -> tuple[NDArray[np.float32], bool]:
    """Attention [heads, query, key] of a layer; with hide_special, delimiter rows/columns zeroed and rows
    renormalised. Also returns whether that renormalisation happened (it is stated in the title)."""
    att = view.trace.attention[stack][layer]
    if not getattr(view.options, "hide_special", False):
        return att, False
    q_tokens, k_tokens = view.trace.sides(stack)
    out = att * ~k_tokens.special[None, None, :]
    out = out * ~q_tokens.special[None, :, None]
    sums = out.sum(axis=-1, keepdims=True)
    out = np.divide(out, sums, out=np.zeros_like(out), where=sums > 0)
    return out.astype(np.float32), True


def _title(view: _View, stack: str, *parts: str) -> tuple[str, str]:
    """Two title lines: the model (and the stack, if not the only one), then what is shown."""
    trace = view.trace
    first = _visible(trace.model.name)
    if len(trace.stacks) > 1 or stack != trace.main_stack:
        first += f" · {stack} attention"
    return first, " · ".join(parts)


def _head_colours(count: int) -> list[tuple[float, float, float]]:
    """One colour per head: d3's category10 (as BertViz), then tab20's light shades, then hues."""
    from matplotlib import colormaps

    tab10, tab20, hsv = colormaps["tab10"], colormaps["tab20"], colormaps["hsv"]
    colours = [tab10(i)[:3] for i in range(10)] + [tab20(i)[:3] for i in range(1, 20, 2)]
    extra = count - len(colours)
    colours += [hsv(i / extra)[:3] for i in range(max(0, extra))]
    return colours[:count]


# -- head view ---------------------------------------------------------------------------------------
def _draw_head(view: _View, style: _Style) -> Figure:
    from matplotlib.collections import LineCollection
    from matplotlib.patches import Patch

    stack = _stack(view)
    layer = _layer(view, stack)
    heads = _heads(view, stack)
    base = _base(view)
    q_tokens, k_tokens = view.trace.sides(stack)
    longest = max(len(q_tokens), len(k_tokens))
    if longest > MAX_HEAD_VIEW_TOKENS:
        raise InputError(
            f"the static head view draws at most {MAX_HEAD_VIEW_TOKENS} tokens per side and this input has "
            f"{longest}; save the heatmap or model view instead, or trace a shorter text"
        )
    att, renormalised = _matrices(view, stack, layer)
    colours = _head_colours(view.trace.attention[stack].shape[1])

    row = 0.17  # inches per token row
    font = 8.0
    gap = 0.6  # extra rows between sentence A and sentence B
    q_y = _rows(q_tokens, gap)
    k_y = _rows(k_tokens, gap)
    rows = max(float(q_y.max(initial=0)), float(k_y.max(initial=0))) + 1
    q_labels, k_labels = _labels(q_tokens), _labels(k_tokens)
    text_w = max(0.6, 0.075 * max((len(s) for s in q_labels + k_labels), default=1))
    line_w = 1.6
    legend_cols = min(6, len(heads))
    legend_rows = math.ceil(len(heads) / legend_cols)
    width = max(4.5, 2 * text_w + line_w + 0.6, 0.95 * legend_cols + 0.4)
    header = TITLE_H + 0.1 + 0.22 * legend_rows
    height = rows * row + header + 0.2
    pair = bool((q_tokens.segment == 1).any() or (k_tokens.segment == 1).any())
    extra = ["special tokens hidden, rows renormalised"] if renormalised else []
    if pair:
        extra.append("sentence pair A | B")
    fig = _new_figure(width, height, style, _title(view, stack, f"layer {layer + base}", *extra))
    width = _width(fig)
    ax = fig.add_axes((0.0, 0.1 / height, 1.0, (rows * row) / height))
    ax.set_axis_off()
    ax.set_xlim(0, width)
    ax.set_ylim(rows - 0.5, -0.5)
    x_left = (width - line_w) / 2 - 0.05
    x_right = (width + line_w) / 2 + 0.05

    special_q = q_tokens.special if renormalised else np.zeros(len(q_tokens), bool)
    special_k = k_tokens.special if renormalised else np.zeros(len(k_tokens), bool)
    for labels, ys, x, align, hidden in (
        (q_labels, q_y, x_left, "right", special_q),
        (k_labels, k_y, x_right, "left", special_k),
    ):
        for label, y, off in zip(labels, ys, hidden, strict=True):
            ax.text(x, y, label, ha=align, va="center", fontsize=font, color=style.muted if off else style.foreground)

    segments: list[NDArray[np.float64]] = []
    rgba: list[NDArray[np.float64]] = []
    for h in heads:
        qi, ki = np.nonzero(att[h] >= MIN_WEIGHT)
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

    handles = [Patch(facecolor=colours[h], label=f"head {h + base}") for h in heads]
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


# -- model view --------------------------------------------------------------------------------------
def _draw_model(view: _View, style: _Style) -> Figure:
    from matplotlib.colors import PowerNorm

    stack = _stack(view)
    layers = _layers(view, stack)
    heads = _heads(view, stack, "include_heads")
    base = _base(view)
    cell = min(1.0, 16.0 / len(heads), 22.0 / len(layers))
    pad = 0.08
    left, top, bottom = 0.7, TITLE_H + 0.25, 0.75
    width = left + len(heads) * (cell + pad) + 0.2
    height = top + len(layers) * (cell + pad) + bottom
    q_tokens, k_tokens = view.trace.sides(stack)
    extra = ["special tokens hidden, rows renormalised"] if getattr(view.options, "hide_special", False) else []
    title = _title(view, stack, f"{len(q_tokens)} × {len(k_tokens)} tokens", "rows: layers, columns: heads", *extra)
    fig = _new_figure(max(width, 4.0), height, style, title)
    width = _width(fig)
    # Square-root scale on a fixed [0, 1] range: long inputs spread attention thin, and a linear scale
    # would show them black; every thumbnail shares the one scale, so they can be compared.
    norm = PowerNorm(gamma=0.5, vmin=0.0, vmax=1.0)
    image = None
    for r, layer in enumerate(layers):
        att, _ = _matrices(view, stack, layer)
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
                ax.set_title(f"H{h + base}", fontsize=7, color=style.foreground, pad=3)
            if c == 0:
                ax.set_ylabel(
                    f"L{layer + base}", fontsize=7, color=style.foreground, rotation=0, ha="right", va="center"
                )
    if image is not None:
        bar_ax = fig.add_axes((left / width, 0.25 / height, min(3.0, width - left - 0.3) / width, 0.1 / height))
        _colourbar(fig, image, bar_ax, "attention weight, square-root scale (query rows × key columns)", style)
    return fig


def _colourbar(fig: Figure, image: Any, ax: Axes, label: str, style: _Style, vertical: bool = False) -> None:
    bar = fig.colorbar(image, cax=ax, orientation="vertical" if vertical else "horizontal")
    bar.set_label(label, color=style.foreground, fontsize=7)
    if not vertical:
        bar.ax.xaxis.set_label_position("top")
    bar.ax.tick_params(colors=style.foreground, labelsize=6)
    bar.outline.set_edgecolor(style.muted)


# -- heatmap view ------------------------------------------------------------------------------------
def _draw_heatmap(view: _View, style: _Style) -> Figure:
    stack = _stack(view)
    layer = _layer(view, stack)
    head = _heads(view, stack)[0]
    base = _base(view)
    att, renormalised = _matrices(view, stack, layer)
    matrix = att[head]
    q_tokens, k_tokens = view.trace.sides(stack)
    n_q, n_k = matrix.shape
    step = max(1, math.ceil(max(n_q, n_k) / HEATMAP_MAX_LABELS))
    font = 7.0 if step == 1 and max(n_q, n_k) <= 120 else 5.0
    q_labels, k_labels = _labels(q_tokens), _labels(k_tokens)
    label_w = 0.3 + 0.06 * max((len(s) for s in q_labels + k_labels), default=1) * font / 7
    cell = min(0.16, 14.0 / max(n_q, n_k)) if step == 1 else 12.0 / max(n_q, n_k)
    body_w, body_h = max(2.0, n_k * cell), max(2.0, n_q * cell)
    width = label_w + body_w + 1.2
    height = TITLE_H + 0.3 + body_h + label_w
    extra = [f"one token in {step} labelled"] if step > 1 else []
    if renormalised:
        extra.append("special tokens hidden, rows renormalised")
    title = _title(view, stack, f"layer {layer + base}", f"head {head + base}", *extra)
    fig = _new_figure(width, height, style, title)
    width = _width(fig)
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
    _colourbar(fig, image, bar_ax, "attention weight", style, vertical=True)
    return fig


# -- neuron view -------------------------------------------------------------------------------------
def _draw_neuron(view: _View, style: _Style) -> Figure:
    trace = view.trace
    stack = _stack(view)
    if stack not in trace.qk:
        raise InputError(
            "the neuron view needs query and key vectors: make the trace with qk=True "
            "(attnscope.trace(model, text, qk=True), or `attnscope trace --qk`)"
        )
    qk = trace.qk[stack]
    layer = _layer(view, stack)
    head = _heads(view, stack)[0]
    base = _base(view)
    q_tokens, k_tokens = trace.sides(stack)
    query = _check_index(int(getattr(view.options, "query_index", 0)), len(q_tokens), "query token", base)
    q = qk.queries[layer, head, query].astype(np.float64)
    keys = qk.keys[layer, head].astype(np.float64)
    products = keys * q[None, :]
    dots = products.sum(axis=1)
    scale = float(qk.scale[layer])
    scores = qk.scores(layer, head)[query].astype(np.float64)
    allowed = qk.mask[layer, query] > -1e4
    weights = trace.attention[stack][layer, head, query].astype(np.float64)
    columns: list[tuple[str, NDArray[np.float64]]] = [("q·k", dots), (f"×{scale:.4g}", dots * scale)]
    if qk.bias is not None:
        columns.append(("+ bias", qk.bias[layer, head, query].astype(np.float64)))
        columns.append(("score", np.where(allowed, scores, np.nan)))
    columns.append(("softmax", weights))

    n_k, d = keys.shape
    k_labels = _labels(k_tokens)
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
    fig = _new_figure(width, height, style, _title(view, stack, *parts))
    width = _width(fig)

    def axes(x: float, y_top: float, w: float, rows: int) -> Axes:
        ax = fig.add_axes((x / width, (height - y_top - rows * row) / height, w / width, rows * row / height))
        ax.set_axis_off()
        return ax

    x_keys = label_w
    x_prod = x_keys + vec_w + 0.3
    x_nums = x_prod + vec_w + 0.2
    # Query vector above the keys; q×k has no query row, so its heading sits there.
    q_ax = axes(x_keys, q_row, vec_w, 1)
    q_ax.imshow(_diverging(q[None, :], style), aspect="auto", interpolation="nearest")
    fig.text(
        (x_keys - 0.1) / width,
        1 - (q_row + row / 2) / height,
        f"query q: {_visible(q_tokens.display[query])}",
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
    k_ax.imshow(_diverging(keys, style), aspect="auto", interpolation="nearest")
    p_ax = axes(x_prod, top, vec_w, n_k)
    p_ax.imshow(_diverging(products, style), aspect="auto", interpolation="nearest")
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
        ax.imshow(_diverging(shown[:, None], style), aspect="auto", interpolation="nearest")
        strong = np.abs(shown) > 0.55 * (float(np.abs(shown).max(initial=0.0)) or 1.0)
        for j, value in enumerate(values):
            text = f"{value:.3f}" if allowed[j] and math.isfinite(value) else "masked"
            ink = "#ffffff" if strong[j] else style.foreground
            ax.text(0, j, text, ha="center", va="center", fontsize=6, color=ink)
    note = "blue positive, orange negative, intensity = |value| / largest |value| of its block"
    fig.text(0.5, 0.2 / height, note, ha="center", va="center", fontsize=6, color=style.muted)
    return fig


def _diverging(values: NDArray[np.float64], style: _Style) -> NDArray[np.float64]:
    """RGB image: blue for positive, orange for negative, blended from the background by |value|/max."""
    from matplotlib.colors import to_rgb

    finite = np.nan_to_num(np.asarray(values, dtype=np.float64))
    peak = float(np.abs(finite).max(initial=0.0)) or 1.0
    t = np.clip(np.abs(finite) / peak, 0.0, 1.0)[..., None]
    background = np.array(to_rgb(style.background))
    hue = np.where(finite[..., None] >= 0, np.array(_POSITIVE), np.array(_NEGATIVE))
    return np.asarray(background * (1 - t) + hue * t, dtype=np.float64)
