"""Contribution measures on the page (Chromium): the selector switches measure, drawn numbers equal the trace's."""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import pytest

import attnscope
import attnscope.contrib
from attnscope.views import page as view_page
from attnscope.views.measures import ROW_MAX
from test_browser_views import data, heatmap_cells, show, tab  # noqa: F401 - the tab fixture
from test_views_payload import XSS, random_trace

pytestmark = pytest.mark.browser
SHOTS = os.environ.get("ATTNSCOPE_SHOTS")  # a folder: screenshots of each state are written there


def _shot(pg: Any, name: str) -> None:
    if SHOTS:
        pg.screenshot(path=os.path.join(SHOTS, f"{name}.png"), full_page=True)


def test_selector_switches_measure_and_numbers_match(tab: Any, tiny: Any) -> None:  # noqa: F811
    trace = attnscope.trace(tiny("bert"), "the cat sat on it", values=True)
    attnscope.contrib.rollout(trace)  # kept on the trace, so the page carries it beside the chosen norms
    n = len(trace.tokens)
    show(tab, view_page(trace, ["heatmap", "head"], layer=1, heads=[2], measure="norms").to_html())
    assert data(tab, ".attnscope-root")["measure"] == "norms"
    # norms are not in [0, 1]: each row is divided by its maximum, and the page says so.
    norms = trace.contributions["norms.encoder"].array[1, 2].astype(np.float64)
    expected = norms / norms.max(axis=-1, keepdims=True)
    assert float(norms.max()) < 0.5  # far from [0, 1]-filling: shown raw they would be invisible
    np.testing.assert_allclose(heatmap_cells(tab, n), expected, atol=0.5 / 255 + 5e-5)
    assert ROW_MAX in tab.text_content(".as-page-bar .as-title")
    assert "norms" in tab.text_content(".as-heatmapview .as-legends")
    _shot(tab, "page_norms_heatmap")
    # Switch to rollout: one "all heads" pseudo-head, values as computed (rows sum to 1).
    tab.select_option(".as-measure", "rollout")
    assert data(tab, ".attnscope-root")["measure"] == "rollout"
    assert tab.eval_on_selector_all(".as-heatmapview .as-head-select option", "os => os.map(o => o.textContent)") == [
        "all heads"
    ]
    tab.select_option(".as-heatmapview .as-layer", "1")
    rollout = trace.contributions["rollout.encoder"].array[1]
    np.testing.assert_allclose(heatmap_cells(tab, n), rollout, atol=0.5 / 255 + 5e-5)
    assert "rollout" in tab.text_content(".as-page-bar .as-title")
    _shot(tab, "page_rollout_heatmap")
    tab.click("button[data-tab=head]")
    assert tab.eval_on_selector_all(".as-headview .as-head", "bs => bs.map(b => b.ariaLabel)") == ["all heads"]
    _shot(tab, "page_rollout_head")
    # And back to raw attention: every head again.
    tab.select_option(".as-measure", "attention")
    assert len(tab.query_selector_all(".as-headview .as-head")) == trace.model.num_heads
    assert tab.text_content(".as-page-bar .as-title") == trace.model.name


def test_measure_page_keeps_hostile_tokens_inert(tab: Any) -> None:  # noqa: F811
    trace = random_trace(XSS, layers=2, heads=3)
    show(tab, view_page(trace, ["heatmap"], measure="rollout").to_html())
    assert tab.query_selector("img") is None  # no token became markup (a dialog would fail the fixture)
    labels = tab.eval_on_selector_all(
        ".as-heatmapview table td, .as-heatmapview table th", "ns => ns.map(n => n.textContent)"
    )
    assert any("<img src=x onerror=alert(1)>" in label for label in labels)


def test_one_layer_measure_names_its_real_layer(tab: Any, tiny: Any) -> None:  # noqa: F811
    """Flow is computed at one layer: every view's layer control and caption name that layer, not row 0."""
    trace = attnscope.trace(tiny("bert"), "the cat sat on it")
    attnscope.contrib.flow(trace, layer=0)
    attnscope.contrib.rollout(trace)
    layer = trace.model.num_layers - 1
    attnscope.contrib.flow(trace)  # the default: the last layer (kept, replacing layer 0's)
    show(tab, view_page(trace, ["heatmap", "head", "model"], measure="flow", index_base=1).to_html())
    options = ".as-heatmapview .as-layer option"
    assert tab.eval_on_selector_all(options, "os => os.map(o => o.textContent)") == [str(layer + 1)]
    assert f"layer {layer + 1}," in tab.text_content(".as-heatmapview .as-note")
    tab.click("button[data-tab=head]")
    assert tab.eval_on_selector_all(".as-headview .as-layer option", "os => os.map(o => o.textContent)") == [
        str(layer + 1)
    ]
    tab.click("button[data-tab=model]")
    assert f"Layer {layer + 1}" in tab.text_content(".as-modelview")
    # Rollout has every layer: numbered from 1 to L again.
    tab.select_option(".as-measure", "rollout")
    tab.click("button[data-tab=heatmap]")
    assert tab.eval_on_selector_all(options, "os => os.map(o => o.textContent)") == [
        str(i + 1) for i in range(trace.model.num_layers)
    ]
