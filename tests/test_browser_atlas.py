"""The atlas view in Chromium: the grid, hover numbers, role filter, sort, keyboard, opening a head, safety."""

from __future__ import annotations

from typing import Any

import pytest

from test_browser_views import show, tab
from test_views_atlas import HOSTILE, SENTENCES, atlas, planted, view

pytestmark = pytest.mark.browser
__all__ = ["atlas", "planted", "tab", "view"]  # fixtures shared with other test modules

DARK_BG, LIGHT_BG = (0x1E, 0x1E, 0x1E), (0xFF, 0xFF, 0xFF)  # frontend/src/dom.ts THEMES


def expected_rgb(colour: str, background: tuple[int, int, int], score: float | None) -> str:
    """The cell colour frontend/src/atlas.ts (and the PNG) paints: the role's hue over the background by score."""
    t = 0.25 if score is None else 0.25 + 0.75 * min(1.0, max(0.0, score))
    hue = [int(colour[i : i + 2], 16) for i in (1, 3, 5)]
    mixed = [round(b * (1 - t) + h * t) for b, h in zip(background, hue, strict=True)]
    return f"rgb({mixed[0]}, {mixed[1]}, {mixed[2]})"


def cells(pg: Any) -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = pg.eval_on_selector_all(
        ".as-atlas-cell",
        """bs => bs.map(b => ({layer: +b.dataset.layer, head: +b.dataset.head, role: b.dataset.role,
            text: b.textContent, label: b.getAttribute('aria-label'), dim: b.classList.contains('as-dim'),
            bg: getComputedStyle(b).backgroundColor}))""",
    )
    return result


def test_grid_has_a_cell_per_head_in_its_role_colour(tab: Any, view: Any, atlas: Any) -> None:
    show(tab, view.to_html())
    section = view.payload()["atlas"]
    colour = dict(zip(section["roles"], section["role_colours"], strict=True))
    got = cells(tab)
    assert len(got) == atlas.num_layers * atlas.num_heads
    for cell in got:
        want = section["heads"][cell["layer"]][cell["head"]]
        assert cell["role"] == want["role"]
        assert cell["bg"] == expected_rgb(colour[want["role"]], DARK_BG, want["score"])
        assert cell["label"] == f"layer {cell['layer']} head {cell['head']}: {want['role']}, score {want['score']:.2f}"
    legend = tab.eval_on_selector_all(
        ".as-atlas-role-item", "xs => xs.map(x => [x.dataset.role, getComputedStyle(x.firstChild).backgroundColor])"
    )
    assert [r for r, _ in legend] == section["roles"]
    assert [bg for _, bg in legend] == [expected_rgb(c, (0, 0, 0), 1.0) for c in section["role_colours"]]
    rows = tab.eval_on_selector_all("table.as-sr tbody tr", "rs => rs.map(r => r.textContent)")
    assert len(rows) == atlas.num_layers * atlas.num_heads  # the text alternative lists every head


def test_hover_shows_the_heads_numbers(tab: Any, view: Any) -> None:
    show(tab, view.to_html())
    head = view.payload()["atlas"]["heads"][0][1]  # the planted previous-token head
    tab.hover(".as-atlas-cell[data-layer='0'][data-head='1']")
    text = tab.text_content(".as-atlas-info")
    assert f"Layer 0, head 1: previous (score {head['score']:.3f})" in text
    for name, key in (("first", "first"), ("prev", "previous"), ("next", "next"), ("self", "self")):
        assert f"{name} {head['stats'][key]:.3f}" in text
    assert f"entropy {head['stats']['entropy']:.2f}" in text
    assert f"confidence {head['stats']['max_weight']:.3f}" in text
    assert f"distance {head['stats']['distance']:.2f}" in text
    assert f"vertical {head['patterns']['vertical']:.2f}" in text
    assert "heterogeneous" in text


def test_role_filter_dims_other_heads_and_sort_orders_each_layer(tab: Any, view: Any) -> None:
    show(tab, view.to_html())
    tab.select_option(".as-atlas-role", "previous")
    got = cells(tab)
    assert {(c["layer"], c["head"]) for c in got if not c["dim"]} == {(0, 1)}
    assert all(c["dim"] == (c["role"] != "previous") for c in got)
    tab.select_option(".as-atlas-role", "")
    tab.check(".as-atlas-sort")
    section = view.payload()["atlas"]
    for layer in range(len(section["heads"])):
        row = [c for c in cells(tab) if c["layer"] == layer]
        scores = [section["heads"][layer][c["head"]]["score"] for c in row]
        assert scores == sorted(scores, reverse=True)
        assert [c["text"] for c in row] == [str(c["head"]) for c in row]  # sorted cells name their head
    assert not any(c["dim"] for c in cells(tab))


def test_arrows_move_and_enter_opens_the_head_view_on_its_example(tab: Any, view: Any) -> None:
    show(tab, view.to_html())
    tab.focus(".as-atlas-cell[tabindex='0']")
    tab.keyboard.press("ArrowDown")
    tab.keyboard.press("ArrowRight")
    tab.keyboard.press("ArrowLeft")
    focused = tab.evaluate("() => Object.assign({}, document.activeElement.dataset)")
    assert (focused["layer"], focused["head"]) == ("1", "0")  # the planted first-token head
    tab.keyboard.press("Enter")
    tab.wait_for_selector(".as-atlas-example[data-ready=true]")
    section = view.payload()["atlas"]
    example = section["examples"][section["heads"][1][0]["example"]]
    assert tab.text_content(".as-atlas-text") == SENTENCES[example["index"]]
    assert tab.input_value(".as-atlas-example .as-layer") == "1"
    pressed = tab.eval_on_selector_all(
        ".as-atlas-example .as-head", "bs => bs.map(b => b.getAttribute('aria-pressed'))"
    )
    assert pressed == ["true", "false", "false", "false"]
    labels = tab.eval_on_selector_all(".as-atlas-example table.as-sr tbody th", "ts => ts.map(t => t.textContent)")
    assert labels  # the head view drew its rows for the example's tokens


def test_click_opens_the_right_head_and_hostile_text_stays_text(tab: Any, view: Any) -> None:
    show(tab, view.to_html())
    section = view.payload()["atlas"]
    hostile = next(i for i, ex in enumerate(section["examples"]) if ex["text"] == HOSTILE)
    layer, head = next(
        (layer, head)
        for layer, row in enumerate(section["heads"])
        for head, cell in enumerate(row)
        if cell["example"] == hostile
    )
    tab.click(f".as-atlas-cell[data-layer='{layer}'][data-head='{head}']")
    tab.wait_for_selector(".as-atlas-example[data-ready=true]")
    assert tab.get_attribute(".as-atlas-example", "data-layer") == str(layer)
    assert tab.get_attribute(".as-atlas-example", "data-head") == str(head)
    assert tab.text_content(".as-atlas-text") == HOSTILE
    assert tab.input_value(".as-atlas-example .as-layer") == str(layer)
    assert tab.evaluate("() => document.querySelectorAll('img').length") == 0
    expanded = tab.eval_on_selector_all(".as-atlas-cell[aria-expanded=true]", "bs => bs.map(b => b.dataset.head)")
    assert expanded == [str(head)]


def test_numbering_and_theme_switches(tab: Any, view: Any) -> None:
    show(tab, view.to_html())
    tab.select_option(".as-base", "1")
    tab.hover(".as-atlas-cell[data-layer='0'][data-head='1']")
    assert tab.text_content(".as-atlas-info").startswith("Layer 1, head 2: previous")
    heads = tab.eval_on_selector_all(".as-atlas-grid > .as-glabel", "xs => xs.map(x => x.textContent)")
    assert heads[1:5] == ["1", "2", "3", "4"]
    tab.click(".as-atlas-cell[data-layer='0'][data-head='1']")
    tab.wait_for_selector(".as-atlas-example[data-ready=true]")
    assert tab.eval_on_selector(".as-atlas-example .as-layer", "s => s.selectedOptions[0].textContent") == "1"
    assert tab.text_content(".as-atlas-example .as-caption").startswith("Layer 1, head 2: previous")
    tab.select_option(".as-base", "0")  # an open example follows the switch too
    assert tab.text_content(".as-atlas-example .as-caption").startswith("Layer 0, head 1: previous")
    assert tab.eval_on_selector(".as-atlas-example .as-layer", "s => s.selectedOptions[0].textContent") == "0"
    tab.select_option(".as-theme", "light")
    section = view.payload()["atlas"]
    colour = dict(zip(section["roles"], section["role_colours"], strict=True))
    cell = next(c for c in cells(tab) if (c["layer"], c["head"]) == (0, 1))
    assert cell["bg"] == expected_rgb(colour["previous"], LIGHT_BG, section["heads"][0][1]["score"])


def test_an_atlas_without_examples_renders_and_says_so(tab: Any, atlas: Any) -> None:
    from attnscope.views import atlas_view

    show(tab, atlas_view(atlas, theme="light").to_html())
    assert len(cells(tab)) == atlas.num_layers * atlas.num_heads
    tab.click(".as-atlas-cell[data-layer='1'][data-head='0']")
    assert "No example sentence in this page" in tab.text_content(".as-atlas-example")
    assert tab.query_selector(".as-atlas-example .as-headview") is None
