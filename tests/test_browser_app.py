"""The app page in real Chromium against a real uvicorn on 127.0.0.1: type, see the views, mask, predict, search.

Every test fails on a request to any origin other than the app's own server, a console error or a page error.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from app_support import ewt_slice, live_server, shared_model
from attnscope.app.server import create_app
from conftest import watched_page

pytestmark = pytest.mark.browser

MLM = "tiny-bert-mlm-ewt"
XSS = '</script><img src=x onerror="alert(1)">'


def wait_js(pg: Any, expression: str, timeout: float = 60) -> None:
    """Poll a JavaScript expression until it is true (page.wait_for_function compiles strings inside the page,
    which the app's CSP rightly forbids; page.evaluate is exempt)."""
    deadline = time.monotonic() + timeout
    while not pg.evaluate(expression):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {expression}")
        time.sleep(0.05)


@pytest.fixture(scope="module")
def mlm(shared_data: Path) -> Any:
    """The small masked LM trained on EWT text (../shared/models), with its LM head."""
    return shared_model(shared_data, MLM)


@pytest.fixture(scope="module")
def server(mlm: Any, shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The app on 127.0.0.1 with the MLM, a corpus index of 20 EWT dev sentences built here, and a head atlas."""
    from attnscope.heads import head_roles
    from attnscope.index import build_index, open_index

    corpus = ewt_slice(shared_data, tmp_path_factory.mktemp("ewt"))
    index = open_index(build_index(corpus, tmp_path_factory.mktemp("idx") / "ewt", mlm, batch_size=4))
    atlas = head_roles(mlm, ["The cat sat on the mat.", "A dog barked at the mailman.", "Birds sing at dawn."])
    with live_server(create_app([mlm], [index], atlases={MLM: atlas})) as url:
        yield url


@pytest.fixture
def app_tab(browser: Any, server: str) -> Iterator[Any]:
    """A fresh page on the app that fails the test on any request to another origin or any console error."""
    with watched_page(browser, (server + "/", "data:", "blob:")) as (pg, problems):
        pg.expected_errors = []  # console lines a test expects (Chromium logs each 4xx answer it gets)
        pg.goto(server + "/")
        pg.wait_for_selector("body[data-app-state=ready]", timeout=60_000)
        yield pg
    assert [p for p in problems if not any(e in p for e in pg.expected_errors)] == []


def test_type_a_sentence_and_see_the_views(app_tab: Any) -> None:
    pg = app_tab
    assert pg.eval_on_selector("#as-model", "s => Array.from(s.options).map(o => o.value)") == [MLM]
    pg.fill("#as-text-a", "The dog chased the ball.")
    pg.fill("#as-text-b", "")
    pg.click("button[type=submit]")
    wait_js(pg, "document.querySelectorAll('#as-tokens button')[1]?.textContent === 'the'")
    pg.wait_for_selector("body[data-app-state=ready]")
    tokens = pg.eval_on_selector_all("#as-tokens button", "bs => bs.map(b => b.textContent)")
    assert tokens[0] == "[CLS]"
    assert tokens[-1] == "[SEP]"
    tabs = pg.eval_on_selector_all("#as-views .as-tab", "bs => bs.map(b => b.textContent)")
    assert {"Head view", "Model view", "Neuron view"} <= set(tabs)
    pg.click("#as-views .as-tab[data-tab=model]")
    pg.wait_for_selector("#as-views .as-modelview canvas")
    pg.screenshot(path="/tmp/attnscope-app-views.png", full_page=True)


def test_hostile_text_is_shown_as_text(app_tab: Any) -> None:
    pg = app_tab
    pg.fill("#as-text-a", XSS)
    pg.click("button[type=submit]")
    wait_js(pg, "Array.from(document.querySelectorAll('#as-tokens button')).some(b => b.textContent === '<')")
    pg.wait_for_selector("body[data-app-state=ready]")
    assert pg.query_selector("img") is None  # nothing the user typed became an element


def test_api_errors_are_shown_as_text(app_tab: Any) -> None:
    pg = app_tab
    pg.expected_errors.append("the server responded with a status of 422")
    pg.fill("#as-text-a", "word " * 300)  # over the model's 256 tokens
    pg.click("button[type=submit]")
    pg.wait_for_selector("#as-error:not([hidden])")
    assert "accepts at most 256 tokens" in pg.text_content("#as-error")


def test_keyboard_reaches_the_form_and_the_tokens(app_tab: Any) -> None:
    pg = app_tab
    pg.focus("#as-text-a")
    pg.keyboard.press("Control+A")
    pg.keyboard.type("Birds sing.")
    pg.keyboard.press("Enter")
    wait_js(pg, "document.querySelectorAll('#as-tokens button')[1]?.textContent === 'birds'")
    pg.focus("#as-tokens button[data-index='1']")
    assert pg.evaluate("document.activeElement.dataset.index") == "1"


def test_the_head_atlas_of_the_model(app_tab: Any) -> None:
    pg = app_tab
    pg.click("#as-atlas-show")
    pg.wait_for_selector("#as-atlas .as-atlas-grid .as-atlas-cell")
    cells = pg.eval_on_selector_all("#as-atlas .as-atlas-cell", "bs => bs.length")
    assert cells == 4 * 4  # 4 layers x 4 heads


def test_numbering_switch_moves_the_whole_page(app_tab: Any) -> None:
    pg = app_tab
    assert pg.get_attribute("#as-tokens button[data-index='1']", "title") == "token 1"
    pg.select_option("#as-base", "1")
    assert pg.get_attribute("#as-tokens button[data-index='1']", "title") == "token 2"
    assert pg.input_value("#as-views select.as-base") == "1"  # the views' own switch follows
    pg.select_option("#as-views select.as-base", "0")  # and the other way round
    assert pg.input_value("#as-base") == "0"
    assert pg.get_attribute("#as-tokens button[data-index='1']", "title") == "token 1"


def token_button(pg: Any, text: str) -> str:
    """The selector of the first token button whose label is ``text``."""
    index = pg.eval_on_selector_all("#as-tokens button", f"bs => bs.findIndex(b => b.textContent === {text!r})")
    assert index >= 0, text
    return f"#as-tokens button[data-index='{index}']"


def test_mask_tokens_see_predictions_and_the_comparison_change(app_tab: Any) -> None:
    pg = app_tab
    pg.fill("#as-text-a", "The dog chased the ball in the park.")
    pg.fill("#as-text-b", "")
    pg.click("button[type=submit]")
    wait_js(pg, "document.querySelectorAll('#as-tokens button')[2]?.textContent === 'dog'")
    pg.wait_for_selector("body[data-app-state=ready]")
    assert pg.is_hidden("#as-compare-section")
    pg.click(token_button(pg, "ball"))
    pg.wait_for_selector("#as-predictions .as-app-pred")
    pg.wait_for_selector("body[data-app-state=ready]")
    assert pg.get_attribute(token_button(pg, "ball"), "aria-pressed") == "true"
    heading = pg.text_content("#as-predictions h3")
    assert 'was "ball"' in heading
    candidates = pg.eval_on_selector_all("#as-predictions .as-app-ctok", "xs => xs.map(x => x.textContent)")
    assert len(candidates) == 5
    assert pg.is_visible("#as-compare .as-compareview canvas[data-panel=diff]")
    labels = pg.eval_on_selector_all("#as-tokens button", "bs => bs.map(b => b.textContent)")
    masked = pg.eval_on_selector("#as-views", "r => r.textContent")
    assert "[MASK]" in masked
    diff = "document.querySelector('#as-compare canvas[data-panel=diff]').toDataURL()"
    before = pg.evaluate(diff)
    pg.screenshot(path="/tmp/attnscope-app-mask.png", full_page=True)
    pg.click(token_button(pg, "dog"))  # a second mask: the comparison changes
    wait_js(pg, "document.querySelectorAll('#as-predictions .as-app-pred').length === 2")
    pg.wait_for_selector("body[data-app-state=ready]")
    assert pg.evaluate(diff) != before
    pg.check("#as-lens")  # per layer, through the model's own head
    pg.wait_for_selector("#as-predictions details.as-app-lens")
    assert "logit lens" in pg.text_content("#as-predictions details.as-app-lens summary")
    assert labels[0] == "[CLS]"


def test_corpus_search_shows_matches_and_label_histograms(app_tab: Any) -> None:
    pg = app_tab
    pg.fill("#as-text-a", "The dog chased the ball.")
    pg.fill("#as-text-b", "")
    pg.click("button[type=submit]")
    wait_js(pg, "document.querySelectorAll('#as-tokens button')[2]?.textContent === 'dog'")
    pg.wait_for_selector("body[data-app-state=ready]")
    pg.check("#as-click-search")
    pg.click(token_button(pg, "dog"))
    assert pg.input_value("#as-search-token") == "2"
    pg.select_option("#as-layer", "2")
    pg.check("#as-heads input[value='1']")
    pg.fill("#as-search-k", "6")
    pg.click("#as-search-form button[type=submit]")
    pg.wait_for_selector("#as-search-results[data-count='6']")
    marks = pg.eval_on_selector_all("#as-search-results mark.as-app-hit", "ms => ms.length")
    assert marks == 6  # each match with its matched token marked
    assert pg.eval_on_selector_all(".as-app-hist", "hs => hs.length") == 2
    counts = pg.eval_on_selector_all(
        ".as-app-hist:first-child .as-app-hcount", "cs => cs.map(c => Number(c.textContent))"
    )
    assert sum(counts) == 6
    summary = pg.text_content("#as-search-results .as-app-results > p")
    assert "layer 2" in summary
    assert "heads 1" in summary
    pg.screenshot(path="/tmp/attnscope-app-search.png", full_page=True)
