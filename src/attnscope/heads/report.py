"""The human-readable files of ``attnscope heads`` and ``attnscope find``: report.md and PNG figures.

Both are built from report.json's content (the dict), so the Markdown and the figures show exactly the
numbers of the JSON. Every label or text from the corpus goes through :mod:`attnscope.text` (Markdown
escaped); figures are drawn with matplotlib's Agg backend without a layout engine or timestamps, so the
same report gives the same bytes.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from attnscope.probe.report import heatmap_image, markdown_table
from attnscope.text import markdown_code, markdown_text

if TYPE_CHECKING:
    from matplotlib.figure import Figure

LAYER_FIGURE = "figures/layers.png"
ROLE_FIGURE = "figures/roles.png"
MAP_FIGURE = "figures/map.png"
SCORE_FIGURE = "figures/scores.png"
TOP_PER_ROLE = 5
TOP_FIND = 20
EXAMPLE_CHARS = 160

LAYER_SERIES = (
    ("cls", "[CLS] / first", "#1f77b4"),
    ("sep", "[SEP] / EOS", "#d62728"),
    ("punct", "punctuation", "#2ca02c"),
    ("other", "other tokens", "#7f7f7f"),
)


def role_palette(heads: Sequence[Sequence[Mapping[str, Any]]]) -> dict[str, str]:
    """Role -> colour for the roles present, in legend order: the atlas view's own colours, so the
    figures and index.html agree."""
    from attnscope.views.atlas import role_colours, role_order

    order = role_order({h["role"] for row in heads for h in row})
    return dict(zip(order, role_colours(order), strict=True))


def _png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata={"Software": None})
    return buf.getvalue()


def _plain(text: Any) -> str:
    """Text for a matplotlib label, shown as is (a ``$`` would otherwise start mathtext)."""
    return str(text).replace("$", r"\$")


def _figure(width: float, height: float) -> Figure:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def layer_figure(report: Mapping[str, Any]) -> bytes:
    """Per layer, the mean share of attention to [CLS], [SEP], punctuation and the rest (Clark et al. Fig. 2)."""
    layers = report["layers"]
    x = np.arange(len(layers))
    fig = _figure(6.0, 3.2)
    ax = fig.add_axes((0.1, 0.15, 0.62, 0.72))
    for key, label, colour in LAYER_SERIES:
        y = [np.nan if row[key] is None else row[key] for row in layers]
        ax.plot(x, y, marker="o", color=colour, label=label, linewidth=1.5, markersize=4)
    ax.set_xticks(x)
    ax.set_xlabel("layer (0-based)", fontsize=8)
    ax.set_ylabel("mean share of attention", fontsize=8)
    ax.set_ylim(0, 1)
    ax.tick_params(labelsize=7)
    ax.grid(alpha=0.3)
    ax.set_title(f"attention by layer: {_plain(report['model'])} ({report['stack']})", fontsize=8, loc="left")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0), frameon=False)
    return _png(fig)


def _role_rgba(colour: str, score: float | None) -> tuple[float, float, float, float]:
    from matplotlib.colors import to_rgba

    r, g, b, _ = to_rgba(colour)
    strength = 0.2 + 0.8 * min(1.0, max(0.0, score or 0.0))  # score as intensity: faint = weak
    return (1 - strength * (1 - r), 1 - strength * (1 - g), 1 - strength * (1 - b), 1.0)


def role_figure(report: Mapping[str, Any]) -> bytes:
    """The layers x heads grid: colour per role, the role's score as intensity, with a legend."""
    from matplotlib.patches import Patch

    heads = report["heads"]
    n_layers, n_heads = len(heads), len(heads[0]) if heads else 0
    palette = role_palette(heads)
    grid = np.array([[_role_rgba(palette[h["role"]], h["score"]) for h in row] for row in heads], dtype=np.float64)
    cells_w, cells_h = max(2.4, 0.32 * n_heads), max(1.2, 0.3 * n_layers)
    left, right, top, bottom = 0.6, 1.6, 0.4, 0.55
    width, height = left + cells_w + right, top + cells_h + bottom
    fig = _figure(width, height)
    ax = fig.add_axes((left / width, bottom / height, cells_w / width, cells_h / height))
    ax.imshow(grid.reshape(n_layers, n_heads, 4), aspect="auto", origin="upper", interpolation="nearest")
    ax.set_xticks(range(n_heads))
    ax.set_yticks(range(n_layers))
    ax.set_xlabel("head", fontsize=8, labelpad=1)
    ax.set_ylabel("layer", fontsize=8, labelpad=1)
    ax.tick_params(labelsize=7, length=2, pad=1)
    ax.set_title("role per head (intensity = score)", fontsize=8, loc="left")
    ax.legend(
        handles=[Patch(color=colour, label=role) for role, colour in palette.items()],
        fontsize=7,
        loc="upper left",
        bbox_to_anchor=(1.02, 1.0),
        frameon=False,
    )
    return _png(fig)


def map_figure(report: Mapping[str, Any]) -> bytes | None:
    """The heads' 2-D MDS map twice: coloured by layer, and by role (None when heads were not compared)."""
    from matplotlib.lines import Line2D

    flat = [h for row in report["heads"] for h in row]
    if not flat or any(h["map"] is None for h in flat):
        return None
    xy = np.array([[np.nan if v is None else v for v in h["map"]] for h in flat], dtype=np.float64)
    layer = np.array([h["layer"] for h in flat])
    fig = _figure(10.0, 4.4)
    by_layer = fig.add_axes((0.05, 0.12, 0.36, 0.78))
    by_role = fig.add_axes((0.5, 0.12, 0.36, 0.78))
    points = by_layer.scatter(xy[:, 0], xy[:, 1], c=layer, cmap="viridis", s=22, edgecolors="none")
    colourbar = fig.colorbar(points, ax=by_layer, fraction=0.05, pad=0.02)
    colourbar.set_label("layer", fontsize=8)
    colourbar.ax.tick_params(labelsize=7)
    palette = role_palette(report["heads"])
    by_role.scatter(xy[:, 0], xy[:, 1], c=[palette[h["role"]] for h in flat], s=22, edgecolors="none")
    if len(flat) <= 200:
        for ax in (by_layer, by_role):
            for h, (px, py) in zip(flat, xy, strict=True):
                ax.annotate(
                    f"{h['layer']}-{h['head']}",
                    (px, py),
                    fontsize=4,
                    alpha=0.7,
                    xytext=(2, 2),
                    textcoords="offset points",
                )
    handles = [Line2D([], [], marker="o", linestyle="", color=c, label=r) for r, c in palette.items()]
    by_role.legend(handles=handles, fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0), frameon=False)
    for ax, what in ((by_layer, "by layer"), (by_role, "by role")):
        ax.set_title(f"heads by Jensen-Shannon distance (MDS), {what}", fontsize=8, loc="left")
        ax.tick_params(labelsize=7)
    return _png(fig)


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}"


def _num(value: float | None, digits: int = 3) -> str:
    return "n/a" if value is None else f"{value:.{digits}f}"


def _snippet(text: str) -> str:
    one_line = " ".join(text.split())
    return one_line if len(one_line) <= EXAMPLE_CHARS else one_line[: EXAMPLE_CHARS - 1] + "…"


def _verdict(holds: bool | None) -> str:
    return {True: "holds", False: "does not hold", None: "not applicable"}[holds]


def heads_markdown(report: Mapping[str, Any], figures: Sequence[str]) -> str:
    """report.md of ``attnscope heads``: the claims with verdicts, the per-layer table, top heads per role,
    clusters, and links to the figures (every corpus text and label escaped)."""
    heads = [h for row in report["heads"] for h in row]
    skipped = report.get("skipped") or {}
    lines = [
        f"# Head atlas: {markdown_text(report['model'])}",
        "",
        f"Stack {markdown_code(report['stack'])}, {report['sentences']} texts, {report['rows']} query rows"
        + ("".join(f", skipped {n} ({markdown_text(k.replace('_', ' '))})" for k, n in skipped.items() if n))
        + ". Layers and heads are 0-based; a head is written `layer-head`. Data: "
        + ", ".join(f"{markdown_text(k)} {markdown_code(v)}" for k, v in report.get("data", {}).items())
        + ".",
        "",
        "## The book's claims",
        "",
        markdown_table(
            ("claim", "verdict", "evidence"),
            [(c["claim"], _verdict(c["holds"]), c["evidence"]) for c in report["claims"]],
        ),
        "## Attention by layer (%)",
        "",
        "Mean share of each non-special query token's attention (averaged over the layer's heads) going to the "
        "first token ([CLS]/BOS), to other special tokens ([SEP]/EOS), to punctuation, and to the rest "
        "(Clark et al. 2019, Fig. 2).",
        "",
        markdown_table(
            ("layer", "[CLS]", "[SEP]", "punct", "other"),
            [(i, *(_pct(row[k]) for k in ("cls", "sep", "punct", "other"))) for i, row in enumerate(report["layers"])],
        ),
        f"![attention by layer]({LAYER_FIGURE})",
        "",
        "## Roles",
        "",
        f"A role is a head's largest share if it is at least {report['thresholds']['share']}, else `broad` if its "
        f"normalised entropy is at least {report['thresholds']['broad_entropy_norm']}, else `mixed` "
        "(definitions: `attnscope.heads.roles`).",
        "",
    ]
    by_role: dict[str, list[dict[str, Any]]] = {}
    for h in heads:
        by_role.setdefault(h["role"], []).append(h)
    order = list(role_palette(report["heads"]))  # legend order, as in the figures and the atlas view
    lines.append(
        markdown_table(
            ("role", "heads", f"top {TOP_PER_ROLE} (score)"),
            [
                (
                    r,
                    len(by_role[r]),
                    ", ".join(f"{h['layer']}-{h['head']} ({_num(h['score'])})" for h in _top(by_role[r])),
                )
                for r in order
            ],
        )
    )
    lines += [f"![roles]({ROLE_FIGURE})", "", "### Where each role is strongest", ""]
    rows = []
    for r in order:
        for h in _top(by_role[r]):
            ex = h.get("example") or {}
            rows.append((r, f"{h['layer']}-{h['head']}", _num(h["score"]), _snippet(str(ex.get("text", "")))))
    lines.append(markdown_table(("role", "head", "score", "sentence where it is strongest"), rows))
    lines += _cluster_lines(report, heads)
    if MAP_FIGURE in figures:
        lines += [f"![map of heads]({MAP_FIGURE})", ""]
    lines += ["## Files", "", "- `report.json`: every number (schema: README, *Head atlas and head finder*)"]
    lines += [f"- `{name}`" for name in figures]
    return "\n".join(lines) + "\n"


def _top(heads: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(heads, key=lambda h: (-(h["score"] if h["score"] is not None else -1), h["layer"], h["head"]))[
        :TOP_PER_ROLE
    ]


def _cluster_lines(report: Mapping[str, Any], heads: list[dict[str, Any]]) -> list[str]:
    if report.get("similarity") is None:
        return ["## Clusters", "", "Heads were not compared (`--js-sentences 0`).", ""]
    groups: dict[int, list[dict[str, Any]]] = {}
    for h in heads:
        groups.setdefault(h["cluster"], []).append(h)
    rows = []
    for cid in sorted(groups):
        members = groups[cid]
        roles: dict[str, int] = {}
        for h in members:
            roles[h["role"]] = roles.get(h["role"], 0) + 1
        common = ", ".join(f"{r} {n}" for r, n in sorted(roles.items(), key=lambda kv: (-kv[1], kv[0])))
        rows.append((cid, len(members), common, " ".join(f"{h['layer']}-{h['head']}" for h in members)))
    return [
        "## Clusters",
        "",
        f"Ward clusters of the heads' Jensen-Shannon distances over the first {report['similarity']['rows']} query "
        "rows (cut by silhouette).",
        "",
        markdown_table(("cluster", "heads", "roles", "members"), rows),
    ]


def heads_files(report: Mapping[str, Any]) -> dict[str, str | bytes]:
    """report.md and the PNG figures of a heads report (report.json's content as a dict)."""
    files: dict[str, str | bytes] = {LAYER_FIGURE: layer_figure(report), ROLE_FIGURE: role_figure(report)}
    mds = map_figure(report)
    if mds is not None:
        files[MAP_FIGURE] = mds
    files["report.md"] = heads_markdown(report, sorted(files))
    return files


def find_markdown(report: Mapping[str, Any]) -> str:
    """report.md of ``attnscope find``: the question, the top of the ranking (with intervals and example
    sentences for word pairs) and the score grid."""
    query = report.get("query", {})
    examples = report.get("examples") or []
    ranking = report["ranking"]
    asked = ", ".join(f"{markdown_text(k)} {markdown_code(v)}" for k, v in query.items())
    lines = [
        f"# Heads ranked: {markdown_text(report['model_info']['name'])}",
        "",
        f"Method {markdown_code(report['method'])}; {asked}. Layers and heads are 0-based.",
        "",
        f"## Top {min(TOP_FIND, len(ranking))} of {len(ranking)} heads",
        "",
    ]
    pairs = "ratio" in (ranking[0] if ranking else {})
    if pairs:
        headers: tuple[str, ...] = ("rank", "head", "score", "ratio", "95% interval", "example (strongest)")
        rows: list[tuple[Any, ...]] = []
        for i, r in enumerate(ranking[:TOP_FIND], 1):
            ex = examples[r["example"]] if isinstance(r.get("example"), int) and r["example"] < len(examples) else {}
            ci = r.get("ci") or [None, None]
            text = str(ex.get("text", ""))
            words = ""
            if ex.get("from") and ex.get("to"):
                words = f"{text[ex['from'][0] : ex['from'][1]]} → {text[ex['to'][0] : ex['to'][1]]}: "
            rows.append(
                (
                    i,
                    f"{r['layer']}-{r['head']}",
                    _num(r["score"]),
                    _num(r.get("ratio"), 2),
                    f"[{_num(ci[0])}, {_num(ci[1])}]",
                    words + _snippet(text),
                )
            )
    else:
        headers = ("rank", "head", "score")
        rows = [(i, f"{r['layer']}-{r['head']}", _num(r["score"])) for i, r in enumerate(ranking[:TOP_FIND], 1)]
    lines += [markdown_table(headers, rows), f"![scores]({SCORE_FIGURE})", ""]
    if examples and not pairs:
        lines += ["## Examples", ""] + [f"- {markdown_text(_snippet(str(e.get('text', ''))))}" for e in examples[:10]]
    return "\n".join(lines) + "\n"


def score_grid(report: Mapping[str, Any]) -> np.ndarray:
    """The [layers, heads] grid of ``find`` scores from its ranking (NaN where a score is missing)."""
    info = report["model_info"]
    grid = np.full((info["num_layers"], info["num_heads"]), np.nan)
    for r in report["ranking"]:
        grid[r["layer"], r["head"]] = np.nan if r["score"] is None else r["score"]
    return grid


def _question(report: Mapping[str, Any]) -> str:
    query = report.get("query", {})
    if "pattern" in query:
        return f"pattern {query['pattern']!r}: score per head (mul)"
    if "from" in query:
        return f"mean attention {query['from']!r} -> {query['to']!r} per head"
    return f"{report['method']} score per head"


def find_files(report: Mapping[str, Any]) -> dict[str, str | bytes]:
    """report.md and the score-grid PNG of a find report (report.json's content as a dict)."""
    grid = score_grid(report)
    best = report["ranking"][0] if report["ranking"] else None
    finite = grid[np.isfinite(grid)]
    vmax = max(1.0, float(finite.max())) if finite.size else 1.0
    png, _ = heatmap_image(
        grid,
        _plain(_question(report)),
        mark=(best["layer"], best["head"]) if best else None,
        vmin=min(0.0, float(finite.min())) if finite.size else 0.0,
        vmax=vmax,
        label="score",
    )
    return {"report.md": find_markdown(report), SCORE_FIGURE: png}
