"""The views' data contract and HTML: round trip, precision, escaping, repeatable bytes, no network."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import attnscope
from attnscope.errors import InputError
from attnscope.traces import QK, Trace
from attnscope.views import ViewOptions, head_view, heatmap_view, model_view, page
from attnscope.views.payload import (
    PAYLOAD_VERSION,
    build_payload,
    decode_array,
    decode_attention,
    payload_json,
    visible_label,
)

PAIR = ("The cat is very sad.", "Because it could not find food to eat.")
XSS = [
    "[CLS]",
    "</script>",
    "<img src=x onerror=alert(1)>",
    "\"'><svg onload=alert(1)>",
    "&amp;&lt;",
    "\u202eevil",
    "a\u200bb",
    "\u05e9\u05dc\u05d5\u05dd",
    "[SEP]",
]


def random_trace(tokens: list[str], layers: int = 2, heads: int = 3, dim: int = 4, seed: int = 0) -> Trace:
    """A trace whose attention is softmax(q·kᵀ·scale) of random q/k, so the neuron view has numbers."""
    rng = np.random.default_rng(seed)
    n = len(tokens)
    qk = QK(
        queries=rng.normal(size=(layers, heads, n, dim)).astype(np.float32),
        keys=rng.normal(size=(layers, heads, n, dim)).astype(np.float32),
        scale=np.full(layers, dim**-0.5, dtype=np.float32),
        mask=np.zeros((layers, n, n), dtype=np.float32),
    )
    trace = Trace.from_attentions(list(qk.rebuild()[:, None]), tokens, sentence_b_start=n // 2)
    trace.qk = {"encoder": qk}
    return trace


def json_block(html: str) -> Any:
    blocks = re.findall(r'<script type="application/json">(.*?)</script>', html, flags=re.DOTALL)
    assert len(blocks) == 1
    return json.loads(blocks[0])


@pytest.fixture(scope="module")
def pair_trace(tiny: Any) -> Trace:
    return attnscope.trace(tiny("bert"), *PAIR, qk=True)


def test_uint8_round_trip_error_within_one_255th(pair_trace: Trace) -> None:
    payload = build_payload(pair_trace, ("head",), ViewOptions())
    assert payload["version"] == PAYLOAD_VERSION
    blob = payload["stacks"][0]["attention"]
    assert blob["dtype"] == "uint8"
    decoded = decode_attention(blob)
    exact = pair_trace.attention["encoder"]
    assert decoded.shape == exact.shape
    error = np.abs(decoded - exact).max()
    assert error <= 0.5 / 255 + 1e-7
    assert error > 0  # it really is quantised


def test_float32_round_trip_is_exact(pair_trace: Trace) -> None:
    payload = build_payload(pair_trace, ("head",), ViewOptions(), precision="float32")
    np.testing.assert_array_equal(decode_attention(payload["stacks"][0]["attention"]), pair_trace.attention["encoder"])


def test_neuron_numbers_are_the_traces(pair_trace: Trace) -> None:
    payload = build_payload(pair_trace, ("neuron", "heatmap"), ViewOptions())
    (neuron,) = payload["neuron"]
    qk = pair_trace.qk["encoder"]
    assert neuron["layers"] == list(range(qk.queries.shape[0]))
    np.testing.assert_array_equal(decode_array(neuron["queries"]), qk.queries)
    np.testing.assert_array_equal(decode_array(neuron["keys"]), qk.keys)
    np.testing.assert_array_equal(decode_array(neuron["mask"]), qk.mask)
    assert neuron["scale"] == [float(s) for s in qk.scale]


def test_neuron_payload_beside_other_views_narrows_to_one_layer_when_large(
    pair_trace: Trace, monkeypatch: pytest.MonkeyPatch
) -> None:
    import attnscope.views.payload as module

    monkeypatch.setattr(module, "NEURON_BUDGET", 8_000)
    (neuron,) = build_payload(pair_trace, ("neuron", "head"), ViewOptions(layer=1))["neuron"]
    assert neuron["layers"] == [1]
    np.testing.assert_array_equal(decode_array(neuron["queries"]), pair_trace.qk["encoder"].queries[[1]])


def test_neuron_only_page_carries_only_the_head_it_shows(pair_trace: Trace) -> None:
    payload = build_payload(pair_trace, ("neuron",), ViewOptions(layer=1, heads=(2,)))
    (neuron,) = payload["neuron"]
    assert (neuron["layers"], neuron["heads"]) == ([1], [2])
    qk = pair_trace.qk["encoder"]
    np.testing.assert_array_equal(decode_array(neuron["queries"]), qk.queries[[1]][:, [2]])
    np.testing.assert_array_equal(decode_array(neuron["keys"]), qk.keys[[1]][:, [2]])
    (stack,) = payload["stacks"]
    assert (stack["name"], stack.get("layers"), stack.get("heads")) == ("encoder", [1], [2])
    expected = pair_trace.attention["encoder"][[1]][:, [2]]
    np.testing.assert_allclose(decode_attention(stack["attention"]), expected, atol=0.5 / 255 + 1e-7)
    # The neuron's mask travels deflated: BERT's all-zero mask is a few dozen base64 characters.
    assert neuron["bias"] is None
    assert not decode_array(neuron["mask"]).any()
    assert len(neuron["mask"]["data"]) <= 64 < np.prod(neuron["mask"]["shape"]) * 4
    # A page with a neuron tab beside others keeps every head's queries and keys (within the budget).
    whole = build_payload(pair_trace, ("neuron", "head"), ViewOptions(layer=1, heads=(2,)))
    assert len(payload_json(payload)) * 4 < len(payload_json(whole))


def test_pages_with_other_views_keep_full_attention(pair_trace: Trace, monkeypatch: pytest.MonkeyPatch) -> None:
    import attnscope.views.payload as module

    monkeypatch.setattr(module, "NEURON_BUDGET", 1)
    for views in [("neuron", "head"), ("head",), ("model",), ("heatmap",)]:
        payload = build_payload(pair_trace, views, ViewOptions(layer=1))
        (stack,) = payload["stacks"]
        assert "layers" not in stack
        assert "heads" not in stack
        assert stack["attention"]["shape"] == list(pair_trace.attention["encoder"].shape)


def test_neuron_only_page_of_an_encoder_decoder_carries_only_its_stack(tiny: Any) -> None:
    t5 = attnscope.trace(tiny("t5"), "The cat is very sad.", target="Le chat est triste.", qk=True)
    payload = build_payload(t5, ("neuron",), ViewOptions(stack="cross", layer=1))
    (stack,) = payload["stacks"]
    assert (stack["name"], stack["query"], stack["key"]) == ("cross", "target", "source")
    layers, heads = payload["neuron"][0]["layers"], payload["neuron"][0]["heads"]
    assert (stack.get("layers"), stack.get("heads")) == (layers, heads)
    assert stack["attention"]["shape"][:2] == [len(layers), len(heads)]


def test_tokens_are_escaped_and_made_visible() -> None:
    html = head_view(random_trace(XSS)).to_html()
    # Only our own two </script> tags: the JSON block's and the bundle's.
    assert html.lower().count("</script") == 2
    for token in XSS[2:4]:
        assert token not in html
    labels = json_block(html)["sides"]["source"]["labels"]
    assert labels[1:4] == XSS[1:4]
    assert labels[5] == "\u27e8U+202E\u27e9evil"
    assert labels[6] == "a\u27e8U+200B\u27e9b"
    assert labels[7] == XSS[7]  # right-to-left letters stay as they are


def test_visible_label() -> None:
    assert visible_label("") == "\u2205"
    assert visible_label("x\ny") == "x\u27e8U+000A\u27e9y"
    assert visible_label("caf\u00e9") == "caf\u00e9"


def test_payload_json_escapes_markup_characters() -> None:
    text = payload_json(build_payload(random_trace(["<", ">", "&"]), ("head",), ViewOptions()))
    assert "<" not in text
    assert ">" not in text
    assert "&" not in text
    assert json.loads(text)["sides"]["source"]["labels"] == ["<", ">", "&"]


def test_same_input_same_bytes(pair_trace: Trace) -> None:
    first = page(pair_trace).to_html()
    assert first == page(pair_trace).to_html()
    other = page(pair_trace, theme="light").to_html()
    assert other != first
    ids = {re.search(r'id="(attnscope-[0-9a-f]+)"', h).group(1) for h in (first, other)}  # type: ignore[union-attr]
    assert len(ids) == 2


def test_html_loads_nothing_from_the_network(pair_trace: Trace) -> None:
    html = page(pair_trace).to_html()
    assert not re.search(r"https?://", html)
    assert not re.search(r"\b(src|href)\s*=", html, flags=re.IGNORECASE)
    assert "default-src 'none'" in html  # the page's CSP forbids any fetch


def test_bertviz_shaped_calls(tiny: Any) -> None:
    import torch

    handle = tiny("bert")
    enc = handle.tokenizer(*PAIR, return_tensors="pt")
    with torch.no_grad():
        attention = handle.model(**enc, output_attentions=True).attentions
    tokens = handle.tokenizer.convert_ids_to_tokens(enc["input_ids"][0])
    sentence_b_start = (enc["token_type_ids"] == 0).sum(dim=1)  # a one-element tensor, as in the book
    view = head_view(attention, tokens, sentence_b_start)
    assert view.kind == "head"
    assert view.trace.tokens.sentence_b_start == int(sentence_b_start)
    side = json_block(view.to_html())["sides"]["source"]
    assert side["segment"] == [0] * int(sentence_b_start) + [1] * (len(tokens) - int(sentence_b_start))
    mv = model_view(attention, tokens, sentence_b_start, display_mode="light", include_layers=[1], include_heads=[0, 2])
    assert (mv.options.theme, mv.options.include_layers, mv.options.include_heads) == ("light", (1,), (0, 2))
    hv = head_view(attention, tokens, layer=1, heads=[3], html_action="return")
    assert (hv.options.layer, hv.options.heads) == (1, (3,))


def test_bertviz_encoder_decoder_call(tiny: Any) -> None:
    t = attnscope.trace(tiny("bart"), "The cat is very sad.", target="Le chat est triste.")
    enc_tokens, dec_tokens = list(t.tokens.raw), list(t.target_tokens.raw)  # type: ignore[union-attr]
    view = head_view(
        encoder_attention=list(t.attention["encoder"][:, None]),
        decoder_attention=list(t.attention["decoder"][:, None]),
        cross_attention=list(t.attention["cross"][:, None]),
        encoder_tokens=enc_tokens,
        decoder_tokens=dec_tokens,
    )
    stacks = json_block(view.to_html())["stacks"]
    assert [(s["name"], s["query"], s["key"]) for s in stacks] == [
        ("encoder", "source", "source"),
        ("decoder", "target", "target"),
        ("cross", "target", "source"),
    ]
    assert stacks[2]["attention"]["shape"] == list(t.attention["cross"].shape)


def test_notebook_display_and_plain_text_fallback(pair_trace: Trace) -> None:
    view = heatmap_view(pair_trace, layer=1, head=2)
    bundle = view._repr_mimebundle_()
    assert bundle["text/plain"].startswith("<attnscope heatmap")
    assert bundle["text/html"] == view._repr_html_()
    assert 'class="attnscope-root' in bundle["text/html"]
    assert "<!DOCTYPE" not in bundle["text/html"]


def test_save_html(pair_trace: Trace, tmp_path: Any) -> None:
    path = page(pair_trace).save(tmp_path / "sub" / "views.html")
    assert path.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    with pytest.raises(InputError, match=r"\.html, \.png or \.svg"):
        page(pair_trace).save(tmp_path / "views.txt")
    with pytest.raises(InputError, match="single image"):
        page(pair_trace).save(tmp_path / "views.png")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"layer": 9}, r"layer 9 does not exist: this trace has layers 0\.\.1"),
        ({"heads": [7]}, r"head 7 does not exist"),
        ({"include_layers": []}, "empty list"),
        ({"stack": "cross"}, "no 'cross' attention"),
        ({"theme": "blue"}, "theme must be"),
        ({"index_base": 2}, "index_base must be"),
        ({"precision": "float16"}, "precision must be"),
        ({"views": ["head", "graph"]}, r"unknown view"),
    ],
)
def test_bad_options_are_clear_errors(pair_trace: Trace, kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(InputError, match=message):
        page(pair_trace, **kwargs).to_html()


def test_neuron_view_needs_queries_and_keys(tiny: Any) -> None:
    t = attnscope.trace(tiny("bert"), "The cat is very sad.")
    assert "neuron" not in page(t).views
    with pytest.raises(InputError, match="qk=True"):
        page(t, views=["neuron"]).to_html()


def test_bertviz_inputs_are_checked() -> None:
    with pytest.raises(InputError, match="token strings"):
        head_view([np.zeros((1, 2, 3, 3), dtype=np.float32)])
    with pytest.raises(InputError, match="3 tokens were given"):
        head_view([np.zeros((1, 2, 4, 4), dtype=np.float32)], ["a", "b", "c"])
    with pytest.raises(InputError, match="sentence_b_start"):
        head_view([np.zeros((1, 2, 3, 3), dtype=np.float32)], ["a", "b", "c"], sentence_b_start="x")


def test_bertviz_neuron_show_call(tiny: Any) -> None:
    from attnscope.views import neuron_view as show

    handle = tiny("bert")
    view = show(handle.model, "bert", handle.tokenizer, PAIR[0], PAIR[1], layer=1, head=2)
    assert (view.kind, view.options.layer, view.options.heads) == ("neuron", 1, (2,))
    assert view.trace.tokens.sentence_b_start is not None
    same = show(handle.model, handle.tokenizer, PAIR[0], PAIR[1], 1, 2)
    assert same.to_html() == view.to_html()
    (neuron,) = view.payload()["neuron"]
    assert (neuron["layers"], neuron["heads"]) == ([1], [2])  # a neuron view carries only the head it shows
    np.testing.assert_array_equal(decode_array(neuron["queries"]), view.trace.qk["encoder"].queries[[1]][:, [2]])
    with pytest.raises(InputError, match="tokenizer"):
        show(handle.model, None, PAIR[0])


def test_save_static_images(pair_trace: Trace, tmp_path: Any) -> None:
    png = head_view(pair_trace, layer=1, heads=[0, 2]).save(tmp_path / "head.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    svg = model_view(pair_trace).save(tmp_path / "model.svg")
    assert b"<svg" in svg.read_bytes()[:2000]


def test_changing_a_views_fields_rebuilds_it(pair_trace: Trace) -> None:
    import dataclasses

    view = head_view(pair_trace)
    dark = view.to_html()
    view.options = dataclasses.replace(view.options, theme="light")
    assert view.to_html() == head_view(pair_trace, theme="light").to_html() != dark


def test_front_end_reads_the_same_contract_version() -> None:
    source = (Path(__file__).parents[1] / "frontend" / "src" / "contract.ts").read_text(encoding="utf-8")
    assert f"export const PAYLOAD_VERSION = {PAYLOAD_VERSION};" in source
