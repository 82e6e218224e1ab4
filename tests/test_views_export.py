"""Static export (.png/.svg) of every view kind, drawn with matplotlib without a browser."""

from __future__ import annotations

import sys
import xml.etree.ElementTree as ET
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import attnscope
from attnscope.errors import AttnscopeError, InputError
from attnscope.traces import Trace
from attnscope.views import VIEW_KINDS, View, ViewOptions, head_view, heatmap_view, model_view, neuron_view
from attnscope.views.export import save_static, to_svg

pytest.importorskip("matplotlib", reason="static export needs the 'views' extra (matplotlib)")

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
SVG_NS = "{http://www.w3.org/2000/svg}"
XSS_TOKENS = [
    "</script>",
    "<img src=x onerror=alert(1)>",
    "\"'><svg onload=alert(1)>",
    "$x^2$",
    "a\u200bb",
    "\u202eevil",
    "&amp;",
]


def _view(kind: str, trace: Trace, **options: Any) -> View:
    return View(kind, trace, ViewOptions(**options))


def _random_trace(tokens: list[str], layers: int = 2, heads: int = 3, sentence_b_start: int | None = None) -> Trace:
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(layers, 1, heads, len(tokens), len(tokens))) * 3
    att = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    return Trace.from_attentions(list(att.astype(np.float32)), tokens, sentence_b_start, model_name="random")


@pytest.fixture(scope="module")
def pair_trace() -> Trace:
    toks = ["[CLS]", "the", "cat", "sat", "[SEP]", "it", "was", "tired", "[SEP]"]
    return _random_trace(toks, sentence_b_start=5)


@pytest.fixture(scope="module")
def qk_trace(tiny: Callable[[str], Any]) -> Trace:
    return attnscope.trace(tiny("bert"), "The cat sat.", "It was tired.", qk=True)


def _svg_texts(svg: str) -> tuple[ET.Element, list[str]]:
    root = ET.fromstring(svg)
    texts = ["".join(el.itertext()) for el in root.iter(f"{SVG_NS}text")]
    return root, texts


def _check_png(path: Path) -> None:
    from matplotlib.image import imread

    assert path.read_bytes()[:8] == PNG_SIGNATURE
    pixels = imread(path)
    assert pixels.ndim == 3
    assert pixels.shape[0] > 100
    assert pixels.shape[1] > 100
    assert pixels.std() > 0.01  # something was drawn, not a blank canvas


@pytest.mark.parametrize("kind", VIEW_KINDS)
def test_every_kind_saves_png_and_svg_that_open(kind: str, qk_trace: Trace, tmp_path: Path) -> None:
    view = _view(kind, qk_trace, layer=1, heads=(2,) if kind in ("neuron", "heatmap") else None, query_index=2)
    png = save_static(view, tmp_path / f"{kind}.png")
    _check_png(png)
    svg = save_static(view, tmp_path / f"{kind}.SVG")
    root, texts = _svg_texts(svg.read_text(encoding="utf-8"))
    assert root.tag == f"{SVG_NS}svg"
    joined = "\n".join(texts)
    assert "tiny-bert" in joined
    if kind != "model":  # the model view's thumbnails carry no token labels
        for token in ("cat", "tired", "[SEP]"):
            assert token in texts


def test_view_functions_save_images_through_static_export(qk_trace: Trace, tmp_path: Path) -> None:
    views = {
        "head": head_view(qk_trace, layer=1, heads=[0, 2]),
        "model": model_view(qk_trace, include_layers=[0]),
        "neuron": neuron_view(qk_trace, layer=1, head=3, query_index=2),
        "heatmap": heatmap_view(qk_trace, 1, 2),
    }
    for kind, view in views.items():
        _check_png(view.save(tmp_path / f"{kind}.png"))
        assert view.save(tmp_path / f"{kind}.svg").read_text(encoding="utf-8") == to_svg(view)


def test_svg_is_repeatable_and_matches_the_saved_file(pair_trace: Trace, tmp_path: Path) -> None:
    view = _view("head", pair_trace, layer=1, heads=(0, 2))
    first = to_svg(view)
    assert to_svg(view) == first
    saved = save_static(view, tmp_path / "head.svg")
    assert saved.read_text(encoding="utf-8") == first
    assert "<dc:date>" not in first


def test_head_view_draws_one_line_per_visible_weight_in_the_head_colour(pair_trace: Trace) -> None:
    from matplotlib.colors import to_hex

    from attnscope.views.resolve import HEAD_PALETTE, MIN_WEIGHT

    svg = to_svg(_view("head", pair_trace, layer=0, heads=(1,)))
    root, texts = _svg_texts(svg)
    colour = to_hex(HEAD_PALETTE[1])
    lines = [el for el in root.iter(f"{SVG_NS}path") if f"stroke: {colour}" in (el.get("style") or "")]
    expected = int((pair_trace.attention["encoder"][0, 1] >= MIN_WEIGHT).sum())
    assert len(lines) == expected
    assert "head 1" in texts
    assert "head 0" not in texts
    assert any("sentence pair A | B" in t for t in texts)


def test_index_base_relabels_layers_and_heads(pair_trace: Trace) -> None:
    _, zero = _svg_texts(to_svg(_view("heatmap", pair_trace, layer=1, heads=(2,))))
    _, one = _svg_texts(to_svg(_view("heatmap", pair_trace, layer=1, heads=(2,), index_base=1)))
    assert "layer 1 · head 2" in zero
    assert "layer 2 · head 3" in one
    _, grid = _svg_texts(to_svg(_view("model", pair_trace, include_layers=(1,), include_heads=(0, 2), index_base=1)))
    assert {"L2", "H1", "H3"} <= set(grid)
    assert "L1" not in grid


def test_user_text_is_drawn_as_text_never_markup(tmp_path: Path) -> None:
    trace = _random_trace(["[CLS]", *XSS_TOKENS, "[SEP]"], layers=1, heads=2)
    for kind in ("head", "heatmap", "model"):
        svg = to_svg(_view(kind, trace))
        root, texts = _svg_texts(svg)
        assert "<script" not in svg.lower()
        for el in root.iter():
            assert el.tag.split("}")[-1] not in ("script", "foreignObject", "iframe")
            for name, value in el.attrib.items():
                assert not name.lower().startswith("on"), (name, value)
                if name.endswith("href"):
                    assert value.startswith(("data:image/png;base64,", "#")), value  # nothing external
        if kind == "model":
            continue
        for token in ["</script>", "<img src=x onerror=alert(1)>", "\"'><svg onload=alert(1)>", "$x^2$", "&amp;"]:
            assert token in texts, token  # verbatim: not markup, not mathtext
        assert "a\u27e8U+200B\u27e9b" in texts  # invisible characters are made visible, as in the pages
        assert "\u27e8U+202E\u27e9evil" in texts
    _check_png(save_static(_view("head", trace), tmp_path / "xss.png"))


def test_neuron_view_shows_the_traces_numbers(qk_trace: Trace) -> None:
    layer, head, query = 1, 3, 2
    _, texts = _svg_texts(to_svg(_view("neuron", qk_trace, layer=layer, heads=(head,), query_index=query)))
    weights = qk_trace.attention["encoder"][layer, head, query]
    for w in weights:
        assert f"{w:.3f}" in texts
    assert "softmax" in texts
    qk = qk_trace.qk["encoder"]
    dots = qk.keys[layer, head] @ qk.queries[layer, head, query]
    for value in dots:
        assert f"{value:.3f}" in texts
    assert f"query q: {qk_trace.tokens.display[query]}" in texts


def test_neuron_view_of_a_causal_decoder_marks_masked_keys(tiny: Callable[[str], Any]) -> None:
    trace = attnscope.trace(tiny("gpt2"), "one two three four", qk=True)
    _, texts = _svg_texts(to_svg(_view("neuron", trace, layer=0, heads=(1,), query_index=1)))
    later_keys = len(trace.tokens) - 2
    assert texts.count("masked") == later_keys * 3  # q·k, scaled and softmax columns


def test_encoder_decoder_cross_attention_head_view(tiny: Callable[[str], Any], tmp_path: Path) -> None:
    trace = attnscope.trace(tiny("t5"), "a small house", target="ein kleines haus", qk=True)
    _, texts = _svg_texts(to_svg(_view("head", trace, stack="cross", layer=1)))
    assert any("cross attention" in t for t in texts)
    _check_png(save_static(_view("neuron", trace, stack="decoder", layer=0, heads=(0,)), tmp_path / "t5.png"))
    _, neuron = _svg_texts(to_svg(_view("neuron", trace, stack="encoder", layer=0, heads=(0,))))
    assert "+ bias" in neuron  # T5's relative position bias is its own column


def test_hide_special_renormalises_without_the_delimiters(pair_trace: Trace) -> None:
    from attnscope.views.resolve import resolve, shown_attention

    att = shown_attention(pair_trace, resolve(pair_trace, ViewOptions(hide_special=True)), 0)
    special = pair_trace.tokens.special
    assert np.all(att[:, :, special] == 0)
    assert np.all(att[:, special, :] == 0)
    np.testing.assert_allclose(att[:, ~special].sum(-1), 1.0, rtol=1e-5)
    _, texts = _svg_texts(to_svg(_view("heatmap", pair_trace, hide_special=True)))
    assert any("special tokens hidden, rows renormalised" in t for t in texts)


def test_unsupported_suffix_names_the_supported_ones(pair_trace: Trace, tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"\.png, \.svg"):
        save_static(_view("head", pair_trace), tmp_path / "view.pdf")
    assert not (tmp_path / "view.pdf").exists()


def test_neuron_view_needs_queries_and_keys(pair_trace: Trace) -> None:
    with pytest.raises(AttnscopeError, match=r"qk=True"):
        to_svg(_view("neuron", pair_trace))


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"layer": 5}, r"layer 5 does not exist.*0\.\.1"),
        ({"layer": 5, "index_base": 1}, r"layer 5 does not exist.*0\.\.1 \(0-based\)"),  # options are 0-based
        ({"heads": (7,)}, r"head 7 does not exist"),
        ({"stack": "cross"}, r"no 'cross' attention"),
    ],
)
def test_bad_options_are_clear_errors(pair_trace: Trace, options: dict[str, Any], message: str) -> None:
    with pytest.raises(InputError, match=message):
        to_svg(_view("heatmap", pair_trace, **options))


def test_unknown_kind_and_oversized_head_view_are_errors(pair_trace: Trace) -> None:
    with pytest.raises(InputError, match=r"supports head, model, neuron, heatmap"):
        to_svg(View("page", pair_trace))
    long_trace = _random_trace([f"t{i}" for i in range(1100)], layers=1, heads=1)
    with pytest.raises(InputError, match=r"at most 1024 tokens"):
        to_svg(_view("head", long_trace))


def test_missing_matplotlib_says_how_to_install_it(pair_trace: Trace, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(AttnscopeError, match=r"pip install 'attnscope\[views\]'"):
        to_svg(_view("head", pair_trace))


def test_long_heatmap_says_which_tokens_are_labelled() -> None:
    trace = _random_trace([f"w{i}" for i in range(700)], layers=1, heads=1)
    _, texts = _svg_texts(to_svg(_view("heatmap", trace)))
    assert any("one token in 3 labelled" in t for t in texts)
    assert "w3" in texts
    assert "w4" not in texts
