"""The contribution view in Chromium: renders, hover and keyboard show the measure's numbers, both themes, safe."""

from __future__ import annotations

import os
from typing import Any

import numpy as np
import pytest

import attnscope
from attnscope.views import contribution_view
from attnscope.views import page as view_page
from test_browser_views import data, show, tab  # noqa: F401 - the tab fixture
from test_views_payload import XSS, random_trace

pytestmark = pytest.mark.browser
SHOTS = os.environ.get("ATTNSCOPE_SHOTS")


def test_contribution_view_bars_equal_rollout(tab: Any, tiny: Any) -> None:  # noqa: F811
    trace = attnscope.trace(tiny("bert"), "the cat sat on the mat")
    show(tab, contribution_view(trace, position=3).to_html())
    rollout = trace.contributions["rollout.encoder"].array[:, 3]  # [layers, keys]
    segs = tab.eval_on_selector_all(
        ".as-contributionview .as-cseg", "ss => ss.map(s => [+s.dataset.layer, +s.dataset.key, +s.dataset.value])"
    )
    on_page = np.zeros_like(rollout)
    for layer, key, value in segs:
        on_page[layer, key] = value
    np.testing.assert_allclose(on_page, rollout, atol=5e-5)
    # Hover shows the numbers; the keyboard walks the segments (one Tab stop, arrows move).
    tab.hover(".as-contributionview .as-cseg[data-layer='1'][data-key='2']")
    assert data(tab, ".as-contributionview")["hover"] == "1,2"
    caption = tab.text_content(".as-contributionview .as-caption")
    assert f"rollout {rollout[1, 2]:.4f}" in caption
    assert "“cat”" in caption
    if SHOTS:
        tab.screenshot(path=os.path.join(SHOTS, "contribution_dark.png"), full_page=True)
    tab.focus(".as-contributionview .as-cseg[tabindex='0']")
    tab.keyboard.press("ArrowDown")
    tab.keyboard.press("ArrowRight")
    assert data(tab, ".as-contributionview")["hover"] == "1,1"
    # The position selector redraws for another output position; a text alternative lists the strongest inputs.
    tab.select_option(".as-contributionview .as-position", "0")
    first = tab.eval_on_selector(".as-contributionview .as-cseg[data-layer='0'][data-key='0']", "s => +s.dataset.value")
    assert first == pytest.approx(float(trace.contributions["rollout.encoder"].array[0, 0, 0]), abs=5e-5)
    assert "Inputs reaching position 0" in tab.text_content(".as-contributionview table caption")
    tab.select_option(".as-page-bar select.as-theme", "light")
    assert "as-light" in (tab.get_attribute(".attnscope-root", "class") or "")
    if SHOTS:
        tab.screenshot(path=os.path.join(SHOTS, "contribution_light.png"), full_page=True)


def test_contribution_tab_keeps_hostile_tokens_inert(tab: Any) -> None:  # noqa: F811
    trace = random_trace(XSS, layers=2, heads=3)
    show(tab, view_page(trace, ["contribution", "head"]).to_html())
    assert tab.query_selector("img") is None
    options = tab.eval_on_selector_all(".as-contributionview .as-position option", "os => os.map(o => o.textContent)")
    assert any("<img src=x onerror=alert(1)>" in o for o in options)
