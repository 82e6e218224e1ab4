"""The views in real Chromium (Debian's package, driven by Playwright): render offline, interact, stay safe."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

import attnscope
from attnscope.traces import Trace
from attnscope.views import page as view_page
from attnscope.views.options import ViewOptions
from attnscope.views.payload import PAYLOAD_VERSION, build_payload, decode_attention
from conftest import watched_page
from test_views_payload import PAIR, XSS, random_trace

ROW = 18  # the head view's row height (frontend/src/head.ts)

pytestmark = pytest.mark.browser


@pytest.fixture
def tab(browser: Any) -> Iterator[Any]:
    """A fresh page that fails the test on any network request, console error, page error or dialog."""
    with watched_page(browser) as (pg, problems):
        yield pg
    assert problems == []


def show(pg: Any, html: str) -> float:
    """Load a page and wait until it has rendered; returns seconds taken."""
    t0 = time.perf_counter()
    pg.set_content(html)
    pg.wait_for_selector(".attnscope-root[data-attnscope-state=ready]", timeout=30_000)
    return time.perf_counter() - t0


def data(pg: Any, selector: str) -> dict[str, str]:
    result: dict[str, str] = pg.eval_on_selector(selector, "e => Object.assign({}, e.dataset)")
    return result


def heatmap_cells(pg: Any, n: int) -> np.ndarray:
    """Every cell of the heatmap view, read back from its hover text (4 decimals)."""
    box = pg.query_selector(".as-heatmapview canvas").bounding_box()
    cell = (box["width"] - 110 - 4) / n  # frontend/src/heatmap.ts: labels take 110 px left, 80 px on top
    out = np.zeros((n, n))
    for q in range(n):
        for k in range(n):
            pg.mouse.move(box["x"] + 110 + cell * (k + 0.5), box["y"] + 80 + cell * (q + 0.5))
            assert data(pg, ".as-heatmapview")["hover"] == f"{q},{k}"
            out[q, k] = float(pg.text_content(".as-heatmapview .as-caption").rsplit(": ", 1)[1])
    return out


def pixels(pg: Any, selector: str) -> str:
    result: str = pg.eval_on_selector(selector, "c => c.toDataURL()")
    return result


def hover_row(pg: Any, side: str, row: int) -> None:
    box = pg.query_selector(".as-headview canvas").bounding_box()
    x = box["x"] + 10 if side == "q" else box["x"] + box["width"] - 10
    pg.mouse.move(x, box["y"] + 4 + ROW * row + ROW / 2)


@pytest.fixture(scope="module")
def minilm_pair(minilm: Any) -> Trace:
    return attnscope.trace(minilm, *PAIR, qk=True)


@pytest.fixture(scope="module")
def traces(minilm_pair: Trace, tiny: Any) -> dict[str, Trace]:
    return {
        "minilm": minilm_pair,
        "gpt2": attnscope.trace(tiny("gpt2"), "The cat is very sad because it could not find food.", qk=True),
        "bart": attnscope.trace(tiny("bart"), "The cat is very sad.", target="Le chat est triste.", qk=True),
    }


@pytest.mark.parametrize("which", ["minilm", "gpt2", "bart"])
def test_every_view_renders_offline(tab: Any, traces: dict[str, Trace], which: str) -> None:
    trace = traces[which]
    show(tab, view_page(trace).to_html())
    stack = trace.main_stack
    n_layers, n_heads, n_query, n_key = trace.attention[stack].shape
    head = data(tab, ".as-headview")
    assert (head["stack"], head["layer"], int(head["lines"]) > 0) == (stack, "0", True)
    tab.click("button[data-tab=model]")
    assert data(tab, ".as-modelview")["thumbs"] == str(n_layers * n_heads)
    tab.click("button[data-tab=neuron]")
    assert data(tab, ".as-neuronview")["rows"] == str(n_key)
    tab.click("button[data-tab=heatmap]")
    assert data(tab, ".as-heatmapview")["cells"] == f"{n_query}x{n_key}"
    if which == "bart":  # encoder, decoder and cross attention in the head view
        tab.click("button[data-tab=head]")
        options = tab.eval_on_selector(".as-headview select.as-stack", "s => [...s.options].map(o => o.value)")
        assert options == ["encoder", "decoder", "cross"]
        tab.select_option(".as-headview select.as-stack", "cross")
        assert data(tab, ".as-headview")["stack"] == "cross"
        assert "decoder tokens (queries, left)" in tab.text_content(".as-headview .as-note")


def test_head_view_hover_heads_layers_and_filter(tab: Any, minilm_pair: Trace) -> None:
    show(tab, view_page(minilm_pair, ["head"]).to_html())
    canvas = ".as-headview canvas"
    before, lines = pixels(tab, canvas), int(data(tab, ".as-headview")["lines"])
    hover_row(tab, "q", 3)
    state = data(tab, ".as-headview")
    assert state["hover"] == "q3"
    assert 0 < int(state["lines"]) < lines
    assert pixels(tab, canvas) != before
    assert tab.text_content(".as-headview .as-caption").startswith("\u201cis\u201d (query 3) attends most to")
    hover_row(tab, "k", 5)
    assert data(tab, ".as-headview")["hover"] == "k5"
    tab.mouse.move(0, 0)
    assert data(tab, ".as-headview")["hover"] == ""
    # colour blocks: click toggles a head, double-click keeps only it
    tab.click(".as-headview .as-head[data-head='0']")
    state = data(tab, ".as-headview")
    assert state["heads"] == ",".join(str(h) for h in range(1, 12))
    assert int(state["lines"]) < lines
    assert tab.get_attribute(".as-head[data-head='0']", "aria-pressed") == "false"
    tab.dblclick(".as-headview .as-head[data-head='4']")
    assert data(tab, ".as-headview")["heads"] == "4"
    one_head = pixels(tab, canvas)
    tab.select_option(".as-headview select.as-layer", "2")
    assert data(tab, ".as-headview")["layer"] == "2"
    assert pixels(tab, canvas) != one_head
    # sentence filter: A->B draws exactly the lines from sentence A to sentence B (weight >= 1%)
    tab.select_option(".as-headview select.as-filter", "AB")
    quantised = decode_attention(build_payload(minilm_pair, ("head",), ViewOptions())["stacks"][0]["attention"])
    seg = minilm_pair.tokens.segment
    expected = int((quantised[2, 4][np.ix_(seg == 0, seg == 1)] >= 0.01).sum())
    assert data(tab, ".as-headview")["lines"] == str(expected)
    tab.select_option(".as-headview select.as-filter", "BB")
    expected_bb = int((quantised[2, 4][np.ix_(seg == 1, seg == 1)] >= 0.01).sum())
    assert data(tab, ".as-headview")["lines"] == str(expected_bb)


def neuron_numbers(tab: Any, column: str) -> np.ndarray:
    values = tab.eval_on_selector_all(f".as-neuronview [data-col={column}]", "ns => ns.map(n => +n.dataset.value)")
    return np.array(values)


def test_neuron_view_shows_the_traces_numbers(tab: Any, minilm_pair: Trace) -> None:
    show(tab, view_page(minilm_pair, ["neuron", "heatmap"]).to_html())  # beside other views: every head
    qk = minilm_pair.qk["encoder"]
    att = minilm_pair.attention["encoder"]

    def check(layer: int, head: int, query: int) -> None:
        state = data(tab, ".as-neuronview")
        assert (state["layer"], state["head"], state["query"]) == (str(layer), str(head), str(query))
        dots = qk.queries[layer, head, query].astype(np.float64) @ qk.keys[layer, head].T.astype(np.float64)
        np.testing.assert_allclose(neuron_numbers(tab, "dot"), dots, rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(neuron_numbers(tab, "score"), qk.scores(layer, head)[query], rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(neuron_numbers(tab, "softmax"), att[layer, head, query], atol=1e-6)

    check(0, 0, 0)
    tab.click(".as-neuronview .as-qlist span[data-index='5']")
    check(0, 0, 5)
    tab.select_option(".as-neuronview select.as-layer", "2")
    tab.select_option(".as-neuronview select.as-head-select", "3")
    check(2, 3, 5)
    assert "\u00d7 0.1768" in tab.text_content(".as-neuronview")  # the scale 1/sqrt(32), shown


def test_neuron_only_page_narrowed_to_one_head_shows_the_traces_numbers(tab: Any, minilm_pair: Trace) -> None:
    view = view_page(minilm_pair, ["neuron"], layer=4, heads=[7], query_index=3)  # carries only what it shows
    (stack,) = view.payload()["stacks"]
    assert (stack.get("layers"), stack.get("heads"), stack["attention"]["shape"][:2]) == ([4], [7], [1, 1])
    show(tab, view.to_html())
    qk, att = minilm_pair.qk["encoder"], minilm_pair.attention["encoder"]
    state = data(tab, ".as-neuronview")
    assert (state["layer"], state["head"], state["query"]) == ("4", "7", "3")
    assert tab.eval_on_selector_all(".as-neuronview select.as-layer option", "os => os.map(o => o.text)") == ["4"]
    np.testing.assert_allclose(neuron_numbers(tab, "score"), qk.scores(4, 7)[3], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(neuron_numbers(tab, "softmax"), att[4, 7, 3], atol=1e-6)
    tab.click(".as-neuronview .as-qlist span[data-index='6']")
    np.testing.assert_allclose(neuron_numbers(tab, "softmax"), att[4, 7, 6], atol=1e-6)


def test_xss_tokens_execute_nothing_and_show_as_text(tab: Any) -> None:
    trace = random_trace(XSS)
    show(tab, view_page(trace).to_html())
    title = tab.title()
    hover_row(tab, "q", 1)
    assert "\u201c</script>\u201d (query 1)" in tab.text_content(".as-headview .as-caption")
    for name in ("model", "heatmap", "neuron"):
        tab.click(f"button[data-tab={name}]")
    tokens = tab.eval_on_selector_all(".as-neuronview .as-qlist span", "ns => ns.map(n => n.textContent)")
    assert tokens[1:5] == XSS[1:5]
    assert tokens[5] == "\u27e8U+202E\u27e9evil"
    assert tokens[6] == "a\u27e8U+200B\u27e9b"
    assert tab.is_visible(".as-neuronview .as-qlist span[data-index='2']")
    injected = tab.eval_on_selector(
        ".attnscope-root", "r => r.querySelectorAll('img, svg, iframe, object, embed').length"
    )
    assert injected == 0
    assert tab.title() == title


def test_index_base_switch_relabels_layers_and_heads(tab: Any, minilm_pair: Trace) -> None:
    show(tab, view_page(minilm_pair, ["head", "model", "neuron"]).to_html())

    def labels(selector: str) -> list[str]:
        result: list[str] = tab.eval_on_selector_all(selector, "ns => ns.map(n => n.textContent)")
        return result

    assert labels(".as-headview select.as-layer option") == [str(i) for i in range(6)]
    assert labels(".as-headview .as-head")[:2] == ["0", "1"]
    tab.select_option(".as-page-bar select.as-base", "1")
    assert labels(".as-headview select.as-layer option") == [str(i) for i in range(1, 7)]
    assert labels(".as-headview .as-head") == [str(i) for i in range(1, 13)]
    tab.click("button[data-tab=model]")
    assert labels(".as-modelview .as-glabel")[1] == "Head 1"
    assert "Layer 6" in labels(".as-modelview .as-glabel")
    tab.click("button[data-tab=neuron]")
    assert labels(".as-neuronview select.as-head-select option")[0] == "1"
    assert data(tab, ".as-neuronview")["head"] == "0"  # the data index stays 0-based


def test_model_view_open_include_theme_and_delimiters(tab: Any, minilm_pair: Trace) -> None:
    show(tab, view_page(minilm_pair, ["model", "head"], theme="light").to_html())
    assert "as-light" in tab.get_attribute(".attnscope-root", "class")
    tab.click(".as-modelview canvas.as-thumb[data-layer='2'][data-head='3']")
    assert data(tab, ".as-modelview")["open"] == "2,3"
    detail = ".as-modelview .as-detail .as-headview"
    assert (data(tab, detail)["layer"], data(tab, detail)["heads"]) == ("2", "3")
    box = tab.query_selector(f"{detail} canvas").bounding_box()
    tab.mouse.move(box["x"] + 10, box["y"] + 4 + ROW * 2 + ROW / 2)
    assert data(tab, detail)["hover"] == "q2"
    tab.click(".as-modelview .as-layer-toggles button[data-index='0']")
    state = data(tab, ".as-modelview")
    assert (state["thumbs"], state["layers"]) == (str(5 * 12), "1,2,3,4,5")
    tab.select_option(".as-page-bar select.as-theme", "dark")
    assert "as-dark" in tab.get_attribute(".attnscope-root", "class")
    tab.click("button[data-tab=head]")
    lines = data(tab, ".as-headview")["lines"]
    tab.check(".as-page-bar input.as-hide")
    assert "renormalised to sum to 1" in tab.text_content(".as-headview .as-note")
    assert data(tab, ".as-headview")["lines"] != lines


def test_long_decoder_input_stays_fast(tab: Any, wordpiece: Any) -> None:
    from transformers import AutoTokenizer

    import tiny_models
    from attnscope.loading import ModelHandle, default_model_path

    tokenizer = AutoTokenizer.from_pretrained(default_model_path(), model_max_length=4096)
    handle = ModelHandle.from_model(tiny_models.build("gpt2", n_positions=2048), tokenizer, "tiny-gpt2-2048")
    words = ("the cat sat on the mat because it could not find food to eat " * 200).split()
    trace = attnscope.trace(handle, " ".join(words[:1998]))
    n = len(trace.tokens)
    assert n == 2000
    seconds = show(tab, view_page(trace, ["head", "model"]).to_html())
    assert seconds < 30  # generous: the benchmark measures speed; this guards against a hang
    state = data(tab, ".as-headview")
    assert 0 < int(state["lines"]) < 4 * 60 * 100  # only the rows in view are drawn
    tab.eval_on_selector(".as-headview .as-scroll", "e => { e.scrollTop = e.scrollHeight }")
    tab.wait_for_timeout(100)
    box = tab.query_selector(".as-headview canvas").bounding_box()
    tab.mouse.move(box["x"] + 10, box["y"] + box["height"] - 8)
    assert data(tab, ".as-headview")["hover"] == f"q{n - 1}"
    tab.click("button[data-tab=model]")
    assert data(tab, ".as-modelview")["thumbs"] == "8"


def test_heatmap_hover_reads_a_cell(tab: Any, minilm_pair: Trace) -> None:
    show(tab, view_page(minilm_pair, ["heatmap"], layer=1, heads=[2], precision="float32").to_html())
    assert (data(tab, ".as-heatmapview")["layer"], data(tab, ".as-heatmapview")["head"]) == ("1", "2")
    box = tab.query_selector(".as-heatmapview canvas").bounding_box()
    cell = (box["width"] - 110 - 4) / 18
    tab.mouse.move(box["x"] + 110 + cell * 2.5, box["y"] + 80 + cell * 1.5)
    assert data(tab, ".as-heatmapview")["hover"] == "1,2"
    weight = minilm_pair.attention["encoder"][1, 2, 1, 2]
    assert tab.text_content(".as-heatmapview .as-caption") == (
        f"query 1 \u201cthe\u201d \u2192 key 2 \u201ccat\u201d: {weight:.4f}"
    )


def test_several_views_share_a_document_without_globals(tab: Any, minilm_pair: Trace) -> None:
    from attnscope.views import head_view, model_view

    tab.set_content("<html><body></body></html>")
    baseline = set(tab.evaluate("Object.keys(window)"))
    fragments = head_view(minilm_pair).fragment() + model_view(minilm_pair, display_mode="light").fragment()
    tab.set_content(f"<html><body>{fragments}</body></html>")
    tab.wait_for_function("document.querySelectorAll('.attnscope-root[data-attnscope-state=ready]').length === 2")
    assert int(data(tab, ".as-headview")["lines"]) > 0
    assert data(tab, ".as-modelview")["thumbs"] == "72"
    assert set(tab.evaluate("Object.keys(window)")) == baseline | {"attnscope"}  # the one documented global
    assert tab.evaluate("Object.keys(window.attnscope).sort()") == ["key", "render", "renderPending", "version"]


def test_wrong_contract_version_is_a_visible_error(browser: Any, minilm_pair: Trace) -> None:
    html = view_page(minilm_pair, ["heatmap"]).to_html()
    html = html.replace(f'{{"version":{PAYLOAD_VERSION},', '{"version":99,', 1)
    pg = browser.new_page()
    try:
        pg.set_content(html)
        pg.wait_for_selector(".attnscope-root[data-attnscope-state=error]")
        message = pg.text_content(".attnscope-root .as-error")
        assert f"data version 99; this bundle reads version {PAYLOAD_VERSION}" in message
    finally:
        pg.close()


def test_neuron_only_page_refuses_other_views(browser: Any, minilm_pair: Trace) -> None:
    html = view_page(minilm_pair, ["neuron"]).to_html()
    start = f'{{"version":{PAYLOAD_VERSION},"views":'
    assert start + '["neuron"]' in html
    html = html.replace(start + '["neuron"]', start + '["head"]', 1)
    pg = browser.new_page()
    try:
        pg.set_content(html)
        pg.wait_for_selector(".attnscope-root[data-attnscope-state=error]")
        assert "attention for the neuron view only" in pg.text_content(".attnscope-root .as-error")
    finally:
        pg.close()


def test_neuron_view_position_bias_and_causal_mask(tab: Any, tiny: Any) -> None:
    t5 = attnscope.trace(tiny("t5"), "The cat is very sad.", target="Le chat est triste.", qk=True)
    show(tab, view_page(t5, ["neuron"], stack="decoder", layer=1, heads=[2], query_index=3).to_html())
    qk = t5.qk["decoder"]
    assert (data(tab, ".as-neuronview")["stack"], data(tab, ".as-neuronview")["query"]) == ("decoder", "3")
    np.testing.assert_allclose(neuron_numbers(tab, "bias"), qk.bias[1, 2, 3], rtol=1e-6)  # type: ignore[index]
    allowed = qk.mask[1, 3] > -1e29  # the decoder's causal mask: keys after the query are masked
    assert not allowed.all()
    np.testing.assert_allclose(neuron_numbers(tab, "score")[allowed], qk.scores(1, 2)[3][allowed], rtol=1e-5)
    np.testing.assert_allclose(neuron_numbers(tab, "softmax"), t5.attention["decoder"][1, 2, 3], atol=1e-6)
    assert tab.text_content(".as-neuronview [data-col=softmax][data-key='7']") == "masked"
