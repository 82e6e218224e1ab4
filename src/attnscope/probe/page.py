"""The probing HTML page: heatmaps whose cells open that head's head view on an example sentence.

Each heatmap is an inline PNG with an image map (one ``<area>`` per layer x head). Clicking a cell puts
a head view of the relation's example sentence, with that layer and head selected, into the panel on
the right: the page keeps each example's view payload (attnscope.views' versioned contract) and the view
bundle once, and on a click builds a fresh view root from them and runs the bundle, which renders every
pending root. Nothing is fetched; text from the data reaches the page only as escaped text or as JSON
inside ``<script type="application/json">`` (with ``<``, ``>`` and ``&`` escaped).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from attnscope.errors import AttnscopeError
from attnscope.probe.report import escape, heatmap_page, png_data_uri

if TYPE_CHECKING:
    from attnscope.loading import ModelHandle

CSP = "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; img-src data: blob:"

_SCRIPT = """
(function () {
  var bundle = document.getElementById("as-bundle").textContent;
  var panel = document.getElementById("as-viewer");
  document.addEventListener("click", function (ev) {
    var area = ev.target.closest ? ev.target.closest("area[data-layer]") : null;
    if (!area) return;
    ev.preventDefault();
    var section = area.closest("section");
    var block = document.getElementById("ex-" + section.dataset.example);
    if (!block) return;
    var data = JSON.parse(block.textContent);
    var layer = Number(area.dataset.layer), head = Number(area.dataset.head);
    data.options.layer = layer;
    data.options.heads = [head];
    var caption = document.createElement("p");
    caption.className = "as-probe-caption";
    caption.textContent = section.dataset.title + ": head " + layer + "-" + head + " (" + area.dataset.acc +
      ") on \u201c" + section.dataset.sentence + "\u201d";
    var root = document.createElement("div");
    root.className = "attnscope-root";
    root.dataset.attnscopeState = "pending";
    root.dataset.attnscopeView = "head";
    root.dataset.layer = String(layer);
    root.dataset.head = String(head);
    var json = document.createElement("script");
    json.type = "application/json";
    json.textContent = JSON.stringify(data);
    root.appendChild(json);
    panel.replaceChildren(caption, root);
    var run = document.createElement("script");
    run.textContent = bundle;
    document.body.appendChild(run);
    run.remove();
  });
})();
"""

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
    from attnscope.views.payload import payload_json

    view = View("head", trace(handle, text, truncation=True))
    return payload_json(view.payload())


def view_bundle() -> str | None:
    """The built view bundle (script-safe), or None when it is not built or views are not installed."""
    try:
        from attnscope.views.objects import bundle

        return bundle()
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
        parts.append(
            f'<section id="{escape(sec.get("id", sid))}" data-example="{escape(key)}" '
            f'data-title="{escape(sec["title"])}" data-sentence="{escape(sentence)}">'
        )
        parts.append(f"<h2>{escape(sec['title'])}</h2>")
        parts.append(f'<img alt="{escape(sec["title"])}" usemap="#map-{sid}" src="{png_data_uri(sec["png"])}">')
        parts.append(_image_map(f"map-{sid}", sec["box"], sec["grid"]))
        if sec.get("caption"):
            parts.append(f'<p class="cap">{escape(sec["caption"])}</p>')
        parts.append("</section>")
    parts.append('</div><div id="as-viewer"><p>No head selected yet.</p></div></main>')
    for key, (_, payload) in examples.items():
        parts.append(f'<script type="application/json" id="ex-{escape(key)}">{payload}</script>')
    parts.append(f'<script type="text/plain" id="as-bundle">{bundle}</script>')
    parts.append(f"<script>{_SCRIPT}</script>")
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def _image_map(name: str, box: Sequence[float], grid: Any) -> str:
    """One rectangular area per layer x head over the heatmap's cell grid."""
    left, top, right, bottom = box
    layers, heads = len(grid), len(grid[0])
    w, h = (right - left) / heads, (bottom - top) / layers
    areas = []
    for layer in range(layers):
        for head in range(heads):
            x0, y0 = left + head * w, top + layer * h
            acc = f"{100 * float(grid[layer][head]):.1f}%"
            areas.append(
                f'<area shape="rect" coords="{x0:.0f},{y0:.0f},{x0 + w:.0f},{y0 + h:.0f}" href="#as-viewer" '
                f'alt="layer {layer} head {head}: {acc}" title="head {layer}-{head}: {acc}" '
                f'data-layer="{layer}" data-head="{head}" data-acc="{acc}">'
            )
    return f'<map name="{name}">' + "".join(areas) + "</map>"
