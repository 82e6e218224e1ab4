"""The views as a user meets them in Chromium: first paint, keyboard, screen readers, legends, long tokens, themes."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

import attnscope
from attnscope.tokens import Tokens
from attnscope.traces import Trace
from attnscope.views import page as view_page
from test_browser_views import data, hover_row, minilm_pair, show, tab
from test_views_payload import XSS, random_trace

pytestmark = pytest.mark.browser
__all__ = ["minilm_pair", "tab"]  # fixtures shared with test_browser_views

LONG = "x" * 200
TALL = ["[CLS]", "ship", "##wr", "##eck", "##s", LONG, "sank", "[SEP]"]


@pytest.fixture(scope="module")
def tall() -> Trace:
    """12 layers x 12 heads over a few tokens, one of them 200 characters long."""
    return random_trace(TALL, layers=12, heads=12)


def active(pg: Any) -> dict[str, Any]:
    """What has keyboard focus: tag, classes, role and data attributes."""
    result: dict[str, Any] = pg.evaluate(
        """() => { const a = document.activeElement;
        return {tag: a.tagName, cls: a.className, role: a.getAttribute('role'),
                data: Object.assign({}, a.dataset)}; }"""
    )
    return result


def extreme_label_pixel(pg: Any, selector: str, width: int, brightest: bool) -> int:
    """The brightest (or darkest) grey level among opaque pixels in the left `width` CSS pixels of a canvas."""
    result: int = pg.eval_on_selector(
        selector,
        """(c, [width, brightest]) => {
            const r = c.width / c.clientWidth, w = Math.round(width * r);
            const d = c.getContext('2d').getImageData(0, 0, w, c.height).data;
            let best = brightest ? 0 : 255;
            for (let o = 0; o < d.length; o += 4) {
                if (d[o + 3] < 250) continue;
                const v = Math.round((d[o] + d[o + 1] + d[o + 2]) / 3);
                best = brightest ? Math.max(best, v) : Math.min(best, v);
            }
            return best; }""",
        [width, brightest],
    )
    return result


@pytest.mark.parametrize("theme", ["dark", "light"])
def test_first_paint_draws_labels_in_the_themes_colour(tab: Any, minilm_pair: Trace, theme: str) -> None:
    # Read the pixels of the first paint (nothing has repainted: no hover, scroll or change yet).
    show(tab, view_page(minilm_pair, ["head", "heatmap"], theme=theme).to_html())
    fg = 0xE6 if theme == "dark" else 0x1A  # --as-fg; the old fallback grey #888 is 0x88
    head = extreme_label_pixel(tab, ".as-headview canvas", 20, theme == "dark")
    assert abs(head - fg) <= 12, (theme, hex(head))
    tab.click("button[data-tab=heatmap]")
    heat = extreme_label_pixel(tab, ".as-heatmapview canvas", 100, theme == "dark")
    assert abs(heat - fg) <= 12, (theme, hex(heat))


def test_model_view_opens_the_head_in_view_marks_it_and_esc_closes(tab: Any, tall: Trace) -> None:
    show(tab, view_page(tall, ["model"]).to_html())
    thumb = ".as-modelview canvas.as-thumb[data-layer='11'][data-head='5']"
    tab.click(thumb)
    assert data(tab, ".as-modelview")["open"] == "11,5"
    height = tab.viewport_size["height"]
    box = tab.query_selector(".as-modelview .as-detail").bounding_box()
    assert box["y"] >= 0, box  # the detail is on screen
    assert box["y"] + min(box["height"], 200) <= height, box
    button = tab.eval_on_selector(thumb, "c => c.closest('button')?.getAttribute('aria-expanded') ?? null")
    assert button == "true"
    tab.keyboard.press("Escape")
    assert data(tab, ".as-modelview")["open"] == ""
    assert tab.query_selector(".as-modelview .as-detail") is None
    assert active(tab)["data"] == {"layer": "11", "head": "5", "focusKey": "thumb-11-5"}


def test_model_grid_scrolls_inside_the_view_in_a_narrow_output(tab: Any, tall: Trace) -> None:
    tab.set_viewport_size({"width": 968, "height": 900})
    show(tab, view_page(tall, ["model"]).to_html())
    result = tab.eval_on_selector(
        ".attnscope-root",
        """root => {
            const grid = root.querySelector('.as-grid');
            let scroller = null;
            for (let n = grid.parentElement; n && n !== root.parentElement; n = n.parentElement) {
                const s = getComputedStyle(n).overflowX;
                if ((s === 'auto' || s === 'scroll') && n.scrollWidth > n.clientWidth) { scroller = n; break; }
            }
            const box = scroller ? scroller.getBoundingClientRect() : null;
            const right = root.getBoundingClientRect().right;
            return {wide: grid.scrollWidth > root.clientWidth, inside: !!box && box.right <= right};
        }""",
    )
    assert result == {"wide": True, "inside": True}


def test_head_selection_double_click_all_none_and_empty_caption(tab: Any, minilm_pair: Trace) -> None:
    show(tab, view_page(minilm_pair, ["head"]).to_html())
    every = ",".join(str(h) for h in range(12))
    tab.dblclick(".as-headview .as-head[data-head='4']")
    assert data(tab, ".as-headview")["heads"] == "4"
    tab.dblclick(".as-headview .as-head[data-head='4']")  # on the only head shown: all come back
    assert data(tab, ".as-headview")["heads"] == every
    tab.click(".as-headview .as-heads button:text-is('None')")
    assert data(tab, ".as-headview")["heads"] == ""
    hover_row(tab, "q", 3)
    caption = tab.text_content(".as-headview .as-caption")
    assert caption.startswith("No heads selected")
    assert "0.00" not in caption
    tab.click(".as-headview .as-heads button:text-is('All')")
    assert data(tab, ".as-headview")["heads"] == every
    assert tab.eval_on_selector_all("[aria-pressed]", "ns => [...new Set(ns.map(n => n.tagName))]") == ["BUTTON"]


def test_tab_and_arrow_keys_reach_heads_tokens_thumbnails(tab: Any, minilm_pair: Trace) -> None:
    show(tab, view_page(minilm_pair, ["head", "model", "neuron"]).to_html())
    seen = []
    for _ in range(40):
        tab.keyboard.press("Tab")
        now = active(tab)
        seen.append(now)
        if now["tag"] == "CANVAS":
            break
    assert any(s["cls"] == "as-head" and s["data"].get("head") == "0" for s in seen)
    assert seen[-1]["tag"] == "CANVAS"
    assert "as-sticky" in seen[-1]["cls"]
    tab.keyboard.press("ArrowDown")
    tab.keyboard.press("ArrowDown")
    assert data(tab, ".as-headview")["cursor"] == "q2"
    tab.keyboard.press("Enter")  # selects, as hovering does
    state = data(tab, ".as-headview")
    assert (state["hover"], state["pinned"]) == ("q2", "q2")
    assert tab.text_content(".as-headview .as-caption").startswith("\u201ccat\u201d (query 2) attends most to")
    tab.keyboard.press("ArrowRight")
    assert data(tab, ".as-headview")["cursor"] == "k2"
    tab.keyboard.press("Escape")
    assert data(tab, ".as-headview")["hover"] == ""
    assert active(tab)["tag"] == "CANVAS"
    # model view: thumbnails are buttons; Enter opens one
    tab.click("[role=tab][data-tab=model]")
    tab.focus(".as-modelview button.as-thumbbtn[data-layer='1'][data-head='2']")
    tab.keyboard.press("Enter")
    assert data(tab, ".as-modelview")["open"] == "1,2"
    # neuron view: one Tab stop on the chosen query; arrows move, Enter chooses, focus stays
    tab.click("[role=tab][data-tab=neuron]")
    assert tab.eval_on_selector_all(".as-qlist [role=option]", "os => os.filter(o => o.tabIndex === 0).length") == 1
    tab.focus(".as-qlist [role=option][tabindex='0']")
    tab.keyboard.press("ArrowRight")
    tab.keyboard.press("ArrowRight")
    assert active(tab)["data"]["index"] == "2"
    tab.keyboard.press("Enter")
    assert data(tab, ".as-neuronview")["query"] == "2"
    assert active(tab)["data"]["index"] == "2"
    assert active(tab)["role"] == "option"


def test_focus_is_kept_across_redraws(tab: Any, minilm_pair: Trace) -> None:
    show(tab, view_page(minilm_pair, ["head", "model"]).to_html())
    tab.focus(".as-headview .as-head[data-head='3']")
    tab.keyboard.press("Space")
    assert data(tab, ".as-headview")["heads"].split(",").count("3") == 0
    tab.select_option(".as-page-bar select.as-base", "1")  # relabels (rebuilds) the head squares
    tab.focus(".as-headview .as-head[data-head='3']")
    tab.eval_on_selector(".as-page-bar select.as-base", "s => { s.value = '0'; s.dispatchEvent(new Event('change')); }")
    assert active(tab)["data"] == {"head": "3", "focusKey": "head-3"}
    tab.click("[role=tab][data-tab=model]")
    tab.focus(".as-modelview .as-layer-toggles button[data-index='2']")
    tab.keyboard.press("Enter")  # hides layer 2: the grid and toggles are rebuilt
    assert data(tab, ".as-modelview")["layers"] == "0,1,3,4,5"
    assert active(tab)["data"]["index"] == "2"
    assert active(tab)["tag"] == "BUTTON"


def test_tabs_have_tab_roles_and_arrow_keys(tab: Any, minilm_pair: Trace) -> None:
    show(tab, view_page(minilm_pair).to_html())
    tabs = tab.eval_on_selector_all(
        "[role=tablist] [role=tab]",
        """ts => ts.map(t => ({tab: t.dataset.tab, selected: t.getAttribute('aria-selected'), index: t.tabIndex,
            panel: document.getElementById(t.getAttribute('aria-controls'))?.getAttribute('role') ?? null}))""",
    )
    assert [t["tab"] for t in tabs] == ["head", "model", "neuron", "heatmap", "contribution"]
    assert tabs[0] == {"tab": "head", "selected": "true", "index": 0, "panel": "tabpanel"}
    assert [t["index"] for t in tabs[1:]] == [-1, -1, -1, -1]
    labelled = tab.eval_on_selector(
        "[role=tabpanel]", "p => document.getElementById(p.getAttribute('aria-labelledby')).dataset.tab"
    )
    assert labelled == "head"
    tab.focus("[role=tab][aria-selected=true]")
    tab.keyboard.press("ArrowRight")
    assert active(tab)["data"]["tab"] == "model"
    assert tab.get_attribute("[role=tab][data-tab=model]", "aria-selected") == "true"
    assert tab.is_visible(".as-modelview")
    tab.keyboard.press("End")
    assert active(tab)["data"]["tab"] == "contribution"
    assert tab.is_visible(".as-contributionview")
    tab.keyboard.press("ArrowRight")  # wraps around
    assert active(tab)["data"]["tab"] == "head"


def test_each_canvas_has_a_text_alternative_kept_up_to_date(tab: Any, minilm_pair: Trace) -> None:
    show(tab, view_page(minilm_pair, ["head", "heatmap"], precision="float32").to_html())

    def described(selector: str) -> list[list[str]]:
        rows: list[list[str]] = tab.eval_on_selector(
            selector,
            """c => [...document.getElementById(c.getAttribute('aria-describedby')).querySelectorAll('tr')]
                .map(r => [...r.cells].map(x => x.textContent))""",
        )
        return rows

    rows = described(".as-headview canvas")
    assert rows[0] == ["query", "strongest key", "weight"]
    assert len(rows) == 1 + len(minilm_pair.tokens)
    mean = minilm_pair.attention["encoder"][0, :, 1].mean(axis=0)  # query 1 over all heads of layer 0
    assert rows[2][1:] == [f"{mean.argmax()} {minilm_pair.tokens.labels[mean.argmax()]}", f"{mean.max():.2f}"]
    hover_row(tab, "q", 3)
    rows = described(".as-headview canvas")
    caption = tab.text_content(".as-headview .as-caption")
    assert rows[0] == ["key", "weight"]
    assert len(rows) == 11
    assert (
        f"\u201c{rows[1][0].split(' ', 1)[1]}\u201d {rows[1][1]}" in caption
    )  # the table's first is the caption's first
    tab.click("[role=tab][data-tab=heatmap]")
    rows = described(".as-heatmapview canvas")
    att = minilm_pair.attention["encoder"][0, 0]
    best = int(np.argmax(att[1]))
    assert rows[2][1].startswith(f"{best} ")
    assert rows[2][1].endswith(f"{att[1, best]:.2f}")


def test_legends_and_axis_titles(tab: Any, minilm_pair: Trace) -> None:
    show(tab, view_page(minilm_pair, ["heatmap", "neuron"]).to_html())
    heat = tab.eval_on_selector_all(
        ".as-heatmapview .as-legend, .as-heatmapview .as-axis", "ns => ns.map(n => n.textContent)"
    )
    top = minilm_pair.attention["encoder"][0, 0].max()
    assert heat[0].startswith("Attention weight0")
    assert heat[0].endswith(f"{top:.2f}")
    assert any(t.startswith("Key tokens") for t in heat)
    assert any(t.startswith("Query tokens") for t in heat)
    tab.click("[role=tab][data-tab=neuron]")
    legends = tab.eval_on_selector_all(".as-neuronview .as-legend", "ns => ns.map(n => n.textContent)")
    assert [t.split("values")[0] for t in legends] == ["q and k ", "q \u00d7 k "]
    heads = tab.eval_on_selector_all(".as-neuronview .as-hdr", "ns => ns.map(n => n.textContent)")
    assert heads[0] == "key token \u2193"
    assert "dimension \u2192" in heads[1]


def test_word_pieces_keep_their_continuation_marker(tab: Any, minilm: Any) -> None:
    trace = attnscope.trace(minilm, "The shipwrecks were old.", qk=True)
    assert trace.tokens.display[2:6] == ("ship", "wr", "eck", "s")  # the text each piece covers
    show(tab, view_page(trace, ["neuron", "heatmap"]).to_html())
    tokens = tab.eval_on_selector_all(".as-qlist [role=option]", "ns => ns.map(n => n.textContent)")
    assert tokens[2:6] == ["ship", "##wr", "##eck", "##s"]
    tab.click("[role=tab][data-tab=heatmap]")
    box = tab.query_selector(".as-heatmapview canvas").bounding_box()
    cell = (box["width"] - 110 - 4) / len(tokens)
    tab.mouse.move(box["x"] + 110 + cell * 4.5, box["y"] + 80 + cell * 3.5)
    assert "\u201c##wr\u201d \u2192 key 4 \u201c##eck\u201d" in tab.text_content(".as-heatmapview .as-caption")


def test_tokens_labels_mark_continuations_like_bertviz() -> None:
    wordpiece = Tokens.from_strings(["[CLS]", "ship", "##wr", "##eck", "##s", "[SEP]", "##x"], sentence_b_start=6)
    assert wordpiece.labels == ("[CLS]", "ship", "##wr", "##eck", "##s", "[SEP]", "x")  # a new segment starts a word
    bpe = Tokens.from_strings(["\u0120ship", "w", "reck", "\u0120sank"])
    assert (bpe.display, bpe.labels) == (("ship", "w", "reck", "sank"), ("ship", "##w", "##reck", "sank"))


HOOK = """<script>window.__texts = [];
const fill = CanvasRenderingContext2D.prototype.fillText;
CanvasRenderingContext2D.prototype.fillText = function (text, x, y, maxWidth) {
  window.__texts.push([String(text), maxWidth ?? null, this.measureText(text).width]);
  return maxWidth === undefined ? fill.call(this, text, x, y) : fill.call(this, text, x, y, maxWidth);
};</script>"""


def test_a_long_token_is_cut_with_an_ellipsis_and_shown_whole_on_hover(tab: Any, tall: Trace) -> None:
    show(tab, view_page(tall, ["head", "neuron"]).to_html().replace("<head>", "<head>" + HOOK, 1))
    texts = tab.evaluate("window.__texts")
    squeezed = [t for t in texts if t[1] is not None and t[2] > t[1] + 0.5]
    assert squeezed == []  # no label is squeezed into a narrower box (it smeared)
    cut = [t[0] for t in texts if t[0].startswith("xxx")]
    assert cut
    assert all(t.endswith("\u2026") and len(t) < 60 for t in cut)
    hover_row(tab, "q", 5)
    assert tab.get_attribute(".as-headview canvas", "title") == LONG
    assert data(tab, ".as-headview")["hover"] == "q5"
    tab.click("[role=tab][data-tab=neuron]")
    option = ".as-qlist [role=option][data-index='5']"
    width = tab.eval_on_selector(option, "o => [o.clientWidth, o.scrollWidth]")
    assert width[0] < width[1] < 10_000
    assert width[0] < 300
    assert tab.get_attribute(option, "title").endswith(LONG)


def test_neuron_table_headers_stay_in_view_on_long_inputs(tab: Any) -> None:
    trace = random_trace(["[CLS]"] + [f"w{i}" for i in range(150)] + ["[SEP]"], layers=1, heads=1)
    show(tab, view_page(trace, ["neuron"]).to_html())
    tab.eval_on_selector(".as-neuronview [data-col=softmax][data-key='150']", "n => n.scrollIntoView()")
    head = tab.query_selector(".as-neuronview .as-ncol .as-hdr").bounding_box()
    last = tab.query_selector(".as-neuronview [data-col=softmax][data-key='150']").bounding_box()
    assert 0 <= head["y"] < last["y"] <= tab.viewport_size["height"]
    on_top = tab.eval_on_selector(
        ".as-neuronview .as-ncol .as-hdr",
        "h => { const b = h.getBoundingClientRect(); "
        "return document.elementFromPoint(b.x + 2, b.y + b.height / 2) === h; }",
    )
    assert on_top


def test_one_based_numbering_numbers_tokens_too(tab: Any, minilm_pair: Trace) -> None:
    show(tab, view_page(minilm_pair, ["head", "heatmap", "neuron"]).to_html())
    tab.select_option(".as-page-bar select.as-base", "1")
    hover_row(tab, "q", 3)
    assert tab.text_content(".as-headview .as-caption").startswith("\u201cis\u201d (query 4) attends most to")
    tab.click("[role=tab][data-tab=heatmap]")
    box = tab.query_selector(".as-heatmapview canvas").bounding_box()
    cell = (box["width"] - 110 - 4) / 18
    tab.mouse.move(box["x"] + 110 + cell * 2.5, box["y"] + 80 + cell * 1.5)
    assert tab.text_content(".as-heatmapview .as-caption").startswith(
        "query 2 \u201cthe\u201d \u2192 key 3 \u201ccat\u201d"
    )
    tab.click("[role=tab][data-tab=neuron]")
    canvas = tab.query_selector(".as-neuronview .as-nvec canvas").bounding_box()
    tab.mouse.move(canvas["x"] + 1, canvas["y"] + 16 * 1.5)
    assert ", dimension 1:" in tab.text_content(".as-neuronview .as-caption")
    assert tab.get_attribute(".as-qlist [role=option][data-index='0']", "title").startswith("query 1:")


def test_theme_switch_restyles_the_page_body(tab: Any, minilm_pair: Trace) -> None:
    show(tab, view_page(minilm_pair, ["head"]).to_html())

    def body() -> str:
        result: str = tab.evaluate("getComputedStyle(document.body).backgroundColor")
        return result

    assert body() == "rgb(30, 30, 30)"
    tab.select_option(".as-page-bar select.as-theme", "light")
    assert body() == "rgb(255, 255, 255)"
    tab.select_option(".as-page-bar select.as-theme", "dark")
    assert body() == "rgb(30, 30, 30)"


def test_hostile_tokens_stay_inert_in_titles_tables_and_legends(tab: Any) -> None:
    trace = random_trace(XSS)
    show(tab, view_page(trace).to_html())
    title = tab.title()
    hover_row(tab, "q", 2)
    assert tab.get_attribute(".as-headview canvas", "title") == XSS[2]
    table = tab.eval_on_selector(".as-headview table.as-sr", "t => t.textContent")
    assert "\u201c<img src=x onerror=alert(1)>\u201d (query 2)" in table
    tab.click("[role=tab][data-tab=model]")
    tab.click(".as-modelview button.as-thumbbtn[data-layer='0'][data-head='0']")
    assert tab.get_attribute(".as-modelview .as-detail", "aria-label") == "Layer 0, head 0"
    for name in ("heatmap", "neuron"):
        tab.click(f"[role=tab][data-tab={name}]")
    titles = tab.eval_on_selector_all(".as-qlist [role=option]", "os => os.map(o => o.title)")
    assert titles[1] == "query 1: </script>"
    injected = tab.eval_on_selector(
        ".attnscope-root", "r => r.querySelectorAll('img, svg, iframe, object, embed').length"
    )
    assert injected == 0
    assert tab.title() == title
