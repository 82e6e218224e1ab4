"""The probe page: heatmap cells are view links that the bundle opens; the page has no script of its own."""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import pytest

from attnscope.views import head_view
from attnscope.views.embed import bundle_script
from test_browser_views import data, tab  # noqa: F401 - the tab fixture
from test_views_payload import XSS, random_trace

pytest.importorskip("matplotlib", reason="probe pages draw their heatmaps with matplotlib")


def _page(sentence: str, title: str) -> str:
    from attnscope.probe.page import linked_page
    from attnscope.probe.report import heatmap_image

    grid = np.linspace(0, 1, 2 * 3).reshape(2, 3)
    png, box = heatmap_image(grid, title)
    payload = head_view(random_trace(XSS, layers=2, heads=3)).payload_json()
    section = {"id": "rel", "title": title, "png": png, "box": box, "grid": grid.tolist(), "example": "e0"}
    return linked_page("probe", "intro", [section], {"e0": (sentence, payload)})


def test_the_only_script_is_the_bundle() -> None:
    html = _page("a sentence", "det (n=3)")
    scripts = re.findall(r"<script\b[^>]*>", html)
    assert [s for s in scripts if 'type="application/json"' not in s] == [bundle_script().split(">", 1)[0] + ">"]
    assert html.count("<area ") == 6
    assert 'data-attnscope-open="ex-e0" data-attnscope-target="as-viewer"' in html


@pytest.mark.browser
def test_a_cell_opens_its_head_view_and_text_stays_text(tab: Any) -> None:  # noqa: F811
    evil = '</script><img src=x onerror="alert(1)">'
    tab.set_content(_page(evil, f"det {evil}"))
    tab.eval_on_selector("area[data-layer='1'][data-head='2']", "a => a.click()")
    tab.wait_for_selector("#as-viewer .attnscope-root[data-attnscope-state=ready]")
    root = "#as-viewer .attnscope-root"
    assert (tab.get_attribute(root, "data-layer"), tab.get_attribute(root, "data-head")) == ("1", "2")
    assert (data(tab, ".as-headview")["layer"], data(tab, ".as-headview")["heads"]) == ("1", "2")
    assert tab.text_content(".as-probe-caption") == f"det {evil}: head 1-2 (100.0%) on \u201c{evil}\u201d"
    assert tab.evaluate("document.querySelectorAll('#as-viewer img').length") == 0
    tab.eval_on_selector("area[data-layer='0'][data-head='0']", "a => a.click()")  # another cell replaces it
    tab.wait_for_function("document.querySelector('#as-viewer .attnscope-root').dataset.head === '0'")
    tab.wait_for_selector("#as-viewer .attnscope-root[data-attnscope-state=ready]")
    assert tab.evaluate("document.querySelectorAll('#as-viewer .attnscope-root').length") == 1
