"""Notebook outputs: the bundle is embedded once per document, and every output still renders."""

from __future__ import annotations

import sys
import types
from collections.abc import Iterator
from typing import Any

import pytest

from attnscope.traces import Trace
from attnscope.views import embed, head_view, model_view, neuron_view
from test_browser_views import data, show, tab  # noqa: F401 - the tab fixture
from test_views_payload import random_trace

TOKENS = ["[CLS]", "the", "cat", "sat", "[SEP]", "it", "was", "tired", "[SEP]"]


@pytest.fixture
def trace() -> Trace:
    return random_trace(TOKENS, layers=2, heads=4)


@pytest.fixture
def kernel(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    """A fake IPython kernel whose current execute request (cell id, message id) the test sets."""
    parent: dict[str, Any] = {}

    class Kernel:
        def get_parent(self, channel: str) -> dict[str, Any]:
            assert channel == "shell"
            return parent

    shell = types.SimpleNamespace(kernel=Kernel())
    monkeypatch.setitem(sys.modules, "IPython", types.SimpleNamespace(get_ipython=lambda: shell))
    embed.forget_notebook_bundle()
    yield parent
    embed.forget_notebook_bundle()


def run(parent: dict[str, Any], cell: str, request: str) -> None:
    parent.clear()
    parent.update({"header": {"msg_id": request}, "metadata": {"cellId": cell}})


def test_bundle_goes_with_the_first_output_only(kernel: dict[str, Any], trace: Trace) -> None:
    bundle = embed.bundle()
    run(kernel, "cell-a", "m1")
    first = head_view(trace)._repr_mimebundle_()["text/html"]
    again = model_view(trace)._repr_html_()  # a second view in the same run of the same cell
    run(kernel, "cell-b", "m2")
    second = neuron_view(trace, layer=1, head=2)._repr_html_()
    assert first.count(bundle) == 1
    assert bundle not in again
    assert bundle not in second
    assert embed.LOADER in again
    assert embed.LOADER in second
    assert len(second) < 15_000 < len(bundle) < len(first)
    run(kernel, "cell-a", "m3")  # cell a again: its output (the bundle's carrier) is replaced
    assert head_view(trace)._repr_html_().count(bundle) == 1
    run(kernel, "cell-b", "m4")
    assert bundle not in head_view(trace)._repr_html_()


def test_forgetting_the_bundle_makes_the_next_output_carry_it(kernel: dict[str, Any], trace: Trace) -> None:
    run(kernel, "cell-a", "m1")
    assert embed.bundle() in head_view(trace)._repr_html_()
    run(kernel, "cell-b", "m2")
    assert embed.bundle() not in head_view(trace)._repr_html_()
    embed.forget_notebook_bundle()  # the carrier's cell was deleted
    run(kernel, "cell-b", "m3")
    assert embed.bundle() in head_view(trace)._repr_html_()
    run(kernel, "cell-c", "m4")
    assert embed.bundle() not in head_view(trace)._repr_html_()


def test_without_a_cell_id_every_output_carries_the_bundle(kernel: dict[str, Any], trace: Trace) -> None:
    kernel.clear()  # a front end that sends no cell id
    assert embed.bundle() in head_view(trace)._repr_html_()
    assert embed.bundle() in head_view(trace)._repr_html_()


def test_in_colab_every_output_carries_the_bundle(
    kernel: dict[str, Any], trace: Trace, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "google.colab", types.ModuleType("google.colab"))  # one frame per output
    run(kernel, "cell-a", "m1")
    assert embed.bundle() in head_view(trace)._repr_html_()
    run(kernel, "cell-b", "m2")
    assert embed.bundle() in head_view(trace)._repr_html_()


@pytest.mark.browser
def test_one_document_two_outputs_one_bundle(tab: Any, kernel: dict[str, Any], trace: Trace) -> None:  # noqa: F811
    run(kernel, "cell-a", "m1")
    first = head_view(trace)._repr_html_()
    run(kernel, "cell-b", "m2")
    second = model_view(trace)._repr_html_()
    document = f'<div class="output">{first}</div><div class="output">{second}</div>'
    assert document.count(embed.bundle()) == 1
    show(tab, f"<!DOCTYPE html><html><body>{document}</body></html>")
    tab.wait_for_function("document.querySelectorAll('.attnscope-root[data-attnscope-state=ready]').length === 2")
    assert int(data(tab, ".as-headview")["lines"]) > 0
    assert data(tab, ".as-modelview")["thumbs"] == "8"
    # A windowed notebook may attach the later output first: it waits for the bundle, then renders.
    show(tab, f'<!DOCTYPE html><html><body><div class="output">{second}</div><div>{first}</div></body></html>')
    tab.wait_for_function("document.querySelectorAll('.attnscope-root[data-attnscope-state=ready]').length === 2")
    # The output that carries the bundle renders opened alone (e.g. copied into its own page).
    show(tab, f"<!DOCTYPE html><html><body>{first}</body></html>")
    assert int(data(tab, ".as-headview")["lines"]) > 0


@pytest.mark.browser
def test_an_output_without_its_bundle_says_why(browser: Any, kernel: dict[str, Any], trace: Trace) -> None:
    run(kernel, "cell-a", "m1")
    head_view(trace)._repr_html_()
    run(kernel, "cell-b", "m2")
    alone = head_view(trace)._repr_html_()
    pg = browser.new_page()
    try:
        pg.set_content(f"<!DOCTYPE html><html><body>{alone}</body></html>")
        root = pg.locator(".attnscope-root")
        assert root.get_attribute("data-attnscope-state") == "pending"
        assert "first view output of this notebook" in root.inner_text()
        assert "forget_notebook_bundle()" in root.inner_text()  # the way out when the carrier's cell is gone
    finally:
        pg.close()


@pytest.mark.browser
def test_the_same_bundle_twice_defines_one_global_once(tab: Any, trace: Trace) -> None:  # noqa: F811
    page = f"<!DOCTYPE html><html><body>{head_view(trace).fragment()}{model_view(trace).fragment()}</body></html>"
    show(tab, page)
    tab.wait_for_function("document.querySelectorAll('.attnscope-root[data-attnscope-state=ready]').length === 2")
    assert tab.evaluate("window.attnscope.key") == embed.bundle_key()
    assert tab.evaluate("document.querySelectorAll('.as-headview').length") == 1
    # The documented entry renders a payload into any element.
    tab.evaluate(
        """async (payload) => {
            const root = document.createElement('div');
            root.id = 'mine';
            document.body.appendChild(root);
            await window.attnscope.render(root, payload);
        }""",
        head_view(trace).payload(),
    )
    assert int(data(tab, "#mine .as-headview")["lines"]) > 0


# JupyterLab's evalInnerHTMLScriptTags: an output's HTML goes in through innerHTML, then each script is
# replaced by a clone (attributes copied), which runs it.
JUPYTERLAB_INSERT = """(html) => {
    const host = document.createElement('div');
    document.body.appendChild(host);
    host.innerHTML = html;
    for (const script of Array.from(host.getElementsByTagName('script'))) {
        const clone = document.createElement('script');
        for (const {name, value} of Array.from(script.attributes)) clone.setAttribute(name, value);
        clone.textContent = script.textContent;
        script.parentNode.replaceChild(clone, script);
    }
}"""


@pytest.mark.browser
def test_outputs_inserted_as_jupyterlab_does(tab: Any, kernel: dict[str, Any], trace: Trace) -> None:  # noqa: F811
    run(kernel, "cell-a", "m1")
    first = head_view(trace)._repr_html_()
    run(kernel, "cell-b", "m2")
    second = neuron_view(trace, layer=1, head=2)._repr_html_()
    tab.set_content("<!DOCTYPE html><html><body></body></html>")
    tab.evaluate(JUPYTERLAB_INSERT, first)
    tab.evaluate(JUPYTERLAB_INSERT, second)
    tab.wait_for_function("document.querySelectorAll('.attnscope-root[data-attnscope-state=ready]').length === 2")
    assert tab.evaluate("window.attnscope.key") == embed.bundle_key()
    assert data(tab, ".as-neuronview")["head"] == "2"
    tab.evaluate(JUPYTERLAB_INSERT, first)  # the carrier's cell shown again: the same bundle, loaded once
    tab.wait_for_function("document.querySelectorAll('.attnscope-root[data-attnscope-state=ready]').length === 3")
