"""The probing HTML page: heatmaps whose cells open that head's head view on an example sentence.

Each heatmap is an inline PNG with an image map (one ``<area>`` per layer x head). Each area is a view
link the bundle understands (``data-attnscope-open`` names the example's payload block,
``data-attnscope-target`` the panel, ``data-layer``/``data-head`` the head to select, ``data-caption``
the text above it): a click renders the example's head view there through the bundle's
``attnscope.render``. The page has no script of its own; nothing is fetched; text from the data
reaches the page only as escaped text or as JSON inside ``<script type="application/json">`` (with
``<``, ``>`` and ``&`` escaped).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from attnscope.errors import AttnscopeError
from attnscope.probe.report import escape, heatmap_page, png_data_uri

if TYPE_CHECKING:
    from attnscope.loading import ModelHandle

CSP = "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data: blob:"

_STYLE = (
    "body{font:14px system-ui,sans-serif;margin:0;color:#222}"
    "header{padding:1em 1.5em .2em}h1{font-size:20px;margin:0 0 .3em}"
    "main{display:grid;grid-template-columns:minmax(0,1fr) minmax(380px,42%);gap:1em;padding:0 1.5em 1.5em}"
    "section{display:inline-block;vertical-align:top;margin:0 1.2em 1.2em 0}"
    "section img{max-width:none}h2{font-size:15px;margin:.2em 0}p.cap{margin:.2em 0;max-width:38em;color:#444}"
    "#as-viewer{position:sticky;top:0;align-self:start;max-height:100vh;overflow:auto;border-left:1px solid #ddd;"
    "padding-left:1em}.as-probe-caption{font-weight:600}"
)


def example_payload(handle: ModelHandle, text: str) -> str:
    """A head view payload (JSON, script-safe) of the model on ``text``: what a click shows."""
    from attnscope.tracing import trace
    from attnscope.views.objects import View

    return View("head", trace(handle, text, truncation=True)).payload_json()


def view_bundle() -> str | None:
    """The built view bundle as a <script> element, or None when it is not built or views are not installed."""
    try:
        from attnscope.views.embed import bundle_script

        return bundle_script()
    except (ImportError, AttnscopeError):
        return None


def linked_page(
    title: str,
    intro: str,
    sections: Sequence[Mapping[str, Any]],
    examples: Mapping[str, tuple[str, str]],
) -> str:
    """The page; each section has ``id``, ``title``, ``png``, ``box`` (grid box in pixels), ``grid`` (layers x
    heads accuracy), optional ``caption``, and ``example`` (a key of ``examples``: key -> (sentence, payload)).

    Without a view bundle the page still shows every heatmap, and says why cells do not open views.
    """
    bundle = view_bundle()
    if bundle is None or not examples:
        note = "Head views are not available here: the view bundle is not built (run ./dev demo)."
        plain = [{k: v for k, v in s.items() if k in ("id", "title", "png", "caption")} for s in sections]
        return heatmap_page(title, f"{intro} {note}", plain)
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{escape(title)}</title>",
        f"<style>{_STYLE}</style>",
        "</head><body>",
        f"<header><h1>{escape(title)}</h1><p>{escape(intro)} Click a head in a heatmap to open its head view "
        "on an example sentence.</p></header>",
        "<main><div>",
    ]
    for i, sec in enumerate(sections):
        sid = f"s{i}"
        key = str(sec.get("example", ""))
        sentence = examples.get(key, ("", ""))[0]
        parts.append(f'<section id="{escape(sec.get("id", sid))}">')
        parts.append(f"<h2>{escape(sec['title'])}</h2>")
        parts.append(f'<img alt="{escape(sec["title"])}" usemap="#map-{sid}" src="{png_data_uri(sec["png"])}">')
        link = {"example": f"ex-{key}", "title": str(sec["title"]), "sentence": sentence}
        parts.append(_image_map(f"map-{sid}", sec["box"], sec["grid"], link))
        if sec.get("caption"):
            parts.append(f'<p class="cap">{escape(sec["caption"])}</p>')
        parts.append("</section>")
    parts.append('</div><div id="as-viewer"><p>No head selected yet.</p></div></main>')
    for key, (_, payload) in examples.items():
        parts.append(f'<script type="application/json" id="ex-{escape(key)}">{payload}</script>')
    parts.append(bundle)
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def _image_map(name: str, box: Sequence[float], grid: Any, link: Mapping[str, str]) -> str:
    """One rectangular area per layer x head over the heatmap's cell grid, each a view link (see above)."""
    left, top, right, bottom = box
    layers, heads = len(grid), len(grid[0])
    w, h = (right - left) / heads, (bottom - top) / layers
    areas = []
    for layer in range(layers):
        for head in range(heads):
            x0, y0 = left + head * w, top + layer * h
            acc = f"{100 * float(grid[layer][head]):.1f}%"
            caption = f"{link['title']}: head {layer}-{head} ({acc}) on \u201c{link['sentence']}\u201d"
            areas.append(
                f'<area shape="rect" coords="{x0:.0f},{y0:.0f},{x0 + w:.0f},{y0 + h:.0f}" href="#as-viewer" '
                f'alt="layer {layer} head {head}: {acc}" title="head {layer}-{head}: {acc}" '
                f'data-layer="{layer}" data-head="{head}" data-acc="{acc}" '
                f'data-attnscope-open="{escape(link["example"])}" data-attnscope-target="as-viewer" '
                f'data-caption="{escape(caption)}">'
            )
    return f'<map name="{name}">' + "".join(areas) + "</map>"
