"""Writing probing results: report.json (versioned), report.md, PNG heatmaps and an offline HTML page.

Every ``probe`` command builds its files in memory; the corpus driver writes them as a whole new ``--out``
folder, swapped in only when the run succeeded (:func:`attnscope.corpus.output.replace_folder`).

report.json always holds ``schema_version`` (this module's :data:`SCHEMA_VERSION`), ``analysis``
(``"deps"``, ``"coref"``, ``"train"``), ``model`` (name, architecture, layers, heads), ``data`` (file,
sha256, counts) and the analysis' numbers; layers and heads are 0-based, accuracies in [0, 1].
"""

from __future__ import annotations

import base64
import hashlib
import html
import io
import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from attnscope.errors import InputError
from attnscope.text import markdown_text, terminal_text
from attnscope.traces import ModelInfo

SCHEMA_VERSION = 1


def file_sha256(path: str | Path) -> str:
    """Hex sha256 of a file, so a report names exactly the data it measured."""
    digest = hashlib.sha256()
    with Path(path).open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def report_header(analysis: str, model: ModelInfo, data_file: str | Path, **counts: Any) -> dict[str, Any]:
    """The fields every report.json starts with: schema version, analysis, model, data file and hash, counts."""
    path = Path(data_file)
    return {
        "schema_version": SCHEMA_VERSION,
        "analysis": analysis,
        "model": {
            "name": model.name,
            "architecture": model.architecture,
            "num_layers": model.num_layers,
            "num_heads": model.num_heads,
        },
        "data": {"file": str(path.resolve()), "sha256": file_sha256(path), **counts},
    }


def rounded(values: ArrayLike, digits: int = 6) -> Any:
    """Nested lists of floats rounded for JSON (NaN becomes null)."""
    arr = np.asarray(values, dtype=np.float64)
    out = np.round(arr, digits).tolist()
    return _nan_to_none(out)


def _nan_to_none(value: Any) -> Any:
    if isinstance(value, list):
        return [_nan_to_none(v) for v in value]
    if isinstance(value, float) and math.isnan(value):
        return None
    return value


def to_json(report: Mapping[str, Any]) -> str:
    """report.json text: sorted keys are not used, so the document reads in the order it was built."""
    if "schema_version" not in report:
        raise InputError("a report must carry schema_version; start it with report_header()")
    return json.dumps(report, indent=1, ensure_ascii=False, allow_nan=False) + "\n"


def heatmap_image(
    values: ArrayLike,
    title: str,
    *,
    mark: tuple[int, int] | None = None,
    vmin: float = 0.0,
    vmax: float = 1.0,
    label: str = "accuracy",
) -> tuple[bytes, tuple[float, float, float, float]]:
    """The heatmap PNG and the cell grid's box (left, top, right, bottom) in image pixels, for click maps."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    grid = np.asarray(values, dtype=np.float64)
    if grid.ndim != 2:
        raise InputError(f"heatmap values must be [layers, heads], got shape {grid.shape}")
    layers, heads = grid.shape
    # Fixed margins in inches (no layout engine): one draw, and the cell grid's box is known exactly.
    dpi, left, right, top, bottom = 100, 0.6, 1.05, 0.4, 0.55
    cells_w, cells_h = max(2.4, 0.32 * heads), max(1.2, 0.3 * layers)
    width, height = left + cells_w + right, top + cells_h + bottom
    fig = Figure(figsize=(width, height), dpi=dpi)
    FigureCanvasAgg(fig)
    ax = fig.add_axes((left / width, bottom / height, cells_w / width, cells_h / height))
    cax = fig.add_axes(((left + cells_w + 0.12) / width, bottom / height, 0.15 / width, cells_h / height))
    image = ax.imshow(grid, vmin=vmin, vmax=vmax, cmap="viridis", aspect="auto", origin="upper")
    ax.set_xlabel("head", fontsize=8, labelpad=1)
    ax.set_ylabel("layer", fontsize=8, labelpad=1)
    ax.set_xticks(range(heads))
    ax.set_yticks(range(layers))
    ax.tick_params(labelsize=7, length=2, pad=1)
    ax.set_title(title, fontsize=8, loc="left")
    if mark is not None:
        ax.scatter([mark[1]], [mark[0]], s=90, facecolors="none", edgecolors="red", linewidths=1.5)
        ax.set_xlim(-0.5, heads - 0.5)
        ax.set_ylim(layers - 0.5, -0.5)
    fig.colorbar(image, cax=cax)
    cax.tick_params(labelsize=7)
    cax.set_ylabel(label, fontsize=8)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", metadata={"Software": None})
    box = (left * dpi, top * dpi, (left + cells_w) * dpi, (top + cells_h) * dpi)
    return buf.getvalue(), box


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A GitHub-flavoured Markdown table; every cell is shown as text (Markdown and HTML escaped)."""

    def cell(v: Any) -> str:
        return markdown_text(str(v).replace("\n", " "))

    lines = ["| " + " | ".join(cell(h) for h in headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


def text_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A compact aligned plain-text table for the terminal (numbers right-aligned; escape sequences and
    control characters from labels removed or spelled out)."""
    cells = [[terminal_text(h) for h in headers]] + [[terminal_text(v) for v in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    numeric = [all(_is_number(r[i]) for r in cells[1:]) and len(cells) > 1 for i in range(len(headers))]

    def line(row: list[str]) -> str:
        parts = [v.rjust(w) if num else v.ljust(w) for v, w, num in zip(row, widths, numeric, strict=True)]
        return "  ".join(parts).rstrip()

    return "\n".join([line(cells[0]), line(["-" * w for w in widths]), *(line(r) for r in cells[1:])]) + "\n"


def _is_number(text: str) -> bool:
    try:
        float(text.rstrip("%").replace("+", ""))
    except ValueError:
        return text in ("", "-")
    return True


def png_data_uri(png: bytes) -> str:
    """A PNG as a data: URI, so an HTML page needs no side files and no network."""
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def escape(text: Any) -> str:
    """Text made safe to place in HTML (element content or quoted attribute)."""
    return html.escape(str(text), quote=True)


def heatmap_page(title: str, intro: str, sections: Sequence[Mapping[str, Any]], extra_html: str = "") -> str:
    """A self-contained HTML page of heatmaps (inline PNGs, no script, nothing fetched).

    Each section is a mapping with ``title``, ``png`` (bytes), optional ``caption`` (text) and ``id``.
    ``extra_html`` is trusted markup placed before the closing body tag (callers escape what they put in).
    """
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{escape(title)}</title>",
        "<style>body{font:14px system-ui,sans-serif;margin:1.5em;color:#222}"
        "section{display:inline-block;vertical-align:top;margin:0 1.5em 1.5em 0}"
        "h2{font-size:15px;margin:.2em 0}p.cap{margin:.2em 0;max-width:40em;color:#444}</style>",
        "</head><body>",
        f"<h1>{escape(title)}</h1>",
        f"<p>{escape(intro)}</p>",
    ]
    for i, sec in enumerate(sections):
        sid = escape(sec.get("id", f"section-{i}"))
        parts.append(f'<section id="{sid}"><h2>{escape(sec["title"])}</h2>')
        parts.append(f'<img alt="{escape(sec["title"])}" src="{png_data_uri(sec["png"])}">')
        if sec.get("caption"):
            parts.append(f'<p class="cap">{escape(sec["caption"])}</p>')
        parts.append("</section>")
    parts.append(extra_html)
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"
