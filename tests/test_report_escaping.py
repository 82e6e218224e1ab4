"""Labels and ids from data files are text in report.md and on the terminal, never markup or escape codes."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from attnscope.probe.data import Sentence
from attnscope.probe.deps import DepsCounts
from attnscope.probe.deps_report import deps_markdown, deps_table
from attnscope.probe.report import markdown_table, text_table
from attnscope.text import markdown_code, markdown_text, terminal_text
from attnscope.traces import ModelInfo

HOSTILE = ["<script>alert(1)</script>", "<img src=x onerror=alert(1)>", "a|b*c*_d_`e`[f](javascript:g)"]
ESCAPES = "\x1b[31mred\x1b[0m \x1b]0;title\x07 \x1b]8;;http://x\x1b\\link\x1b]8;;\x1b\\ \u202eevil \x9b2J"


def _render(md: str) -> str:
    markdown_it = pytest.importorskip("markdown_it", reason="markdown-it-py renders the report as a viewer would")
    return str(markdown_it.MarkdownIt("commonmark", {"html": True}).enable("table").render(md))


def _counts_with(label: str) -> DepsCounts:
    words = ("a", "b", "c", "d", "e", "f")
    sentence = Sentence(
        words, (1, 2, 3, 4, 5, -1), (label,) * 6, "a b c d e f", tuple((2 * i, 2 * i + 1) for i in range(6))
    )
    counts = DepsCounts(1, 2)
    counts.add(sentence, np.full((1, 2, 6, 6), 1 / 6, dtype=np.float32))
    return counts


@pytest.mark.parametrize("label", HOSTILE)
def test_markdown_report_shows_hostile_labels_as_text(label: str) -> None:
    handle = SimpleNamespace(name="<b>model</b>", info=ModelInfo(name="m", num_layers=1, num_heads=2))
    md = deps_markdown(handle, _counts_with(label), "data<script>.conllu", min_count=1)  # type: ignore[arg-type]
    html = _render(md)
    assert "<script" not in html
    assert "<img" not in html
    assert "<b>" not in html
    assert 'href="javascript' not in html
    assert html.count("<tr>") == 3  # header + the relation + "all relations": no cell was split by '|'


def test_markdown_helpers_round_trip_as_text() -> None:
    for label in HOSTILE:
        html = _render(markdown_text(label))
        text = html.removeprefix("<p>").removesuffix("</p>\n")
        assert text == label.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")
        assert "<script" not in _render(markdown_code(label))
    table = markdown_table(["label"], [[label] for label in HOSTILE])
    assert "<script" not in _render(table)


def test_terminal_output_has_no_escape_sequences() -> None:
    cleaned = terminal_text(ESCAPES)
    assert cleaned == "red  link \\u202eevil "
    table = text_table(["relation", "n"], [[ESCAPES, 1]])
    assert "\x1b" not in table
    assert "\x9b" not in table
    assert "\u202e" not in table
    assert "\x1b" not in deps_table(_counts_with("\x1b[2Jdep"), min_count=1)
