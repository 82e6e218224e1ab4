"""The interactive page (in Chromium) and the PNG/SVG export read one resolved spec, so they agree:
the same head colours, the same masked keys, the same renormalised weights."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from typing import Any

import numpy as np
import pytest

import attnscope
from attnscope.traces import Trace
from attnscope.views import View, ViewOptions
from attnscope.views import page as view_page
from attnscope.views.resolve import MIN_WEIGHT, masked, resolve, shown_attention
from test_browser_views import data, heatmap_cells, show, tab  # noqa: F401 - the tab fixture
from test_views_payload import random_trace

pytest.importorskip("matplotlib", reason="static export needs the 'views' extra (matplotlib)")
pytestmark = pytest.mark.browser

SVG = "{http://www.w3.org/2000/svg}"
PAIR_TOKENS = ["[CLS]", "the", "cat", "sat", "[SEP]", "it", "was", "tired", "[SEP]"]


def _svg(kind: str, trace: Trace, **options: Any) -> ET.Element:
    from attnscope.views.export import to_svg

    return ET.fromstring(to_svg(View(kind, trace, ViewOptions(**options))))


def _rgb_hex(css: str) -> str:
    r, g, b = (int(v) for v in re.findall(r"\d+", css)[:3])
    return f"#{r:02x}{g:02x}{b:02x}"


def test_head_colours_agree_for_40_heads(tab: Any) -> None:  # noqa: F811
    trace = random_trace(PAIR_TOKENS, layers=1, heads=40)
    resolved = resolve(trace, ViewOptions())
    show(tab, view_page(trace, ["head"]).to_html())
    blocks = tab.eval_on_selector_all(".as-headview .as-head", "bs => bs.map(b => getComputedStyle(b).backgroundColor)")
    on_page = [_rgb_hex(c) for c in blocks]
    legend = next(g for g in _svg("head", trace).iter(f"{SVG}g") if (g.get("id") or "").startswith("legend"))
    fills = [re.search(r"fill: (#[0-9a-f]{6})", p.get("style") or "") for p in legend.iter(f"{SVG}path")]
    in_picture = [m.group(1) for m in fills if m]
    assert on_page == in_picture == list(resolved.head_colours)
    assert len(set(on_page[:32])) == 32


def test_masked_keys_agree(tab: Any, tiny: Any) -> None:  # noqa: F811
    trace = attnscope.trace(tiny("gpt2"), "one two three four five", qk=True)
    options = {"layer": 1, "heads": (2,), "query_index": 2}
    resolved = resolve(trace, ViewOptions(**options))
    expected = np.flatnonzero(masked(trace.qk["decoder"].mask[1, 2], resolved)).tolist()
    assert expected  # a causal decoder masks the keys after the query
    show(tab, view_page(trace, ["neuron"], layer=1, heads=[2], query_index=2).to_html())
    cells = tab.eval_on_selector_all(
        ".as-neuronview [data-col=softmax]", "ns => ns.filter(n => n.textContent === 'masked').map(n => +n.dataset.key)"
    )
    texts = ["".join(t.itertext()) for t in _svg("neuron", trace, **options).iter(f"{SVG}text")]
    assert cells == expected
    assert texts.count("masked") == 3 * len(expected)  # q·k, scaled and softmax columns of those keys


def test_renormalised_weights_agree(tab: Any) -> None:  # noqa: F811
    trace = random_trace(PAIR_TOKENS, layers=2, heads=3)
    options = ViewOptions(layer=1, heads=(2,), hide_special=True)
    shown = shown_attention(trace, resolve(trace, options), 1)
    html = view_page(trace, ["heatmap", "head"], layer=1, heads=[2], hide_special=True, precision="float32").to_html()
    show(tab, html)
    on_page = heatmap_cells(tab, len(PAIR_TOKENS))
    np.testing.assert_allclose(on_page, shown[2], atol=5e-5)
    special = np.array([t.startswith("[") for t in PAIR_TOKENS])
    np.testing.assert_allclose(on_page[~special].sum(-1), 1.0, atol=5e-4)
    # The head view draws a line for each weight >= MIN_WEIGHT after renormalising, as the picture does.
    tab.click("button[data-tab=head]")
    colour = resolve(trace, options).head_colours[2]
    root = _svg("head", trace, layer=1, heads=(2,), hide_special=True)
    lines = [p for p in root.iter(f"{SVG}path") if f"stroke: {colour}" in (p.get("style") or "")]
    assert int(data(tab, ".as-headview")["lines"]) == len(lines) == int((shown[2] >= MIN_WEIGHT).sum())
