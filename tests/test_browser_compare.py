"""The comparison view in Chromium: renders offline, the B − A cells read back as Python computes them, hover
numbers, keyboard, numbering, rendering into any element, hostile tokens inert."""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
import pytest

import attnscope
from attnscope.traces import Trace
from attnscope.views import compare_view
from attnscope.views.embed import bundle_script
from test_browser_views import data, show, tab
from test_views_compare import EDITED, HOSTILE, ORIGINAL
from test_views_payload import random_trace

pytestmark = pytest.mark.browser
__all__ = ["tab"]  # the fixture, shared with test_browser_views

SHOTS = "/tmp/attnscope-compare"  # screenshots of the states, to look at by eye


@pytest.fixture(scope="module")
def edited(tiny: Any) -> tuple[Trace, Trace]:
    """A sentence and an edit of it: a replaced token, an inserted one, a removed one."""
    bert = tiny("bert")
    return attnscope.trace(bert, ORIGINAL), attnscope.trace(bert, EDITED)


def geometry(pg: Any) -> tuple[float, float, float]:
    left, top, cell = (float(v) for v in data(pg, ".as-compareview")["geometry"].split(","))
    return left, top, cell


def hover(pg: Any, panel: str, q: int, k: int) -> str:
    """Move the mouse over cell (q, k) of a panel ("a", "b" or "diff"); returns the info line."""
    box = pg.query_selector(f".as-compareview canvas[data-panel={panel}]").bounding_box()
    left, top, cell = geometry(pg)
    pg.mouse.move(box["x"] + left + cell * (k + 0.5), box["y"] + top + cell * (q + 0.5))
    assert data(pg, ".as-compareview")["hover"] == f"{panel}:{q},{k}"
    text: str = pg.text_content(".as-compare-info")
    return text


def read_difference(pg: Any, shape: tuple[int, int]) -> np.ndarray:
    """Every cell of the difference matrix, read back from its hover text (4 decimals; NaN: no partner)."""
    out = np.zeros(shape)
    for q in range(shape[0]):
        for k in range(shape[1]):
            text = hover(pg, "diff", q, k)
            if "no difference" in text:
                out[q, k] = math.nan
                continue
            number = text.rsplit(" ", 1)[1]
            out[q, k] = float(number.replace("\u2212", "-"))
    return out


def test_difference_cells_read_back_as_python_computes_them(tab: Any, edited: tuple[Trace, Trace]) -> None:
    a, b = edited
    view = compare_view(a, b, layer=1, heads=[0, 2], precision="float32")
    show(tab, view.to_html())
    node = data(tab, ".as-compareview")
    want = view.subject.difference()
    assert (node["layer"], node["head"], node["cells"]) == ("1", "-1", f"{want.shape[0]}x{want.shape[1]}")
    note = tab.text_content(".as-compareview .as-note")
    assert "Layer 1, mean of heads 0, 2" in note
    assert "8 query tokens aligned (1 replaced), 1 only in A, 1 only in B" in note
    tab.screenshot(path=f"{SHOTS}-mean.png", full_page=True)
    got = read_difference(tab, want.shape)
    assert np.array_equal(np.isnan(got), np.isnan(want))  # no partner: no difference, and nowhere else
    np.testing.assert_allclose(got[~np.isnan(want)], want[~np.isnan(want)], atol=0.5e-4 + 1e-7)
    # one head, chosen from the selector: the page recomputes B − A from the two traces it carries
    tab.select_option(".as-compare-head", "2")
    got = read_difference(tab, want.shape)
    one = view.subject.difference(layer=1, head=2)
    np.testing.assert_allclose(got[~np.isnan(one)], one[~np.isnan(one)], atol=0.5e-4 + 1e-7)


def test_uint8_page_is_within_its_rounding(tab: Any, edited: tuple[Trace, Trace]) -> None:
    view = compare_view(*edited, layer=0, heads=[1])
    show(tab, view.to_html())
    want = view.subject.difference()
    got = read_difference(tab, want.shape)
    ok = ~np.isnan(want)
    assert np.abs(got[ok] - want[ok]).max() <= 1 / 255 + 0.5e-4  # each weight within 0.5/255


def test_hover_shows_both_weights_and_their_difference(tab: Any, edited: tuple[Trace, Trace]) -> None:
    a, b = edited
    view = compare_view(a, b, layer=1, heads=[3], precision="float32")
    show(tab, view.to_html())
    q, k = view.subject.query, view.subject.key
    m = q.kinds.index("replace")  # cat -> big
    n = 1  # "the"
    text = hover(tab, "diff", m, n)
    wa = a.attention["encoder"][1, 3, q.a[m], k.a[n]]
    wb = b.attention["encoder"][1, 3, q.b[m], k.b[n]]
    sign = "+" if wb >= wa else "\u2212"
    assert text == (
        f"query \u201ccat\u2192big\u201d (A 2, B 2) \u2192 key \u201cthe\u201d (A 1, B 1): "
        f"A {wa:.4f}, B {wb:.4f}, B \u2212 A {sign}{abs(wb - wa):.4f}"
    )
    tab.screenshot(path=f"{SHOTS}-hover.png", full_page=True)
    inserted = q.kinds.index("insert")
    assert hover(tab, "diff", inserted, n).startswith("query \u201cdog\u201d (only in B, B 3) \u2192 key")
    assert "no difference" in tab.text_content(".as-compare-info")
    text = hover(tab, "a", 2, 3)
    assert text == f"A: query 2 \u201ccat\u201d \u2192 key 3 \u201csat\u201d: {a.attention['encoder'][1, 3, 2, 3]:.4f}"
    text = hover(tab, "b", 3, 2)
    assert text == f"B: query 3 \u201cdog\u201d \u2192 key 2 \u201cbig\u201d: {b.attention['encoder'][1, 3, 3, 2]:.4f}"
    legends = tab.eval_on_selector_all(".as-compareview .as-legend-title", "ts => ts.map(t => t.textContent)")
    assert legends == ["Attention (A and B)", "B \u2212 A: blue less in B, red more"]


def test_keyboard_moves_over_the_difference_and_the_selectors(tab: Any, edited: tuple[Trace, Trace]) -> None:
    view = compare_view(*edited, precision="float32")
    show(tab, view.to_html())
    tab.focus(".as-compare-head")
    tab.keyboard.press("Tab")  # the difference matrix is the next stop
    assert tab.evaluate("() => document.activeElement.dataset.panel") == "diff"
    tab.keyboard.press("ArrowDown")
    tab.keyboard.press("ArrowDown")
    tab.keyboard.press("ArrowRight")
    assert data(tab, ".as-compareview")["cursor"] == "2,1"
    diff = view.subject.difference()
    assert data(tab, ".as-compareview")["diff"] == f"{diff[2, 1]:.4f}"
    tab.keyboard.press("End")
    assert data(tab, ".as-compareview")["cursor"] == f"2,{diff.shape[1] - 1}"
    assert "\u201c[SEP]\u201d" in tab.text_content(".as-compare-info")
    tab.screenshot(path=f"{SHOTS}-keyboard.png", full_page=True)
    tab.focus(".as-compare-layer")
    tab.keyboard.press("ArrowDown")  # a native select: the arrow keys change the layer
    assert data(tab, ".as-compareview")["layer"] == "1"
    tab.focus(".as-compare-head")
    tab.keyboard.press("ArrowDown")
    assert data(tab, ".as-compareview")["head"] == "0"
    assert "Layer 1, head 0" in tab.text_content(".as-compareview .as-note")


def test_numbering_and_theme_switch_relabel_and_repaint(tab: Any, edited: tuple[Trace, Trace]) -> None:
    view = compare_view(*edited, layer=1)
    show(tab, view.to_html())
    before = tab.eval_on_selector(".as-compareview canvas[data-panel=diff]", "c => c.toDataURL()")
    tab.select_option(".as-base", "1")
    options = tab.eval_on_selector(".as-compare-layer", "s => [...s.options].map(o => o.textContent)")
    assert options == ["1", "2"]
    heads = tab.eval_on_selector(".as-compare-head", "s => [...s.options].map(o => o.textContent)")
    assert heads == ["mean", "1", "2", "3", "4"]
    assert "Layer 2, mean of all heads" in tab.text_content(".as-compareview .as-note")
    assert hover(tab, "a", 2, 3).startswith("A: query 3 \u201ccat\u201d \u2192 key 4")
    tab.select_option(".as-theme", "light")
    tab.screenshot(path=f"{SHOTS}-light.png", full_page=True)
    after = tab.eval_on_selector(".as-compareview canvas[data-panel=diff]", "c => c.toDataURL()")
    assert after != before
    rows = tab.eval_on_selector_all(".as-compareview table.as-sr tbody tr", "rs => rs.length")
    assert rows == len(view.subject.query.a)  # the text alternative has a row per merged query


def test_different_models_compare_what_both_have(tab: Any) -> None:
    tokens = ["[CLS]", "the", "cat", "sat", "[SEP]"]
    big = random_trace(tokens, layers=4, heads=5, seed=1)
    small = random_trace(tokens, layers=2, heads=3, seed=2)
    show(tab, compare_view(big, small).to_html())
    options = tab.eval_on_selector(".as-compare-layer", "s => [...s.options].map(o => o.value)")
    assert options == ["0", "1"]
    note = tab.text_content(".as-compareview .as-note")
    assert "A has 4 layers x 5 heads, B has 2 layers x 3 heads: layers 0-1 and heads 0-2 of both are compared." in note


def test_renders_into_any_element_of_a_page(tab: Any, edited: tuple[Trace, Trace]) -> None:
    view = compare_view(*edited)
    payload = view.payload()
    n = len(view.subject.query.a)  # the merged order: paired tokens, and each unpaired one once
    page = (
        '<!DOCTYPE html><html><head><meta charset="utf-8"></head><body><main><section><div id="here"></div>'
        f"</section></main>{bundle_script()}</body></html>"
    )
    tab.set_content(page)
    tab.evaluate(f"() => attnscope.render(document.getElementById('here'), {json.dumps(payload)})")
    assert data(tab, "#here .as-compareview")["cells"] == f"{n}x{n}"
    assert tab.eval_on_selector_all("#here canvas", "cs => cs.length") == 3
    tab.evaluate(f"() => attnscope.render(document.getElementById('here'), {json.dumps(payload)})")  # again: replaced
    assert tab.eval_on_selector_all("#here canvas", "cs => cs.length") == 3


def test_hostile_tokens_stay_text(tab: Any) -> None:
    a = random_trace(["[CLS]", "a", HOSTILE, "b", "[SEP]"])
    b = random_trace(["[CLS]", "a", "c", "b", "[SEP]"], seed=3)
    show(tab, compare_view(a, b, labels=(HOSTILE, "<b>B</b>")).to_html())
    title = tab.title()
    assert hover(tab, "diff", 2, 1).startswith(f"query \u201c{HOSTILE}\u2192c\u201d")
    assert hover(tab, "a", 2, 2).startswith(f"{HOSTILE}: query 2 \u201c{HOSTILE}\u201d")
    titles = tab.eval_on_selector_all(".as-compare-title", "ts => ts.map(t => t.textContent)")
    assert titles[0].startswith(f"{HOSTILE}: ")
    assert titles[2] == f"<b>B</b> \u2212 {HOSTILE} (aligned tokens)"
    injected = tab.eval_on_selector(".attnscope-root", "r => r.querySelectorAll('img, b, svg, iframe').length")
    assert injected == 0
    assert tab.title() == title
