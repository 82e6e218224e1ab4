"""The comparison view without a browser: token alignment, B − A against numpy, payload, errors, export, CLI."""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from difflib import SequenceMatcher
from pathlib import Path
from typing import Any, get_type_hints

import numpy as np
import pytest

import attnscope
import tiny_models
from attnscope.cli import main
from attnscope.errors import InputError
from attnscope.traces import Trace
from attnscope.views import CompareView, compare_view
from attnscope.views.compare import align_tokens
from attnscope.views.options import ViewOptions
from attnscope.views.payload import (
    PAYLOAD_VERSION,
    CompareAlignment,
    ComparePayload,
    build_payload,
    decode_attention,
)
from test_views_payload import random_trace

HOSTILE = "</script><img src=x onerror=alert(1)>"
ORIGINAL = "the cat sat on the mat ."
MASKED = "the [MASK] sat on the mat ."
EDITED = "the big dog sat on mat ."  # "cat" -> "big dog" (one more token), "the" before mat removed


@pytest.fixture(scope="module")
def bert(tiny: Any) -> Any:
    return tiny("bert")


@pytest.fixture(scope="module")
def pair(bert: Any) -> tuple[Trace, Trace]:
    """A sentence and its copy with "cat" masked (as the app's mask edit makes it)."""
    return attnscope.trace(bert, ORIGINAL), attnscope.trace(bert, MASKED)


@pytest.fixture(scope="module")
def edited(bert: Any) -> tuple[Trace, Trace]:
    return attnscope.trace(bert, ORIGINAL), attnscope.trace(bert, EDITED)


def test_alignment_pairs_equal_and_replaced_tokens_and_leaves_insertions_unpaired() -> None:
    a = ["[CLS]", "the", "cat", "sat", "on", "the", "mat", "[SEP]"]
    b = ["[CLS]", "the", "big", "dog", "sat", "on", "mat", "[SEP]"]
    al = align_tokens(a, b)
    got = list(zip(al.a, al.b, al.kinds, strict=True))
    assert got == [
        (0, 0, "equal"),
        (1, 1, "equal"),
        (2, 2, "replace"),  # a replaced run pairs place by place: cat ~ big
        (-1, 3, "insert"),  # and B's longer run leaves "dog" without a partner
        (3, 4, "equal"),
        (4, 5, "equal"),
        (5, -1, "delete"),  # "the" before mat is only in A
        (6, 6, "equal"),
        (7, 7, "equal"),
    ]
    assert al.pairs == [(0, 0), (1, 1), (2, 2), (3, 4), (4, 5), (6, 6), (7, 7)]
    # every token of each side appears once, in order; the paired ones are what difflib matched or replaced
    assert [i for i in al.a if i >= 0] == list(range(len(a)))
    assert [j for j in al.b if j >= 0] == list(range(len(b)))
    matched = {
        (m.a + k, m.b + k)
        for m in SequenceMatcher(None, a, b, autojunk=False).get_matching_blocks()
        for k in range(m.size)
    }
    assert matched == {(i, j) for i, j, kind in got if kind == "equal"}


def test_alignment_of_long_inputs_uses_no_junk_heuristic() -> None:
    a = ["the", "x"] * 150  # "the" is 50 % of 300 tokens: difflib's autojunk would ignore it
    b = ["the", "y"] * 150
    al = align_tokens(a, b)
    assert al.pairs == [(i, i) for i in range(300)]
    assert al.kinds.count("replace") == 150


def test_masked_token_pairs_with_the_original_and_difference_equals_numpy(pair: tuple[Trace, Trace]) -> None:
    a, b = pair
    assert a.tokens.labels[2] == "cat"
    assert b.tokens.labels[2] == "[MASK]"
    view = compare_view(a, b, layer=1, heads=[0, 2])
    cmp = view.subject
    assert cmp.query.kinds == ("equal", "equal", "replace") + ("equal",) * (len(a.tokens) - 3)
    assert cmp.head is None  # two heads: the mean of them first
    mean = lambda t: t.attention["encoder"][1][[0, 2]].astype(np.float64).mean(axis=0)  # noqa: E731
    np.testing.assert_allclose(cmp.difference(), mean(b) - mean(a), rtol=0, atol=1e-12)
    one = cmp.difference(layer=0, head=3)
    np.testing.assert_allclose(one, b.attention["encoder"][0, 3] - a.attention["encoder"][0, 3], atol=1e-7)


def test_difference_is_nan_exactly_where_a_token_has_no_partner(edited: tuple[Trace, Trace]) -> None:
    a, b = edited
    view = compare_view(a, b, layer=1, heads=[3])
    cmp = view.subject
    assert cmp.head == 3
    diff = cmp.difference()
    att_a, att_b = a.attention["encoder"][1, 3], b.attention["encoder"][1, 3]
    q, k = cmp.query, cmp.key
    assert q == k  # self-attention: one token sequence per trace
    assert {"insert", "delete", "replace"} <= set(q.kinds)
    for m in range(len(q.a)):
        for n in range(len(k.a)):
            if min(q.a[m], q.b[m], k.a[n], k.b[n]) < 0:
                assert np.isnan(diff[m, n])
            else:  # B's weight minus A's, for the tokens paired at m (query) and n (key)
                assert diff[m, n] == pytest.approx(
                    float(att_b[q.b[m], k.b[n]]) - float(att_a[q.a[m], k.a[n]]), abs=1e-7
                )


def test_payload_carries_both_traces_as_ordinary_payloads_and_the_alignment(pair: tuple[Trace, Trace]) -> None:
    a, b = pair
    view = compare_view(a, b, layer=1, theme="light", index_base=1, labels=("original", "masked"))
    payload = view.payload()
    assert payload["version"] == PAYLOAD_VERSION
    assert (payload["views"], payload["sides"], payload["stacks"], payload["neuron"]) == (["compare"], {}, [], [])
    assert (payload["resolved"]["theme"], payload["resolved"]["index_base"]) == ("light", 1)
    section = payload["compare"]
    assert set(section) == set(get_type_hints(ComparePayload))
    assert set(section["query"]) == set(get_type_hints(CompareAlignment))
    assert section["labels"] == ["original", "masked"]
    assert section["texts"] == [ORIGINAL, MASKED]
    assert (section["stacks"], section["layers"], section["heads"]) == (["encoder", "encoder"], 2, [0, 1, 2, 3])
    assert (section["layer"], section["head"]) == (1, -1)
    assert section["query"] == {
        "a": list(view.subject.query.a),
        "b": list(view.subject.query.b),
        "kind": list(view.subject.query.kinds),
    }
    for inner, tr in zip(section["traces"], (a, b), strict=True):
        opts = ViewOptions(stack="encoder", layer=1, heads=(0, 1, 2, 3), theme="light", index_base=1)
        assert inner == build_payload(tr, ("heatmap",), opts)  # an ordinary payload: one encoding of attention
        shown = decode_attention(inner["stacks"][0]["attention"])
        assert np.abs(shown - tr.attention["encoder"]).max() <= 0.5 / 255 + 1e-6
    exact = compare_view(a, b, precision="float32").payload()["compare"]["traces"][1]
    np.testing.assert_array_equal(decode_attention(exact["stacks"][0]["attention"]), b.attention["encoder"])


def test_models_with_different_sizes_compare_the_layers_and_heads_both_have() -> None:
    tokens = ["[CLS]", "the", "cat", "sat", "[SEP]"]
    small = random_trace(tokens, layers=2, heads=3, seed=1)
    big = random_trace([*tokens[:2], "dog", *tokens[3:]], layers=4, heads=5, seed=2)
    view = compare_view(big, small, layer=1, heads=[2])
    assert (view.subject.layers, view.subject.heads) == (2, (2,))
    assert view.subject.note() == "A has 4 layers x 5 heads, B 2 x 3: layers 0-1 and heads 0-2 of both are compared"
    assert view.subject.note(1) == "A has 4 layers x 5 heads, B 2 x 3: layers 1-2 and heads 1-3 of both are compared"
    assert view.payload()["compare"]["heads"] == [2]
    assert compare_view(big, small).payload()["compare"]["heads"] == [0, 1, 2]
    with pytest.raises(InputError, match=r"layer 2 is not in both traces: they share layers 0\.\.1"):
        compare_view(big, small, layer=2)
    with pytest.raises(InputError, match=r"head 4 is not in both traces: they share heads 0\.\.2"):
        compare_view(big, small, heads=[0, 4])


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda a, b: compare_view(a, "not a trace"), "trace_b is a str"),
        (lambda a, b: compare_view([1], b), "trace_a is a list"),
        (lambda a, b: compare_view(a, b, heads=[]), "empty list of heads"),
        (lambda a, b: compare_view(a, b, layer=-1), "layer -1 is not in both traces"),
        (lambda a, b: compare_view(a, b, layer="x"), "layer must be an integer"),
        (lambda a, b: compare_view(a, b, stack="cross"), "trace A has no 'cross' attention"),
        (lambda a, b: compare_view(a, b, stack="middle"), "stack must be"),
        (lambda a, b: compare_view(a, b, labels=("only one",)), "labels must be two strings"),
        (lambda a, b: compare_view(a, b, labels="AB"), "labels must be two strings"),
        (lambda a, b: compare_view(a, b, theme="blue"), "theme must be"),
        (lambda a, b: compare_view(a, b, index_base=2), "index_base must be"),
        (lambda a, b: compare_view(a, b, precision="float16"), "precision must be"),
    ],
)
def test_bad_input_is_one_clear_error(pair: tuple[Trace, Trace], call: Any, message: str) -> None:
    with pytest.raises(InputError, match=re.escape(message)):
        call(*pair)


def test_encoder_decoder_stacks_align_queries_and_keys_separately(tiny: Any) -> None:
    bart = tiny("bart")
    a = attnscope.trace(bart, "the cat sat .", target="le chat .")
    b = attnscope.trace(bart, "the dog sat .", target="le chien est .")
    cmp = compare_view(a, b, stack="cross").subject
    assert cmp.stacks == ("cross", "cross")
    assert len(cmp.query.a) >= len(a.target_tokens or ())  # queries: the decoder's tokens
    assert [i for i in cmp.key.a if i >= 0] == list(range(len(a.tokens)))  # keys: the encoder's tokens
    diff = cmp.difference()
    assert diff.shape == (len(cmp.query.a), len(cmp.key.a))
    both = compare_view(a, b).subject  # default: each trace's main stack
    assert both.stacks == ("encoder", "encoder")


def test_page_is_self_contained_and_hostile_tokens_stay_in_the_data_block() -> None:
    a = random_trace(["[CLS]", "a", HOSTILE, "b", "[SEP]"])
    b = random_trace(["[CLS]", "a", "c", "b", "[SEP]"], seed=3)
    view = compare_view(a, b)
    html = view.to_html()
    assert HOSTILE in view.payload_json().replace("\\u003c", "<").replace("\\u003e", ">")
    assert "<img" not in html.split("<script data-attnscope-bundle")[0]
    assert html.count("</script>") == 2  # the data block's and the bundle's own
    assert "default-src 'none'" in html
    assert "<title>attnscope comparison: attention (from tensors)</title>" in html
    assert view.element_id == compare_view(a, b).element_id  # same input, same bytes
    bundle = view._repr_mimebundle_()
    assert set(bundle) == {"text/html", "text/plain"}
    assert bundle["text/plain"] == repr(view)
    assert (
        repr(view) == "<attnscope comparison of A (5 tokens) and B (5 tokens), 5 aligned, on attention (from tensors)>"
    )
    assert isinstance(view, CompareView)


@pytest.mark.parametrize("suffix", [".png", ".svg"])
@pytest.mark.parametrize(("theme", "base"), [("dark", 0), ("light", 1)])
def test_static_export_opens_and_draws_tokens_as_text(
    edited: tuple[Trace, Trace], suffix: str, theme: str, base: int, tmp_path: Path
) -> None:
    pytest.importorskip("matplotlib", reason="static export needs the 'views' extra")
    a, b = edited
    view = compare_view(a, b, layer=1, heads=[2], theme=theme, index_base=base)  # type: ignore[arg-type]
    path = view.save(tmp_path / f"compare{suffix}")
    if suffix == ".png":
        from matplotlib.image import imread

        pixels = imread(path)
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert pixels.shape[0] > 100
        assert pixels.shape[1] > 300
        assert pixels.std() > 0.01
        return
    svg = path.read_text(encoding="utf-8")
    texts = ["".join(t.itertext()) for t in ET.fromstring(svg).iter("{http://www.w3.org/2000/svg}text")]
    assert f"layer {1 + base} \u00b7 head {2 + base} \u00b7 red: more attention in B, blue: less" in texts
    assert "cat\u2192big" in texts
    assert "+dog" in texts
    assert "\u2212the" in texts
    assert f"A: {ORIGINAL}" in texts
    assert f"B: {EDITED}" in texts
    from attnscope.views.export import to_svg

    assert svg == to_svg(compare_view(a, b, layer=1, heads=[2], theme=theme, index_base=base))  # type: ignore[arg-type]


def test_hostile_tokens_are_drawn_as_text_in_svg(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib", reason="static export needs the 'views' extra")
    a = random_trace(["[CLS]", "a", HOSTILE, "$x^2$", "[SEP]"])
    b = random_trace(["[CLS]", "a", "c", "$x^2$", "[SEP]"], seed=3)
    svg = compare_view(a, b).save(tmp_path / "x.svg").read_text(encoding="utf-8")
    root = ET.fromstring(svg)  # still well-formed XML
    assert not [e for e in root.iter() if e.tag.endswith(("script", "img", "foreignObject"))]
    texts = ["".join(t.itertext()) for t in root.iter("{http://www.w3.org/2000/svg}text")]
    assert HOSTILE in texts
    assert f"{HOSTILE}\u2192c" in texts
    assert "$x^2$" in texts


@pytest.fixture(scope="module")
def second_model(tmp_path_factory: pytest.TempPathFactory, wordpiece: Any) -> Path:
    """Another tiny BERT (other weights, same shape): "a fine-tuned copy" for --compare-model."""
    folder = tmp_path_factory.mktemp("tiny-bert-2")
    tiny_models.build("bert", seed=1).save_pretrained(folder)
    wordpiece.save_pretrained(folder)
    return folder


def _payload(path: Path) -> Any:
    html = path.read_text(encoding="utf-8")
    return json.loads(re.search(r'<script type="application/json">(.*?)</script>', html, re.DOTALL).group(1))  # type: ignore[union-attr]


def test_cli_compares_a_minimal_pair(tiny_model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "pair.html"
    args = ["view", "The cat sat.", "--compare", "The dog sat.", "--model", str(tiny_model_dir), "-o", str(out)]
    assert main([*args, "--layers", "1", "--heads", "0,2", "--index-base", "1"]) == 0
    printed = capsys.readouterr().out
    assert "aligned: 6 tokens (1 replaced), 0 only in A, 0 only in B" in printed
    assert f"page written to {out.resolve()}" in printed
    section = _payload(out)["compare"]
    assert (section["texts"], section["layer"], section["heads"], section["head"]) == (
        ["The cat sat.", "The dog sat."], 1, [0, 2], -1,
    )  # fmt: skip
    assert section["query"]["kind"] == ["equal", "equal", "replace", "equal", "equal", "equal"]
    png = tmp_path / "pair.png"
    assert main([*args[:-1], str(png)]) == 0
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_compares_two_models_on_one_text(
    tiny_model_dir: Path, second_model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "models.html"
    args = ["view", "The cat sat.", "--model", str(tiny_model_dir), "--compare-model", str(second_model)]
    assert main([*args, "-o", str(out)]) == 0
    payload = _payload(out)
    section = payload["compare"]
    assert section["texts"] == ["The cat sat.", "The cat sat."]
    assert set(section["query"]["kind"]) == {"equal"}
    names = [t["model"]["name"] for t in section["traces"]]
    assert names == [tiny_model_dir.name, second_model.name]
    assert payload["model"]["name"] == f"{names[0]} vs {names[1]}"
    a, b = (decode_attention(t["stacks"][0]["attention"]) for t in section["traces"])
    assert not np.array_equal(a, b)  # two models: different attention on the same tokens
    assert "aligned: 6 tokens (0 replaced)" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--views", "head"], "leave out --views and --measure"),
        (["--measure", "rollout"], "leave out --views and --measure"),
        (["--layers", "7"], "layer 7 is not in both traces"),
        (["-o", "x.txt"], "write a .html page, or a .png / .svg image of the comparison"),
    ],
)
def test_cli_compare_errors_are_one_line(
    tiny_model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], message: str
) -> None:
    args = [
        "view",
        "The cat sat.",
        "--compare",
        "A dog.",
        "--model",
        str(tiny_model_dir),
        "-o",
        str(tmp_path / "x.html"),
    ]
    assert main([*args, *extra]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err
    assert len(err.splitlines()) == 1
